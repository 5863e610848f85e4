import { describe, requireOptionsObject } from '../util/validate.js'

/**
 * `options` as a record, after checking it is an object whose every key is in
 * `known`; `what` names the store in the message.
 */
export function storeOptions(options: unknown, what: string, known: readonly string[]): Record<string, unknown> {
  const record = requireOptionsObject(options, what)
  for (const name of Object.keys(record)) {
    if (!known.includes(name)) {
      throw new TypeError(`${what} got unknown option ${JSON.stringify(name)}; known options: ${known.join(', ')}`)
    }
  }
  return record
}

/**
 * A numeric option: `fallback` when absent, else a finite number that passes
 * `valid`. TypeError for a non-number, RangeError otherwise, both saying `expected`.
 */
export function numberOption(
  name: string,
  value: unknown,
  fallback: number,
  expected: string,
  valid: (value: number) => boolean,
): number {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'number') {
    throw new TypeError(`${name} must be ${expected}, got ${describe(value)}`)
  }
  if (!Number.isFinite(value) || !valid(value)) {
    throw new RangeError(`${name} must be ${expected}, got ${describe(value)}`)
  }
  return value
}
