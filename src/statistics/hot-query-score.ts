/**
 * How a tracked shape is ranked for warm-up: by the database time a cold cache
 * would cost, `guaranteed requests × mean database time`, not by requests alone.
 *
 * @module
 */
import { decayFactor, scaleCounts } from './decayed-counts.js'
import type { DecayedCounts } from './decayed-counts.js'
import { copyShape } from './query-shape.js'
import type { HotQuery, QueryShape } from './query-shape.js'
import { entryShape } from './statistics-snapshot.js'
import type { StatisticsSnapshot } from './statistics-snapshot.js'

/**
 * `(requests - error) × mean database time`, from raw sums in any common unit
 * (the ranking is the same whatever the unit, as long as all share it).
 *
 * @example
 * ```ts
 * scoreOf({ requests: 10, error: 2, executions: 4, databaseMs: 20 }) // 8 × 5 ms = 40
 * ```
 */
export function scoreOf(counts: Pick<DecayedCounts, 'requests' | 'error' | 'executions' | 'databaseMs'>): number {
  // The guaranteed count, not the estimate: a one-off shape that inherited an evicted
  // counter must not outrank a real hot query because it happened to be expensive.
  return counts.executions > 0 ? (Math.max(0, counts.requests - counts.error) * counts.databaseMs) / counts.executions : 0
}

/**
 * The {@link HotQuery} of `shape` with `counts` (decayed to the moment they are read).
 *
 * @example
 * ```ts
 * const query = hotQuery(shape, scaleCounts(counter, 1 / weight))
 * ```
 */
export function hotQuery(shape: QueryShape, counts: DecayedCounts): HotQuery {
  return {
    ...copyShape(shape),
    requests: counts.requests,
    error: counts.error,
    hits: counts.hits,
    misses: counts.misses,
    meanDatabaseMs: counts.executions > 0 ? counts.databaseMs / counts.executions : 0,
    totalDatabaseMs: counts.databaseMs,
    lastSeen: counts.lastSeen,
    score: scoreOf(counts),
  }
}

/**
 * The entries of a snapshot as {@link HotQuery} objects decayed to `now`
 * (with `halfLifeMs`, default the snapshot's own), ranked by score, highest first.
 *
 * @throws {TypeError} When an entry's parameters are not superjson text.
 *
 * @example
 * ```ts
 * const hot = hotQueriesOf(validateSnapshot(JSON.parse(savedText)))
 * ```
 */
export function hotQueriesOf(
  snapshot: StatisticsSnapshot,
  options: { now?: number; halfLifeMs?: number } = {},
): HotQuery[] {
  const scale = decayFactor((options.now ?? Date.now()) - snapshot.at, options.halfLifeMs ?? snapshot.halfLifeMs)
  return snapshot.entries
    .map((entry, index) => hotQuery(entryShape(entry, `snapshot.entries[${index}]`), scaleCounts(entry, scale)))
    .sort((a, b) => b.score - a.score)
}
