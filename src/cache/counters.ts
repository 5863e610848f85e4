/** Counters of one cache, for `cache.stats()`. Each is a number of queries (or operations) since creation. */
export interface CacheStats {
  /** `.cached()` queries served from the cache. */
  readonly hits: number
  /** `.cached()` queries that went to the database (including those that joined another's query). */
  readonly misses: number
  /** Results written to the cache. */
  readonly stores: number
  /** Invalidations recorded (one per write statement, commit or `invalidate()` call). */
  readonly invalidations: number
  /** Cache operations that failed (timeout, refused, garbled); the query went on without the cache. */
  readonly errors: number
  /** `.cached()` queries that skipped the cache: inside a transaction, streamed, or on a connection out of the key scope. */
  readonly bypassed: number
  /** Misses that joined an identical query already running in this process instead of running their own. */
  readonly coalesced: number
  /** Results not stored because they exceed the store's item size limit. */
  readonly oversize: number
  /**
   * `.cached()` queries that cannot be cached (e.g. a raw SQL fragment as a FROM item), and
   * results not stored because they hold a value the codec cannot bring back as itself.
   */
  readonly uncacheable: number
  /** Degraded-mode misses that won the farm-wide `safe-` lock and computed the result. */
  readonly lockAcquired: number
  /** Degraded-mode misses that lost the lock and waited for another process. */
  readonly lockWaited: number
  /** Milliseconds spent waiting for the lock, summed over `lockWaited`. */
  readonly lockWaitMs: number
  /** Waiters served from the cache once the holder stored the result. */
  readonly lockWaitHits: number
  /** Waiters that gave up at the wait bound and queried the database. */
  readonly lockTimeouts: number
  /** Misses that could not read or write the lock and queried the database. */
  readonly lockUnavailable: number
  /** Waiters that queried the database early because the holder failed or could not store. */
  readonly lockAbandoned: number
  /** Changes of this process's mode (normal ↔ degraded). */
  readonly modeTransitions: number
}

export class CacheCounters implements CacheStats {
  hits = 0
  misses = 0
  stores = 0
  invalidations = 0
  errors = 0
  bypassed = 0
  coalesced = 0
  oversize = 0
  uncacheable = 0
  lockAcquired = 0
  lockWaited = 0
  lockWaitMs = 0
  lockWaitHits = 0
  lockTimeouts = 0
  lockUnavailable = 0
  lockAbandoned = 0
  modeTransitions = 0

  snapshot(): CacheStats {
    return { ...this }
  }
}
