/** Counters of one cache, for `cache.stats()`. Each is a number of queries (or operations) since creation. */
export interface CacheStats {
  /** `.cached()` queries served from the cache. */
  readonly hits: number
  /** Of `hits`, those served from this process's near cache (only the generations read remotely). */
  readonly nearHits: number
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
  /** Background refreshes started before a hot result expired (early refresh). */
  readonly earlyRefreshes: number
  /** Hits served past their TTL within `swr`, while refreshed in the background. */
  readonly staleServed: number
  /** Background refreshes that failed (the stored result stays until it expires). */
  readonly refreshFailures: number
  /**
   * Values read from the store and refused: not signed with this cache's secret for
   * their key, or not an entry this cache can decode. Each was treated as a miss.
   */
  readonly rejected: number
}

type Counts = { -readonly [K in keyof CacheStats]: CacheStats[K] }

/**
 * The counters of one cache, recorded here only: each method records one event.
 *
 * ```ts
 * const counters = new CacheCounters()
 * counters.hit()
 * counters.snapshot().hits // 1
 * ```
 */
export class CacheCounters {
  readonly #counts: Counts = {
    hits: 0,
    nearHits: 0,
    misses: 0,
    stores: 0,
    invalidations: 0,
    errors: 0,
    bypassed: 0,
    coalesced: 0,
    oversize: 0,
    uncacheable: 0,
    lockAcquired: 0,
    lockWaited: 0,
    lockWaitMs: 0,
    lockWaitHits: 0,
    lockTimeouts: 0,
    lockUnavailable: 0,
    lockAbandoned: 0,
    modeTransitions: 0,
    earlyRefreshes: 0,
    staleServed: 0,
    refreshFailures: 0,
    rejected: 0,
  }

  /** Hits so far; the mode view reports what it served since its last report. */
  get hits(): number {
    return this.#counts.hits
  }

  /** Misses so far, as {@link hits}. */
  get misses(): number {
    return this.#counts.misses
  }

  hit(): void {
    this.#counts.hits++
  }

  /** A hit served from the near cache; counted in `hits` too. */
  nearHit(): void {
    this.#counts.nearHits++
  }

  miss(): void {
    this.#counts.misses++
  }

  stored(): void {
    this.#counts.stores++
  }

  invalidated(): void {
    this.#counts.invalidations++
  }

  failed(): void {
    this.#counts.errors++
  }

  bypassed(): void {
    this.#counts.bypassed++
  }

  coalesced(): void {
    this.#counts.coalesced++
  }

  oversize(): void {
    this.#counts.oversize++
  }

  uncacheable(): void {
    this.#counts.uncacheable++
  }

  lockAcquired(): void {
    this.#counts.lockAcquired++
  }

  /** A waiter that stopped waiting for the lock, after `waitMs`. */
  lockWaited(waitMs: number): void {
    this.#counts.lockWaited++
    this.#counts.lockWaitMs += waitMs
  }

  lockWaitHit(): void {
    this.#counts.lockWaitHits++
  }

  lockTimeout(): void {
    this.#counts.lockTimeouts++
  }

  lockUnavailable(): void {
    this.#counts.lockUnavailable++
  }

  lockAbandoned(): void {
    this.#counts.lockAbandoned++
  }

  modeChanged(): void {
    this.#counts.modeTransitions++
  }

  earlyRefreshed(): void {
    this.#counts.earlyRefreshes++
  }

  staleServed(): void {
    this.#counts.staleServed++
  }

  refreshFailed(): void {
    this.#counts.refreshFailures++
  }

  rejected(): void {
    this.#counts.rejected++
  }

  /** A copy: later events do not change it. */
  snapshot(): CacheStats {
    return { ...this.#counts }
  }
}
