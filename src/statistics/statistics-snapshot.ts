/**
 * The JSON-able copy of query statistics that crosses process boundaries (a
 * merge, the farm-wide document in memcached, a file the monitor keeps), and
 * the checks a copy from outside must pass before anything trusts it.
 *
 * @module
 */
import { decodeValue } from '../cache/codec.js'
import { describe, THIRTY_DAYS_SECONDS } from '../util/validate.js'
import { COUNT_FIELDS } from './decayed-counts.js'
import type { DecayedCounts } from './decayed-counts.js'
import { copyShape } from './query-shape.js'
import type { QueryShape, ShapeWith } from './query-shape.js'

/**
 * One tracked shape in a {@link StatisticsSnapshot}. Counts are decayed to the
 * snapshot's `at`; `parameters` is superjson text (see `encodeValue` in
 * cache/codec.ts) so Date, bigint and Buffer parameters survive JSON.
 */
export interface SnapshotEntry extends ShapeWith<string>, DecayedCounts {}

/**
 * A compact, JSON-able copy of a `QueryStatistics`, for merging across
 * processes (and the farm-wide document in memcached).
 *
 * @example
 * ```json
 * { "version": 1, "at": 1718000000000, "halfLifeMs": 600000,
 *   "entries": [{ "key": "app:q:…", "sql": "select * from \"person\" where \"id\" = $1",
 *     "parameters": "{\"json\":[42]}", "tables": ["public.person"], "tags": [], "ttl": 60,
 *     "requests": 120.5, "error": 0, "hits": 118.5, "misses": 2, "executions": 2,
 *     "databaseMs": 31.2, "lastSeen": 1717999999000 }] }
 * ```
 */
export interface StatisticsSnapshot {
  readonly version: 1
  /** When the counts were decayed to, ms since the epoch. */
  readonly at: number
  /** Half-life of the statistics that took it, ms (informational: a receiver decays with its own). */
  readonly halfLifeMs: number
  readonly entries: readonly SnapshotEntry[]
}

/**
 * Checks that `value` is a {@link StatisticsSnapshot} (e.g. read from memcached
 * or a file) and returns it typed. `name` prefixes the field paths in messages.
 * Parameters are checked to be text only: {@link entryShape} decodes them.
 * Bytes from memcached are not trusted: times must be within the range of a Date,
 * counts at most 2^53 (so sums and scaled counts stay finite), `ttl` at most 30 days
 * (what `.cached()` accepts, and a manifest).
 *
 * @throws {TypeError} Naming the first bad field and its value, e.g.
 *   `snapshot.entries[2].requests must be a finite number >= 0, got -1`.
 *
 * @example
 * ```ts
 * const snapshot = validateSnapshot(JSON.parse(text))
 * ```
 */
export function validateSnapshot(value: unknown, name = 'snapshot'): StatisticsSnapshot {
  const snapshot = objectAt(value, name)
  if (snapshot['version'] !== 1) {
    throw new TypeError(`${name}.version must be 1, got ${describe(snapshot['version'])}`)
  }
  timeAt(snapshot['at'], `${name}.at`)
  if (typeof snapshot['halfLifeMs'] !== 'number' || !(snapshot['halfLifeMs'] > 0) || !Number.isFinite(snapshot['halfLifeMs'])) {
    throw new TypeError(`${name}.halfLifeMs must be a positive finite number, got ${describe(snapshot['halfLifeMs'])}`)
  }
  const entries = snapshot['entries']
  if (!Array.isArray(entries)) {
    throw new TypeError(`${name}.entries must be an array, got ${describe(entries)}`)
  }
  entries.forEach((item, index) => validateEntry(item, `${name}.entries[${index}]`))
  return value as StatisticsSnapshot
}

/**
 * The {@link QueryShape} of a validated entry, its parameters decoded from
 * superjson. `path` names the entry in messages.
 *
 * @throws {TypeError} When the parameters are not superjson text of an array.
 *
 * @example
 * ```ts
 * const shape = entryShape(snapshot.entries[0]!, 'snapshot.entries[0]')
 * ```
 */
export function entryShape(entry: SnapshotEntry, path: string): QueryShape {
  let parameters: unknown
  try {
    const payload: unknown = JSON.parse(entry.parameters)
    if (!isReadableSuperjsonMeta((payload as { meta?: unknown } | null)?.meta)) throw new TypeError('superjson annotations it cannot read in time')
    parameters = decodeValue(entry.parameters)
  } catch (error) {
    throw new TypeError(`${path}.parameters must be superjson text, got ${describe(entry.parameters)}`, { cause: error })
  }
  if (!Array.isArray(parameters)) {
    throw new TypeError(`${path}.parameters must encode an array, got ${describe(parameters)}`)
  }
  if (!isParameterTree(parameters, entry.parameters.length)) {
    throw new TypeError(
      `${path}.parameters must decode to parameters as encodeValue writes them (see isParameterTree), got ${describe(entry.parameters)}`,
    )
  }
  return { ...copyShape(entry), parameters }
}

/**
 * Whether `value`, decoded from `size` characters of superjson, is parameters as
 * encodeValue writes them: a tree of at most `size` values (each takes a character at
 * least). superjson's `referentialEqualities` put one decoded value in several places,
 * the value itself included: crafted text could make parameters that contain
 * themselves (a walk over them, as the cache key's, never ends) or double at each level
 * (2^n values from n levels). It and `values` can also make what no parameter was (an
 * invalid Date, an array with holes or a named property), and JSON an object with a key
 * superjson refuses to write back (`__proto__`, `constructor`, `prototype`). Walked
 * without recursion, so depth cannot overflow the stack here.
 *
 * ```ts
 * isParameterTree(decodeValue(text), text.length)
 * ```
 */
export function isParameterTree(value: unknown, size: number): boolean {
  const pending: unknown[] = [value]
  // Counted as they are found, so the walk itself is bounded by `size` too.
  let found = 1
  while (pending.length > 0) {
    const next = pending.pop()
    if (typeof next !== 'object' || next === null) continue
    const prototype: unknown = Object.getPrototypeOf(next)
    let items: Iterable<unknown> = []
    // Holes, or a property superjson set on an array, Date, Map or Set (`referentialEqualities`
    // to a path like "0.x"): an array's own keys are its indices, the others have none.
    const expectedKeys = Array.isArray(next) ? next.length : next instanceof Date || next instanceof Map || next instanceof Set ? 0 : undefined
    if (expectedKeys !== undefined && Object.keys(next).length !== expectedKeys) return false
    if (Array.isArray(next)) items = next as unknown[]
    else if (next instanceof Date) {
      if (Number.isNaN(next.getTime())) return false
    } else if (next instanceof Set) items = next as Set<unknown>
    else if (next instanceof Map) items = [...(next as Map<unknown, unknown>).keys(), ...(next as Map<unknown, unknown>).values()]
    else if (prototype === Object.prototype || prototype === null) {
      // Keys superjson refuses to write (a prototype pollution risk, it says): no parameter written has them.
      if (Object.hasOwn(next, '__proto__') || Object.hasOwn(next, 'constructor') || Object.hasOwn(next, 'prototype')) return false
      items = Object.values(next)
    }
    for (const item of items) {
      pending.push(item)
      if (++found > size) return false
    }
  }
  return true
}

/** Deepest superjson annotation tree read: parameters nest far less. */
const MAX_ANNOTATION_DEPTH = 100

/**
 * Whether superjson reads the annotations of `meta` in time. It walks the `values`
 * tree recursively, copying the path at each level (quadratic in the depth), and walks
 * a string where a subtree goes as its characters, each again a string: 33 bytes
 * (`{"json":[],"meta":{"values":"x"}}`) overflow the stack after 150 MB of path copies.
 * So: no string where a subtree goes, at most 100 levels. Checked without recursion.
 */
export function isReadableSuperjsonMeta(meta: unknown): boolean {
  if (typeof meta !== 'object' || meta === null) return true
  const pending: Array<[unknown, number]> = [[(meta as { values?: unknown }).values, 0]]
  while (pending.length > 0) {
    const [node, depth] = pending.pop()!
    // Falsy subtrees are skipped, numbers and booleans have no entries to walk.
    if (!node || (typeof node !== 'object' && typeof node !== 'string')) continue
    if (typeof node === 'string' || depth > MAX_ANNOTATION_DEPTH) return false
    // [type, children] or an object of subtrees.
    const children: unknown = Array.isArray(node) ? node[1] : node
    if (!children || (typeof children !== 'object' && typeof children !== 'string')) continue
    if (typeof children === 'string') return false
    for (const child of Object.values(children)) pending.push([child, depth + 1])
  }
  return true
}

function validateEntry(item: unknown, path: string): void {
  const entry = objectAt(item, path)
  for (const field of ['key', 'sql', 'parameters'] as const) {
    if (typeof entry[field] !== 'string') {
      throw new TypeError(`${path}.${field} must be a string, got ${describe(entry[field])}`)
    }
  }
  for (const field of ['tables', 'tags'] as const) {
    const list = entry[field]
    if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) {
      throw new TypeError(`${path}.${field} must be an array of strings, got ${describe(list)}`)
    }
  }
  const ttl = entry['ttl']
  if (typeof ttl !== 'number' || !(ttl >= 0 && ttl <= THIRTY_DAYS_SECONDS)) {
    throw new TypeError(`${path}.ttl must be a number of seconds from 0 to ${THIRTY_DAYS_SECONDS}, got ${describe(ttl)}`)
  }
  for (const field of COUNT_FIELDS) {
    const number = entry[field]
    if (typeof number !== 'number' || !Number.isFinite(number) || number < 0) {
      throw new TypeError(`${path}.${field} must be a finite number >= 0, got ${describe(number)}`)
    }
    if (number > MAX_COUNT) {
      throw new TypeError(`${path}.${field} must be at most 2^53, got ${describe(number)}`)
    }
  }
  timeAt(entry['lastSeen'], `${path}.lastSeen`)
}

/** Largest count a snapshot may hold: far above any real traffic, and sums of a few stay finite. */
export const MAX_COUNT = Number.MAX_SAFE_INTEGER

function objectAt(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${path} must be an object, got ${describe(value)}`)
  }
  return value as Record<string, unknown>
}

/** ms since the epoch, within the range of a Date (±8.64e15). */
function timeAt(value: unknown, path: string): number {
  if (typeof value !== 'number' || !(Math.abs(value) <= 8.64e15)) {
    throw new TypeError(`${path} must be a time (ms since the epoch, within the range of a Date), got ${describe(value)}`)
  }
  return value
}
