import { createHash } from 'node:crypto'

/*
 * Keys are `<namespace>:<kind>:<name>`. Whatever the SQL, the name part is a
 * base64url SHA-256 (43 characters) or a short identifier already safe for
 * memcached, so every key stays far below memcached's 250-byte limit and never
 * contains spaces or control characters.
 */

const SAFE_NAME = /^[A-Za-z0-9_.$-]{1,100}$/
const SAFE_NAMESPACE = /^[A-Za-z0-9_.-]{1,64}$/

export function validateNamespace(namespace: unknown): string {
  if (typeof namespace !== 'string' || !SAFE_NAMESPACE.test(namespace)) {
    throw new TypeError(
      `namespace must be 1 to 64 characters of letters, digits, "_", "." or "-", got ${JSON.stringify(namespace)}`,
    )
  }
  return namespace
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

/** A name kept readable when it is safe, hashed when it is not. */
function safeName(name: string): string {
  return SAFE_NAME.test(name) ? name : `~${digest(name)}`
}

/**
 * The key of a query's cached result: namespace, SQL text, parameters, tags and
 * the scope the rows were read in (database, role, search_path: see kysely/scope.ts).
 * Stable across processes and restarts; `null`, `undefined` and `'null'` differ,
 * Dates count by instant, Buffers by content.
 */
export function queryKey(
  namespace: string,
  sql: string,
  parameters: readonly unknown[],
  tags: readonly string[],
  scope: string,
): string {
  let text = `${scope.length}:${scope}\u0003${sql}\u0000`
  for (const parameter of parameters) {
    text += encodeParameter(parameter) + '\u0001'
  }
  for (const tag of tags) {
    text += '\u0002' + tag
  }
  return `${namespace}:q:${digest(text)}`
}

/** The key of the lock that says "a process of the farm is computing `key`". */
export function lockKey(key: string): string {
  return `safe-${key}`
}

/** The monitor's shared view of the tier (`TierState`, tier/tier-state.ts), on every live node. */
export function tierStateKey(namespace: string): string {
  return `${namespace}:tier:state`
}

/** An operator's forced mode (`ModeOverride`), on every live node. */
export function modeOverrideKey(namespace: string): string {
  return `${namespace}:tier:override`
}

/** Farm-wide request counters every process adds its hits and misses to. */
export interface FarmCounterKeys {
  readonly hits: string
  readonly misses: string
}

export function farmCounterKeys(namespace: string): FarmCounterKeys {
  return { hits: `${namespace}:tier:hits`, misses: `${namespace}:tier:misses` }
}

/** The farm-wide query statistics document (see statistics/farm-statistics.ts). */
export function hotStatisticsKey(namespace: string): string {
  return `${namespace}:hot`
}

/** Generation counters: one for the namespace, one per table, one per tag. */
export function namespaceGenerationKey(namespace: string): string {
  return `${namespace}:g:*`
}

export function tableGenerationKey(namespace: string, table: string): string {
  return `${namespace}:g:t:${safeName(table)}`
}

export function tagGenerationKey(namespace: string, tag: string): string {
  return `${namespace}:g:g:${safeName(tag)}`
}

/**
 * A type-tagged, injective text form of one parameter. Hand-written for the
 * common primitives because it runs on every cached query, hits included.
 */
function encodeParameter(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `s${value.length}:${value}`
    case 'number':
      return Object.is(value, -0) ? 'n-0' : `n${value}`
    case 'bigint':
      return `b${value}`
    case 'boolean':
      return value ? 'T' : 'F'
    case 'undefined':
      return 'U'
    case 'object':
      return encodeObject(value)
    default:
      throw new TypeError(`cannot derive a cache key from a ${typeof value} query parameter`)
  }
}

function encodeObject(value: object | null): string {
  if (value === null) {
    return 'N'
  }
  if (value instanceof Date) {
    return `D${value.getTime()}`
  }
  if (value instanceof Uint8Array) {
    return `x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`
  }
  if (Array.isArray(value)) {
    return `[${value.map(encodeParameter).join(',')}]`
  }
  // Plain objects (json parameters): key order is part of the value the database sees.
  let text = '{'
  for (const [name, entry] of Object.entries(value)) {
    text += `${JSON.stringify(name)}:${encodeParameter(entry)},`
  }
  return text + '}'
}
