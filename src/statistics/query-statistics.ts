/**
 * Per-query-shape statistics for warm-up: how often each cached query is asked
 * for and how much database time its misses cost, in bounded memory whatever
 * the traffic.
 *
 * Counting uses the space-saving heavy-hitters algorithm (Metwally, Agrawal and
 * El Abbadi, 2005) with `capacity` counters kept in a min-heap with a position
 * index: a tracked key increments its counter (O(log K) sift, usually O(1) since
 * hot keys sit at the leaves); an untracked key takes over the counter with the
 * smallest count, inheriting that count as its overestimation `error`
 * (O(log K)). Counts decay exponentially with a half-life, lazily: every counter
 * is kept in "scaled units" relative to a moving epoch (a request at time t adds
 * 2^((t - epoch) / halfLife)), so decay never touches the table and heap order is
 * unaffected; all counters are renormalised once every 32 half-lives.
 *
 * @module
 */
import { decodeValue, encodeValue } from '../cache/codec.js'
import { describe as describeValue, positiveInteger, positiveNumber, rejectUnknown, requireOptionsObject } from '../util/validate.js'

/** What identifies a cached query and what it takes to replay it. */
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

/**
 * One tracked shape in a {@link StatisticsSnapshot}. Counts are decayed to the
 * snapshot's `at`; `parameters` is superjson text (see `encodeValue` in
 * cache/codec.ts) so Date, bigint and Buffer parameters survive JSON.
 */
export interface SnapshotEntry {
  readonly key: string
  readonly sql: string
  /** Superjson text of the parameter array. */
  readonly parameters: string
  readonly tables: readonly string[]
  readonly tags: readonly string[]
  readonly ttl: number
  readonly requests: number
  readonly error: number
  readonly hits: number
  readonly misses: number
  /** Decayed count of misses that reported a database time. */
  readonly executions: number
  /** Decayed sum of those database times, ms. */
  readonly databaseMs: number
  readonly lastSeen: number
}

/**
 * A compact, JSON-able copy of a {@link QueryStatistics}, for merging across
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

/** One counter. Every count is in scaled units (see the module comment). */
class Counter {
  hits = 0
  misses = 0
  executions = 0
  databaseMs = 0
  /** Superjson text of the parameters, computed once for snapshots. */
  parametersText: string | undefined

  constructor(
    public key: string,
    public shape: QueryShape,
    public count: number,
    public error: number,
    public lastSeen: number,
    public index: number,
  ) {}
}

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
  /** Min-heap on `count`; each counter knows its index. */
  readonly #heap: Counter[] = []
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
    return counter !== undefined && counter.count - counter.error >= minRequests * this.#weightNow(this.#now())
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
      counter.count += weight
      this.#siftDown(counter.index)
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
   * @example
   * ```ts
   * const manifest = createManifest('app', statistics.top(200))
   * ```
   */
  top(limit: number): HotQuery[] {
    if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError(`limit must be a non-negative integer, got ${describeValue(limit)}`)
    }
    const now = this.#now()
    const scale = 1 / this.#weightNow(now)
    // Ranking in scaled units gives the same order as decayed units.
    const ranked = [...this.#counters.values()]
      .map((counter) => ({ counter, score: scoreOf(counter.count, counter.error, counter.executions, counter.databaseMs) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, limit)
    return ranked.map(({ counter }) =>
      hotQuery(counter.shape, {
        requests: counter.count * scale,
        error: counter.error * scale,
        hits: counter.hits * scale,
        misses: counter.misses * scale,
        executions: counter.executions * scale,
        databaseMs: counter.databaseMs * scale,
        lastSeen: counter.lastSeen,
      }),
    )
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
        key: counter.key,
        sql: counter.shape.sql,
        parameters: counter.parametersText,
        tables: counter.shape.tables,
        tags: counter.shape.tags,
        ttl: counter.shape.ttl,
        requests: counter.count * scale,
        error: counter.error * scale,
        hits: counter.hits * scale,
        misses: counter.misses * scale,
        executions: counter.executions * scale,
        databaseMs: counter.databaseMs * scale,
        lastSeen: counter.lastSeen,
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
      shape: this.#counters.get(entry.key)?.shape ?? shapeOf(entry, `snapshot.entries[${index}]`),
    }))
    const now = this.#now()
    // Into scaled units: decay from the snapshot's time to now, then scale to the epoch.
    const factor = decayFactor(now - valid.at, this.#halfLifeMs) * this.#weightNow(now)
    for (const { entry, shape } of incoming) {
      let counter = this.#counters.get(entry.key)
      if (counter === undefined) {
        counter = new Counter(entry.key, shape, 0, 0, entry.lastSeen, -1)
        counter.parametersText = entry.parameters
        this.#counters.set(entry.key, counter)
      }
      counter.count += entry.requests * factor
      counter.error += entry.error * factor
      counter.hits += entry.hits * factor
      counter.misses += entry.misses * factor
      counter.executions += entry.executions * factor
      counter.databaseMs += entry.databaseMs * factor
      counter.lastSeen = Math.max(counter.lastSeen, entry.lastSeen)
    }
    let kept = [...this.#counters.values()]
    if (kept.length > this.#capacity) {
      kept = kept.sort((a, b) => b.count - a.count).slice(0, this.#capacity)
      this.#counters.clear()
      for (const counter of kept) this.#counters.set(counter.key, counter)
    }
    this.#heap.length = 0
    for (const counter of kept) {
      counter.index = this.#heap.length
      this.#heap.push(counter)
    }
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#siftDown(i)
  }

  /** A new counter, taking over the minimum one when the table is full. */
  #admit(key: string, shape: QueryShape, weight: number, now: number): Counter {
    if (this.#heap.length < this.#capacity) {
      const counter = new Counter(key, shape, weight, 0, now, this.#heap.length)
      this.#heap.push(counter)
      this.#counters.set(key, counter)
      // A new counter of weight w may be below older ones: restore the heap upward.
      this.#siftUp(counter.index)
      return counter
    }
    const evicted = this.#heap[0]!
    this.#counters.delete(evicted.key)
    const counter = new Counter(key, shape, evicted.count + weight, evicted.count, now, 0)
    this.#heap[0] = counter
    this.#counters.set(key, counter)
    this.#siftDown(0)
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
    const scale = 1 / weight
    for (const counter of this.#heap) {
      counter.count *= scale
      counter.error *= scale
      counter.hits *= scale
      counter.misses *= scale
      counter.executions *= scale
      counter.databaseMs *= scale
    }
    this.#epoch = now
  }

  #siftDown(index: number): void {
    const heap = this.#heap
    const length = heap.length
    const counter = heap[index]!
    const count = counter.count
    for (;;) {
      const left = 2 * index + 1
      if (left >= length) break
      let child = left
      let childCounter = heap[left]!
      const right = left + 1
      if (right < length && heap[right]!.count < childCounter.count) {
        child = right
        childCounter = heap[right]!
      }
      if (childCounter.count >= count) break
      heap[index] = childCounter
      childCounter.index = index
      index = child
    }
    heap[index] = counter
    counter.index = index
  }

  #siftUp(index: number): void {
    const heap = this.#heap
    const counter = heap[index]!
    while (index > 0) {
      const parent = (index - 1) >> 1
      const parentCounter = heap[parent]!
      if (parentCounter.count <= counter.count) break
      heap[index] = parentCounter
      parentCounter.index = index
      index = parent
    }
    heap[index] = counter
    counter.index = index
  }
}

/**
 * Checks that `value` is a {@link StatisticsSnapshot} (e.g. read from memcached
 * or a file) and returns it typed. `name` prefixes the field paths in messages.
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
    throw new TypeError(`${name}.version must be 1, got ${describeValue(snapshot['version'])}`)
  }
  finiteAt(snapshot['at'], `${name}.at`)
  if (typeof snapshot['halfLifeMs'] !== 'number' || !(snapshot['halfLifeMs'] > 0) || !Number.isFinite(snapshot['halfLifeMs'])) {
    throw new TypeError(`${name}.halfLifeMs must be a positive finite number, got ${describeValue(snapshot['halfLifeMs'])}`)
  }
  const entries = snapshot['entries']
  if (!Array.isArray(entries)) {
    throw new TypeError(`${name}.entries must be an array, got ${describeValue(entries)}`)
  }
  entries.forEach((item, index) => {
    const path = `${name}.entries[${index}]`
    const entry = objectAt(item, path)
    for (const field of ['key', 'sql', 'parameters'] as const) {
      if (typeof entry[field] !== 'string') {
        throw new TypeError(`${path}.${field} must be a string, got ${describeValue(entry[field])}`)
      }
    }
    for (const field of ['tables', 'tags'] as const) {
      const list = entry[field]
      if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) {
        throw new TypeError(`${path}.${field} must be an array of strings, got ${describeValue(list)}`)
      }
    }
    for (const field of ['ttl', 'requests', 'error', 'hits', 'misses', 'executions', 'databaseMs'] as const) {
      const number = entry[field]
      if (typeof number !== 'number' || !Number.isFinite(number) || number < 0) {
        throw new TypeError(`${path}.${field} must be a finite number >= 0, got ${describeValue(number)}`)
      }
    }
    finiteAt(entry['lastSeen'], `${path}.lastSeen`)
  })
  return value as StatisticsSnapshot
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
    .map((entry, index) =>
      hotQuery(shapeOf(entry, `snapshot.entries[${index}]`), {
        requests: entry.requests * scale,
        error: entry.error * scale,
        hits: entry.hits * scale,
        misses: entry.misses * scale,
        executions: entry.executions * scale,
        databaseMs: entry.databaseMs * scale,
        lastSeen: entry.lastSeen,
      }),
    )
    .sort((a, b) => b.score - a.score)
}

/** `2^(-elapsed / halfLife)`; time that runs backwards (clock skew between hosts) does not inflate counts. */
export function decayFactor(elapsedMs: number, halfLifeMs: number): number {
  return elapsedMs <= 0 ? 1 : 2 ** (-elapsedMs / halfLifeMs)
}

/** `requests × mean database time`, from raw sums in any common unit. */
export function scoreOf(requests: number, error: number, executions: number, databaseMs: number): number {
  // The guaranteed count, not the estimate: a one-off shape that inherited an evicted
  // counter must not outrank a real hot query because it happened to be expensive.
  return executions > 0 ? (Math.max(0, requests - error) * databaseMs) / executions : 0
}

interface Counts {
  readonly requests: number
  readonly error: number
  readonly hits: number
  readonly misses: number
  readonly executions: number
  readonly databaseMs: number
  readonly lastSeen: number
}

function hotQuery(shape: QueryShape, counts: Counts): HotQuery {
  const meanDatabaseMs = counts.executions > 0 ? counts.databaseMs / counts.executions : 0
  return {
    key: shape.key,
    sql: shape.sql,
    parameters: shape.parameters,
    tables: shape.tables,
    tags: shape.tags,
    ttl: shape.ttl,
    requests: counts.requests,
    error: counts.error,
    hits: counts.hits,
    misses: counts.misses,
    meanDatabaseMs,
    totalDatabaseMs: counts.databaseMs,
    lastSeen: counts.lastSeen,
    score: scoreOf(counts.requests, counts.error, counts.executions, counts.databaseMs),
  }
}

function shapeOf(entry: SnapshotEntry, path: string): QueryShape {
  let parameters: unknown
  try {
    parameters = decodeValue(entry.parameters)
  } catch (error) {
    throw new TypeError(`${path}.parameters must be superjson text, got ${describeValue(truncate(entry.parameters))}`, { cause: error })
  }
  if (!Array.isArray(parameters)) {
    throw new TypeError(`${path}.parameters must encode an array, got ${describeValue(parameters)}`)
  }
  return { key: entry.key, sql: entry.sql, parameters, tables: entry.tables, tags: entry.tags, ttl: entry.ttl }
}

function objectAt(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${path} must be an object, got ${describeValue(value)}`)
  }
  return value as Record<string, unknown>
}

function finiteAt(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`${path} must be a finite number, got ${describeValue(value)}`)
  }
  return value
}

function truncate(text: string, length = 80): string {
  return text.length > length ? `${text.slice(0, length)}…` : text
}
