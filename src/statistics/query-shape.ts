/**
 * What the statistics count and what they hand out: the shape of one cached
 * query, and that shape with its decayed counters as warm-up reads it.
 *
 * @module
 */

/**
 * What identifies a cached query and what it takes to replay it.
 *
 * @example
 * ```ts
 * const shape: QueryShape = {
 *   key: 'app:q:3Jx…',
 *   sql: 'select * from "person" where "id" = $1',
 *   parameters: [42],
 *   tables: ['public.person'],
 *   tags: ['people'],
 *   ttl: 60,
 * }
 * ```
 */
export interface QueryShape {
  /** The cache key (namespace + SQL + parameters + tags hashed): identity of the shape. */
  readonly key: string
  readonly sql: string
  readonly parameters: readonly unknown[]
  /** Normalised `schema.table` names it reads. */
  readonly tables: readonly string[]
  readonly tags: readonly string[]
  /** Seconds. */
  readonly ttl: number
}

/**
 * A tracked shape with its decayed counters. All counts are exponentially
 * decayed to the moment they were read (a request one half-life ago counts ½).
 *
 * @example
 * ```ts
 * for (const query of cache.hotQueries({ limit: 5 })) {
 *   console.log(query.sql, query.requests - query.error, query.meanDatabaseMs, query.score)
 * }
 * ```
 */
export interface HotQuery extends QueryShape {
  /**
   * Decayed request count as the space-saving algorithm estimates it: never
   * below the true (decayed) count, at most `error` above it.
   */
  readonly requests: number
  /**
   * Overestimation bound of `requests`: the count this shape inherited when it
   * took over the counter of an evicted shape (0 for shapes tracked since
   * their first request). `requests - error` is a guaranteed lower bound.
   */
  readonly error: number
  /** Decayed cache hits seen while tracked. */
  readonly hits: number
  /** Decayed cache misses seen while tracked. */
  readonly misses: number
  /** Mean database time of its timed misses (executions), exponentially weighted toward recent ones; 0 when none was timed. */
  readonly meanDatabaseMs: number
  /** Decayed sum of the database time of its misses. */
  readonly totalDatabaseMs: number
  /** Last request, ms since the epoch. */
  readonly lastSeen: number
  /** `(requests - error) × meanDatabaseMs`: the database time a cold cache would cost per window, counting only guaranteed requests. */
  readonly score: number
}

/** A {@link QueryShape} whose parameters may be held in another form (superjson text in snapshots). */
export type ShapeWith<Parameters> = Omit<QueryShape, 'parameters'> & { readonly parameters: Parameters }

/**
 * The shape fields of `shape` and nothing else: objects built from it must not
 * carry whatever extra properties the caller's object had (into JSON, say).
 */
export function copyShape<Parameters>(shape: ShapeWith<Parameters>): ShapeWith<Parameters> {
  return { key: shape.key, sql: shape.sql, parameters: shape.parameters, tables: shape.tables, tags: shape.tags, ttl: shape.ttl }
}
