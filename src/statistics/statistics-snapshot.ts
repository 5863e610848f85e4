/**
 * The JSON-able copy of query statistics that crosses process boundaries (a
 * merge, the farm-wide document in memcached, a file the monitor keeps), and
 * the checks a copy from outside must pass before anything trusts it.
 *
 * @module
 */
import { decodeValue } from '../cache/codec.js'
import { describe } from '../util/validate.js'
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
  finiteAt(snapshot['at'], `${name}.at`)
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
    parameters = decodeValue(entry.parameters)
  } catch (error) {
    throw new TypeError(`${path}.parameters must be superjson text, got ${describe(entry.parameters)}`, { cause: error })
  }
  if (!Array.isArray(parameters)) {
    throw new TypeError(`${path}.parameters must encode an array, got ${describe(parameters)}`)
  }
  return { ...copyShape(entry), parameters }
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
  for (const field of ['ttl', ...COUNT_FIELDS] as const) {
    const number = entry[field]
    if (typeof number !== 'number' || !Number.isFinite(number) || number < 0) {
      throw new TypeError(`${path}.${field} must be a finite number >= 0, got ${describe(number)}`)
    }
  }
  finiteAt(entry['lastSeen'], `${path}.lastSeen`)
}

function objectAt(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${path} must be an object, got ${describe(value)}`)
  }
  return value as Record<string, unknown>
}

function finiteAt(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`${path} must be a finite number, got ${describe(value)}`)
  }
  return value
}
