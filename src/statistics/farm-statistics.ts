/**
 * Farm-wide query statistics: every process adds what it recorded since its
 * last push to one shared document in memcached, so a warm-up manifest built
 * from it reflects the whole farm, not the one process that happens to build it.
 *
 * The document, at `<namespace>:hot`, is a {@link StatisticsSnapshot} (JSON,
 * counts decayed to its `at`, at most `capacity` entries ranked by score and
 * never above the store's `maxValueBytes`). It is written to every live node
 * with a one-day TTL, like the tier state, so losing nodes loses no copy; a
 * full memcached restart loses it.
 *
 * Concurrency: a push is read, merge, write. memcached gives no transaction
 * here, so two processes pushing at the same moment race and the last writer
 * wins: the loser's counts for that interval are lost. That is acceptable for
 * statistics (a ranking, not an invoice); pushes from one process never overlap.
 *
 * @module
 */
import { hotStatisticsKey, validateNamespace } from '../keys.js'
import { readSharedDocument, writeSharedDocument } from '../store/shared-document.js'
import { delayMs, describe, positiveInteger, rejectUnknown, requireOptionsObject } from '../util/validate.js'
import { combineCounts, decayFactor, mapCounts, scaleCounts, sumCounts } from './decayed-counts.js'
import { hotQueriesOf, scoreOf } from './hot-query-score.js'
import { copyShape } from './query-shape.js'
import type { HotQuery } from './query-shape.js'
import type { QueryStatistics } from './query-statistics.js'
import { entryShape, MAX_COUNT, validateSnapshot } from './statistics-snapshot.js'
import type { SnapshotEntry, StatisticsSnapshot } from './statistics-snapshot.js'
import type { Store } from '../store/store.js'
import { StoreUnavailableError } from '../store/store.js'

/** Options of {@link FarmStatistics}. */
export interface FarmStatisticsOptions {
  /** The cache tier the document lives on. */
  store: Store
  /** Namespace of the processes' caches; the document is `<namespace>:hot`. */
  namespace: string
  /** This process's statistics. */
  local: QueryStatistics
  /** Entries kept in the shared document, highest score first. Default 500. */
  capacity?: number
  /** Push interval of {@link FarmStatistics.start}, ms. Default 10 000. */
  intervalMs?: number
  /** Receives failures of background pushes (store down, …). Default: ignored. */
  onError?: (error: unknown) => void
}

const DEFAULT_CAPACITY = 500
const DEFAULT_INTERVAL_MS = 10_000
/** One day: the document outlives quiet nights and lost nodes, not a full restart. */
const DOCUMENT_TTL_SECONDS = 24 * 60 * 60
/** Deltas below this (decayed requests) are float noise, not traffic. */
const EPSILON = 1e-6
const KNOWN_OPTIONS = ['store', 'namespace', 'local', 'capacity', 'intervalMs', 'onError']

/**
 * Periodically merges this process's {@link QueryStatistics} into the
 * farm-wide document (see the module comment for the race it accepts).
 *
 * @example
 * ```ts
 * const farm = new FarmStatistics({ store, namespace: 'app', local: statistics })
 * farm.start() // pushes every 10 s
 * // later, in the monitor or the CLI:
 * const manifest = createManifest('app', (await farm.read()).slice(0, 200))
 * await farm.stop() // pushes what is left
 * ```
 */
export class FarmStatistics {
  readonly #store: Store
  readonly #key: string
  readonly #local: QueryStatistics
  readonly #capacity: number
  readonly #intervalMs: number
  readonly #onError: (error: unknown) => void
  /** What the last successful push took from `local`: the next push adds only what came after. */
  #baseline: { at: number; entries: Map<string, SnapshotEntry> } | undefined
  #timer: NodeJS.Timeout | undefined
  /** The push in flight; pushes are chained so two never compute from the same baseline. */
  #pushing: Promise<void> = Promise.resolve()

  /**
   * @throws {TypeError} On a missing store or local statistics, a bad namespace or an unknown option.
   * @throws {RangeError} On a `capacity` that is not a positive integer or an `intervalMs` no timer can wait.
   */
  constructor(options: FarmStatisticsOptions) {
    rejectUnknown(requireOptionsObject(options, 'FarmStatistics'), KNOWN_OPTIONS, 'FarmStatistics')
    if (typeof options.store !== 'object' || options.store === null || typeof options.store.getReplicas !== 'function') {
      throw new TypeError(`store must be a Store, got ${describe(options.store)}`)
    }
    if (typeof options.local !== 'object' || options.local === null || typeof options.local.snapshot !== 'function') {
      throw new TypeError(`local must be a QueryStatistics, got ${describe(options.local)}`)
    }
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new TypeError(`onError must be a function, got ${describe(options.onError)}`)
    }
    this.#store = options.store
    this.#key = hotStatisticsKey(validateNamespace(options.namespace))
    this.#local = options.local
    this.#capacity = positiveInteger(options.capacity ?? DEFAULT_CAPACITY, 'capacity')
    this.#intervalMs = delayMs(options.intervalMs ?? DEFAULT_INTERVAL_MS, 'intervalMs')
    this.#onError = options.onError ?? (() => {})
  }

  /** Pushes every `intervalMs` until {@link stop}; failures go to `onError`. Idempotent; does not keep the process alive. */
  start(): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => {
      this.push().catch(this.#onError)
    }, this.#intervalMs)
    this.#timer.unref()
  }

  /** Stops the timer, waits for a push in flight, then pushes what is left. Never rejects (failures go to `onError`). */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
    await this.push().catch(this.#onError)
  }

  /**
   * Adds what `local` recorded since the last successful push to the shared
   * document: read it (the freshest copy on any live node), decay it to now,
   * add the delta, keep the `capacity` best-scored entries that fit the store's
   * `maxValueBytes`, write it to every live node. Does nothing when there is no
   * new traffic. After a failure the same counts are retried on the next push.
   *
   * @throws {StoreUnavailableError} When no node could be read or written.
   *
   * @example
   * ```ts
   * await farm.push() // e.g. before building a manifest in this very process
   * ```
   */
  push(): Promise<void> {
    const run = this.#pushing.then(() => this.#push())
    // The chain must survive a failed push.
    this.#pushing = run.catch(() => {})
    return run
  }

  /**
   * The farm-wide statistics, decayed to now, highest score first: what a
   * manifest is built from. Empty when no node holds the document.
   *
   * @throws {StoreUnavailableError} When no node answered.
   *
   * @example
   * ```ts
   * const manifest = createManifest('app', (await farm.read()).slice(0, 200))
   * ```
   */
  async read(): Promise<HotQuery[]> {
    const document = await this.readSnapshot()
    if (document === undefined) return []
    return hotQueriesOf(document, { halfLifeMs: this.#local.halfLifeMs })
  }

  /**
   * The raw farm-wide document (the freshest valid copy on any live node), e.g.
   * for the monitor to persist it to a file; `undefined` when no node holds one.
   *
   * @throws {StoreUnavailableError} When no node answered.
   */
  async readSnapshot(): Promise<StatisticsSnapshot | undefined> {
    const parse = (copy: Buffer): StatisticsSnapshot | undefined => {
      try {
        const snapshot = validateSnapshot(JSON.parse(copy.toString('utf8')), this.#key)
        // Parameters decoded now, so read() and the manifests built from it never meet bad
        // ones (anyone who reaches a node can write the document): such entries are dropped.
        let dropped: unknown
        const entries = snapshot.entries.filter((entry, index) => {
          try {
            entryShape(entry, `${this.#key}.entries[${index}]`)
            return true
          } catch (error) {
            dropped ??= error
            return false
          }
        })
        if (dropped !== undefined) this.#onError(dropped)
        return entries.length === snapshot.entries.length ? snapshot : { ...snapshot, entries }
      } catch (error) {
        // Garbage under our key is no document: the next push overwrites it.
        this.#onError(error)
        return undefined
      }
    }
    return readSharedDocument(this.#store, this.#key, parse, (document) => document.at)
  }

  async #push(): Promise<void> {
    const current = this.#local.snapshot()
    const delta = this.#delta(current)
    if (delta.length === 0) return
    const document = await this.readSnapshot()
    const now = current.at
    const halfLifeMs = this.#local.halfLifeMs
    const merged = new Map<string, SnapshotEntry>()
    if (document !== undefined) {
      const decay = decayFactor(now - document.at, halfLifeMs)
      for (const entry of document.entries) merged.set(entry.key, { ...entry, ...scaleCounts(entry, decay) })
    }
    for (const entry of delta) {
      const known = merged.get(entry.key)
      merged.set(entry.key, known === undefined ? entry : { ...known, ...sumCounts(known, entry) })
    }
    const text = this.#encode(now, halfLifeMs, [...merged.values()])
    const outcomes = await writeSharedDocument(this.#store, this.#key, Buffer.from(text, 'utf8'), DOCUMENT_TTL_SECONDS)
    const failure = outcomes.find((outcome): outcome is StoreUnavailableError => outcome !== true)
    if (!outcomes.includes(true)) {
      throw failure ?? new StoreUnavailableError(`no node took ${this.#key}`)
    }
    this.#baseline = { at: current.at, entries: new Map(current.entries.map((entry) => [entry.key, entry])) }
  }

  /** `current` minus the baseline decayed to `current.at`: only traffic since the last push. */
  #delta(current: StatisticsSnapshot): SnapshotEntry[] {
    const baseline = this.#baseline
    const decay = baseline === undefined ? 1 : decayFactor(current.at - baseline.at, this.#local.halfLifeMs)
    const delta: SnapshotEntry[] = []
    for (const entry of current.entries) {
      const base = baseline?.entries.get(entry.key)
      // A counter's error only grows when it is (re)admitted: then its whole count is new to the farm.
      if (base === undefined || entry.error > base.error * decay + EPSILON) {
        if (entry.requests > EPSILON) delta.push(entry)
        continue
      }
      const before = scaleCounts(base, decay)
      const requests = entry.requests - before.requests
      if (requests <= EPSILON) continue
      const since = combineCounts(entry, before, (now, then) => positive(now - then))
      delta.push({ ...entry, ...since, requests, error: 0 })
    }
    return delta
  }

  /** The document as JSON: the `capacity` best-scored entries, skipping any that would push it over `maxValueBytes`. */
  #encode(at: number, halfLifeMs: number, entries: SnapshotEntry[]): string {
    const ranked = entries
      .map((entry) => ({ entry, score: scoreOf(entry) }))
      .sort((a, b) => b.score - a.score || b.entry.requests - a.entry.requests)
    const head = `{"version":1,"at":${at},"halfLifeMs":${halfLifeMs},"entries":[`
    const tail = ']}'
    const limit = this.#store.maxValueBytes
    let size = Buffer.byteLength(head) + tail.length
    const parts: string[] = []
    for (const { entry } of ranked) {
      if (parts.length >= this.#capacity) break
      const part = JSON.stringify(compact(entry))
      const cost = Buffer.byteLength(part) + (parts.length === 0 ? 0 : 1)
      // Long SQL: an entry that does not fit is dropped, smaller lower-scored ones may still fit.
      if (size + cost > limit) continue
      parts.push(part)
      size += cost
    }
    return head + parts.join(',') + tail
  }
}

/** Float noise below {@link EPSILON} is no traffic. */
function positive(value: number): number {
  return value > EPSILON ? value : 0
}

/**
 * Counts rounded to 1/1000 (a decayed count needs no 17 significant digits), and no field a snapshot does not define.
 * Capped at what readers accept: a document read near the cap plus this process's counts must still be read.
 */
function compact(entry: SnapshotEntry): SnapshotEntry {
  return { ...copyShape(entry), ...mapCounts(entry, (count) => Math.min(MAX_COUNT, Math.round(count * 1000) / 1000)) }
}
