/**
 * Per-query-shape statistics for warm-up: how often each cached query is asked
 * for and how much database time its misses cost, in bounded memory whatever
 * the traffic.
 *
 * Counting uses the space-saving heavy-hitters algorithm (Metwally, Agrawal and
 * El Abbadi, 2005) with `capacity` counters kept in a min-heap (counter-heap.ts):
 * a tracked key increments its counter; an untracked key takes over the counter
 * with the smallest count, inheriting that count as its overestimation `error`.
 * Counts decay exponentially with a half-life, lazily: every counter is kept in
 * "scaled units" relative to a moving epoch (a request at time t adds
 * 2^((t - epoch) / halfLife)), so decay never touches the table and heap order
 * is unaffected; all counters are renormalised once every 32 half-lives.
 *
 * @module
 */
import { encodeValue } from '../cache/codec.js'
import { describe as describeValue, integerFrom, positiveInteger, positiveNumber, rejectUnknown, requireOptionsObject } from '../util/validate.js'
import { Counter, CounterHeap } from './counter-heap.js'
import { decayFactor, scaleCounts } from './decayed-counts.js'
import { hotQuery, scoreOf } from './hot-query-score.js'
import { copyShape } from './query-shape.js'
import type { HotQuery, QueryShape } from './query-shape.js'
import { entryShape, validateSnapshot } from './statistics-snapshot.js'
import type { SnapshotEntry, StatisticsSnapshot } from './statistics-snapshot.js'

/** Options of {@link QueryStatistics}. */
export interface QueryStatisticsOptions {
  /** Shapes tracked at most (space-saving counters). Default 1000. */
  capacity?: number
  /** Counts halve every `halfLifeMs`. Default 10 minutes. */
  halfLifeMs?: number
  /** Clock, ms since the epoch. Default `Date.now`. */
  now?: () => number
}

const DEFAULT_CAPACITY = 1000
const DEFAULT_HALF_LIFE_MS = 10 * 60 * 1000
/** Renormalise when one request weighs this much (32 half-lives): doubles stay far from overflow. */
const RENORMALISE_AT = 2 ** 32
const KNOWN_OPTIONS = ['capacity', 'halfLifeMs', 'now']

/**
 * Bounded, decaying per-shape statistics of cached queries: the input of
 * warm-up manifests ("the entries with the most impact: expensive to get and
 * often requested").
 *
 * Tradeoff: the space-saving counters rank by request count (that is what keeps
 * the heavy-hitter guarantee), while {@link HotQuery.score} is count × mean
 * cost, tracked per counter. A rare-but-expensive query therefore survives only
 * while its count keeps it out of the bottom of the table; with the default
 * 1000 counters that holds for realistic workloads (it needs fewer distinct
 * shapes with higher counts than its own than there are counters), but a flood
 * of distinct one-off shapes can evict it. Under such churn, counters of new
 * shapes inherit the evicted count as `error`: check `requests - error` when a
 * guaranteed count matters.
 *
 * @example
 * ```ts
 * const statistics = new QueryStatistics({ capacity: 1000, halfLifeMs: 10 * 60_000 })
 * statistics.record(key, () => ({ key, sql, parameters, tables, tags, ttl }), 'miss', 12.5)
 * statistics.record(key, () => ({ key, sql, parameters, tables, tags, ttl }), 'hit')
 * const [hottest] = statistics.top(1) // { requests: 2, hits: 1, misses: 1, meanDatabaseMs: 12.5, score: 25, … }
 * ```
 */
export class QueryStatistics {
  readonly #capacity: number
  readonly #halfLifeMs: number
  readonly #now: () => number
  readonly #counters = new Map<string, Counter>()
  readonly #heap = new CounterHeap()
  #epoch: number
  #weightAt = Number.NaN
  #weight = 1

  /**
   * @throws {RangeError} When `capacity` is not a positive integer or `halfLifeMs` not a positive finite number.
   * @throws {TypeError} On an unknown option or a `now` that is not a function.
   */
  constructor(options: QueryStatisticsOptions = {}) {
    rejectUnknown(requireOptionsObject(options, 'QueryStatistics'), KNOWN_OPTIONS, 'QueryStatistics')
    this.#capacity = positiveInteger(options.capacity ?? DEFAULT_CAPACITY, 'capacity')
    this.#halfLifeMs = positiveNumber(options.halfLifeMs ?? DEFAULT_HALF_LIFE_MS, 'halfLifeMs', 'milliseconds')
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new TypeError(`now must be a function returning ms since the epoch, got ${describeValue(options.now)}`)
    }
    this.#now = options.now ?? Date.now
    this.#epoch = this.#now()
  }

  /** Shapes tracked at most. */
  get capacity(): number {
    return this.#capacity
  }

  /** Counts halve every `halfLifeMs`. */
  get halfLifeMs(): number {
    return this.#halfLifeMs
  }

  /** Shapes tracked now (never above {@link capacity}). */
  get size(): number {
    return this.#counters.size
  }

  /**
   * Whether `key` is tracked with at least `minRequests` guaranteed (decayed)
   * requests: a result worth a second copy on another node. The default, 1.5,
   * means "asked for more than once lately" (decay makes two requests a bit under 2).
   */
  isHot(key: string, minRequests = 1.5): boolean {
    const counter = this.#counters.get(key)
    return counter !== undefined && counter.requests - counter.error >= minRequests * this.#weightNow(this.#now())
  }

  /**
   * Counts one `.cached()` query. Hot path: a map lookup and a heap sift,
   * O(log capacity) at worst and usually O(1) for a tracked key (busy keys sit
   * at the leaves of the min-heap); O(log capacity) for a new one.
   * `describe` is called only when `key` is not tracked yet; if it throws,
   * nothing is recorded. A `databaseMs` that is missing, negative or not finite
   * leaves the mean untouched (the request still counts); on a hit it is ignored.
   *
   * @example
   * ```ts
   * statistics.record(key, () => shape, 'miss', performance.now() - started)
   * ```
   */
  record(key: string, describe: () => QueryShape, outcome: 'hit' | 'miss', databaseMs?: number): void {
    const now = this.#now()
    const weight = this.#weightNow(now)
    let counter = this.#counters.get(key)
    if (counter === undefined) {
      counter = this.#admit(key, describe(), weight, now)
    } else {
      counter.requests += weight
      this.#heap.increased(counter)
    }
    if (outcome === 'hit') {
      counter.hits += weight
    } else {
      counter.misses += weight
      // `>= 0` is false for NaN; `< Infinity` keeps one bad timer from poisoning the mean forever.
      if (databaseMs !== undefined && databaseMs >= 0 && databaseMs < Infinity) {
        counter.executions += weight
        counter.databaseMs += databaseMs * weight
      }
    }
    counter.lastSeen = now
  }

  /**
   * The `limit` shapes with the highest {@link HotQuery.score}, highest first,
   * decayed to now. O(capacity log capacity).
   *
   * @throws {RangeError} When `limit` is not an integer of at least 0.
   *
   * @example
   * ```ts
   * const manifest = createManifest('app', statistics.top(200))
   * ```
   */
  top(limit: number): HotQuery[] {
    integerFrom(limit, 'limit', 0)
    const now = this.#now()
    const scale = 1 / this.#weightNow(now)
    // Ranking in scaled units gives the same order as decayed units.
    const ranked = [...this.#counters.values()]
      .map((counter) => ({ counter, score: scoreOf(counter) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, limit)
    return ranked.map(({ counter }) => hotQuery(counter.shape, scaleCounts(counter, scale)))
  }

  /**
   * Every tracked shape with its counts decayed to now, JSON-able (parameters
   * as superjson text). O(capacity); each shape's parameters are encoded once.
   *
   * @example
   * ```ts
   * const text = JSON.stringify(statistics.snapshot())
   * other.merge(JSON.parse(text))
   * ```
   */
  snapshot(): StatisticsSnapshot {
    const now = this.#now()
    const scale = 1 / this.#weightNow(now)
    const entries: SnapshotEntry[] = []
    for (const counter of this.#counters.values()) {
      counter.parametersText ??= encodeValue(counter.shape.parameters)
      entries.push({
        ...copyShape(counter.shape),
        key: counter.key,
        parameters: counter.parametersText,
        ...scaleCounts(counter, scale),
      })
    }
    return { version: 1, at: now, halfLifeMs: this.#halfLifeMs, entries }
  }

  /**
   * Adds another process's snapshot: its counts are decayed from its `at` to now
   * (with this instance's half-life) and summed into the matching shapes; new
   * shapes are added. If that makes more than `capacity` shapes, those with the
   * lowest counts are dropped. A shape the other side did not track may have
   * been seen there up to that side's smallest count: such sums can undercount.
   * O((capacity + entries) log(capacity + entries)).
   *
   * @throws {TypeError} When `snapshot` is not a valid {@link StatisticsSnapshot} (the message names the field); nothing is merged.
   *
   * @example
   * ```ts
   * farmWide.merge(processA.snapshot())
   * farmWide.merge(processB.snapshot())
   * ```
   */
  merge(snapshot: StatisticsSnapshot): void {
    const valid = validateSnapshot(snapshot)
    // Decode every entry before touching the table, so a bad one merges nothing.
    const incoming = valid.entries.map((entry, index) => ({
      entry,
      shape: this.#counters.get(entry.key)?.shape ?? entryShape(entry, `snapshot.entries[${index}]`),
    }))
    const now = this.#now()
    // Into scaled units: decay from the snapshot's time to now, then scale to the epoch.
    const factor = decayFactor(now - valid.at, this.#halfLifeMs) * this.#weightNow(now)
    for (const { entry, shape } of incoming) {
      let counter = this.#counters.get(entry.key)
      if (counter === undefined) {
        counter = new Counter(entry.key, shape, 0, 0, entry.lastSeen)
        counter.parametersText = entry.parameters
        this.#counters.set(entry.key, counter)
      }
      counter.add(scaleCounts(entry, factor))
    }
    let kept = [...this.#counters.values()]
    if (kept.length > this.#capacity) {
      kept = kept.sort((a, b) => b.requests - a.requests).slice(0, this.#capacity)
      this.#counters.clear()
      for (const counter of kept) this.#counters.set(counter.key, counter)
    }
    this.#heap.reset(kept)
  }

  /** A new counter, taking over the minimum one when the table is full. */
  #admit(key: string, shape: QueryShape, weight: number, now: number): Counter {
    if (this.#heap.size < this.#capacity) {
      const counter = new Counter(key, shape, weight, 0, now)
      this.#heap.push(counter)
      this.#counters.set(key, counter)
      return counter
    }
    // Space-saving: the newcomer may be the heavy hitter the evicted count belonged to, so it inherits it as error.
    const evicted = this.#heap.peek()!
    this.#counters.delete(evicted.key)
    const counter = new Counter(key, shape, evicted.requests + weight, evicted.requests, now)
    this.#heap.replaceMin(counter)
    this.#counters.set(key, counter)
    return counter
  }

  /** What one request weighs now, in scaled units; renormalises when that grows large. */
  #weightNow(now: number): number {
    if (now !== this.#weightAt) {
      let weight = 2 ** ((now - this.#epoch) / this.#halfLifeMs)
      if (weight > RENORMALISE_AT) {
        this.#renormalise(weight, now)
        weight = 1
      }
      this.#weightAt = now
      this.#weight = weight
    }
    return this.#weight
  }

  /** Moves the epoch to `now`: every count is divided by the same factor, so heap order stands. */
  #renormalise(weight: number, now: number): void {
    for (const counter of this.#counters.values()) counter.scale(1 / weight)
    this.#epoch = now
  }
}
