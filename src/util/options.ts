/** memcached reads a relative expiry above 30 days as a Unix timestamp. */
export const MAX_TTL_SECONDS = 60 * 60 * 24 * 30

/** A TTL in whole seconds (fractions round up); `0` means no expiry. */
export function validateTtl(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_TTL_SECONDS) {
    throw new RangeError(
      `${name} must be a finite number of seconds between 0 and ${MAX_TTL_SECONDS} (30 days), got ${describe(value)}`,
    )
  }
  return Math.ceil(value)
}

export function validateTags(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`${name} must be an array of non-empty strings, got ${describe(value)}`)
  }
  value.forEach((tag, index) => {
    if (typeof tag !== 'string' || tag === '') {
      throw new TypeError(`${name}[${index}] must be a non-empty string, got ${describe(tag)}`)
    }
  })
  return value as string[]
}

export function validatePositive(value: unknown, name: string, unit: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive finite number of ${unit}, got ${describe(value)}`)
  }
  return value
}

/** Longest delay a Node.js timer takes; longer ones fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A delay in milliseconds that a timer can wait: positive, at most about 24.8 days. */
export function validateDelay(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw new RangeError(`${name} must be a number of milliseconds above 0 and at most ${MAX_TIMER_MS}, got ${describe(value)}`)
  }
  return value
}

/** Throws a TypeError naming the first property of `options` that is not in `known`. */
export function rejectUnknown(options: object, known: ReadonlySet<string>, name: string): void {
  for (const key of Object.keys(options)) {
    if (!known.has(key)) {
      throw new TypeError(`unknown option ${JSON.stringify(key)} in ${name}; known: ${[...known].join(', ')}`)
    }
  }
}

export function validatePositiveInteger(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${describe(value)}`)
  }
  return value
}

/**
 * A short, quoted rendering of a bad value for error messages: strings are
 * JSON-quoted, long ones cut, objects shown as JSON when they can be.
 */
export function describe(value: unknown): string {
  let text: string
  if (typeof value === 'string') {
    text = JSON.stringify(value)
  } else if (typeof value === 'number') {
    // JSON.stringify would print NaN and Infinity as "null".
    text = Object.is(value, -0) ? '-0' : String(value)
  } else if (typeof value === 'bigint') {
    text = `${value}n`
  } else if (typeof value === 'function') {
    text = `function ${value.name || '(anonymous)'}`
  } else if (typeof value === 'symbol' || value === undefined) {
    text = String(value)
  } else {
    try {
      text = JSON.stringify(value) ?? String(value)
    } catch {
      text = Object.prototype.toString.call(value)
    }
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}
