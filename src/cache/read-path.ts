import type { CompiledQuery, QueryResult, RootOperationNode } from 'kysely'
import type { CacheMark } from '../kysely/cached.js'
import { analyzeStatement, type StatementInfo } from '../kysely/statement.js'
import { lockKey, queryKey } from '../keys.js'
import { channels } from '../observability/channels.js'
import type { QueryShape } from '../statistics/query-shape.js'
import { Budget } from './budget.js'
import type { CacheCounters } from './counters.js'
import type { CacheEngineConfig } from './engine-config.js'
import type { AbortableOperationOptions, QueryRunner } from './query-runner.js'
import type { Generations } from './generations.js'
import { lookup, ABSENT, type Lookup } from './lookup.js'
import type { NearCache, NearEntry } from './near-cache.js'
import type { QuorumRead } from './quorum.js'
import { entryLifetime, type ResultWriter } from './result-writer.js'
import type { EntryTimes } from './codec.js'
import { freshness } from './freshness.js'
import { Refresher, type RefreshRequest } from './background-refresh.js'
import { computeUnderLock, type SafeLockConfig } from './safe-lock.js'
import { SingleFlight } from './single-flight.js'
import { agreedTokens, currentTokens, sameTokens, UNPROVEN, versionOf, type Tokens } from './tokens.js'

/** What the read path needs from the engine. */
export interface ReadPathConfig {
  readonly engine: CacheEngineConfig
  readonly generations: Generations
  readonly counters: CacheCounters
  /** How many writes this process has made: a read joins no flight keyed before one. */
  readonly writeEpoch: () => number
  /** Counts and reports a cache failure. */
  readonly failed: (error: unknown) => void
  /** Stores results as entries. */
  readonly writer: ResultWriter
  /** This process's copies of recent results, or `undefined` when turned off. */
  readonly near: NearCache | undefined
}

/** One `.cached()` query on its way through the cache. */
interface Request {
  readonly runner: QueryRunner
  readonly compiled: CompiledQuery
  readonly mark: CacheMark
  readonly info: StatementInfo
  readonly options: AbortableOperationOptions
  readonly key: string
  readonly ttl: number
  /** This process's write count when the read began: rows read before a later write of its own are not kept near. */
  readonly epoch: number
  /** Seconds it may be served stale past its TTL, refreshed in the background. */
  readonly swr: number
  /** Set when the hit serves the entry past its TTL (swr): told to subscribers of the query channel. */
  servedStale?: true
}

/** The lookup's one round trip: the entry and every generation it depends on. */
interface Probe {
  /** The near copy whose generations a majority still holds: served without the entry. */
  readonly near: NearEntry | undefined
  readonly entry: Lookup<Buffer>
  readonly generationKeys: readonly string[]
  readonly generations: readonly QuorumRead[]
  /** When the read began, on the flights' clock. */
  readonly readAt: number
  /** What is left of the query's cache time once the lookup is done. */
  readonly budget: Budget
  /** The tokens a majority held for every generation. */
  readonly agreed: Tokens
}

interface Flight {
  readonly result: QueryResult<unknown>
  /** Served from the cache after all (a restored generation); not a database result. */
  readonly hit: boolean
  /** The rows as stored, so every joined caller gets its own copy; absent if they could not be encoded. */
  readonly encoded: Buffer | undefined
  /** Read in the key's scope: callers that joined may have it (else they run their own query). */
  readonly shareable: boolean
  /** How long the database query took, when this flight ran one. */
  readonly databaseMs: number | undefined
  /** When the rows stop being fresh and expire, and what they cost: a near copy keeps them. */
  readonly times: EntryTimes
}

/** Distinct SQL texts whose analysis is kept; cleared whole when full (rare: SQL texts are few). */
const ANALYSIS_MEMO_SIZE = 2000

/**
 * The read-through path of `.cached()` queries: lookup, hit, coalesced miss,
 * safe-mode compute and store; and the replay of one warm-up entry, stored as
 * a miss would be.
 *
 * ```ts
 * const info = readPath.analyze(compiled.sql, mark.source)
 * const result = await readPath.read(runner, compiled, mark, info, options, scope.id)
 * ```
 */
export class ReadPath {
  readonly #config: CacheEngineConfig
  readonly #generations: Generations
  readonly #counters: CacheCounters
  readonly #writeEpoch: () => number
  readonly #failed: (error: unknown) => void
  readonly #flights: SingleFlight<Flight>
  readonly #analysisBySql = new Map<string, StatementInfo>()
  readonly #near: NearCache | undefined
  readonly #writer: ResultWriter
  readonly #refresher: Refresher

  constructor(config: ReadPathConfig) {
    this.#config = config.engine
    this.#generations = config.generations
    this.#counters = config.counters
    this.#writeEpoch = config.writeEpoch
    this.#failed = config.failed
    this.#flights = new SingleFlight(config.engine.timeoutMs)
    this.#near = config.near
    this.#writer = config.writer
    this.#refresher = new Refresher({
      engine: config.engine,
      generations: config.generations,
      writer: config.writer,
      counters: config.counters,
      writeEpoch: config.writeEpoch,
      failed: config.failed,
      keepNear: (key, generationKeys, tokens, encoded, times, epoch) => this.#keep(key, generationKeys, tokens, encoded, times, epoch),
      adoptStored: (request, generationKeys, drawnFrom) => this.#adoptStored(request, generationKeys, drawnFrom),
    })
  }

  /**
   * The analysis of a `.cached()` query, memoised by its SQL text too: an
   * application rebuilds its queries on every request, so their nodes are new
   * each time, while the text (which names every table) repeats.
   */
  analyze(sql: string, node: RootOperationNode): StatementInfo {
    let info = this.#analysisBySql.get(sql)
    if (info === undefined) {
      info = analyzeStatement(node, this.#config.defaultSchema)
      if (this.#analysisBySql.size >= ANALYSIS_MEMO_SIZE) this.#analysisBySql.clear()
      this.#analysisBySql.set(sql, info)
    }
    return info
  }

  /** Serves a `.cached()` query: from the cache, from an identical query running, or from the database. */
  async read(
    runner: QueryRunner,
    compiled: CompiledQuery,
    mark: CacheMark,
    info: StatementInfo,
    options: AbortableOperationOptions,
    scope: string,
  ): Promise<QueryResult<unknown>> {
    let key: string
    try {
      key = queryKey(this.#config.namespace, compiled.sql, compiled.parameters, mark.tags, scope)
    } catch (error) {
      // A parameter no key can describe (a function, a symbol): the database decides what it means.
      this.#counters.uncacheable()
      this.#config.onError(error)
      return runner.run(compiled, options)
    }
    const request: Request = {
      runner, compiled, mark, info, options, key, ttl: mark.ttl ?? this.#config.defaultTtl, epoch: this.#writeEpoch(), swr: mark.swr,
    }
    const trusted = this.#trusted(request)
    if (trusted !== undefined) {
      this.#record(request, 'hit', undefined)
      return trusted
    }
    const probe = await this.#probe(request)
    const hit = this.#hit(request, probe)
    if (hit !== undefined) {
      this.#record(request, 'hit', undefined)
      return hit.result
    }
    return this.#miss(request, probe)
  }

  /**
   * One round trip: the value and every generation it depends on, in parallel;
   * only the generations when a near copy may still be current (a second trip
   * fetches the value if it is not). Each store call is bounded by the store's
   * own timeout, so the hit path sets no timer.
   */
  async #probe(request: Request): Promise<Probe> {
    const lookupStarted = performance.now()
    const readAt = this.#flights.ticket()
    const generationKeys = this.#generations.keysFor(request.info.reads, request.mark.tags)
    const nearCopy = this.#near?.get(request.key)
    let entry: Lookup<Buffer> | undefined
    let generations: QuorumRead[]
    if (nearCopy === undefined) {
      ;[entry, ...generations] = await Promise.all([
        lookup(this.#config.store, request.key, this.#failed),
        ...generationKeys.map((k) => this.#generations.read(k)),
      ])
    } else {
      generations = await Promise.all(generationKeys.map((k) => this.#generations.read(k)))
    }
    const agreed = agreedTokens(generations)
    let near: NearEntry | undefined
    if (entry === undefined) {
      if (agreed.kind === 'proven' && sameTokens(nearCopy!.generations, agreed.tokens)) {
        near = nearCopy
        near!.validatedAt = performance.now()
        entry = ABSENT
      } else if (agreed.kind === 'proven') {
        // Replaced since: the copy can never be served again; another process may have stored a current entry.
        this.#near!.delete(request.key)
        entry = await lookup(this.#config.store, request.key, this.#failed)
      } else {
        // Unprovable now (homes unreachable), not disproved: the copy stays for when they answer.
        entry = ABSENT
      }
    }
    const budget = new Budget(this.#config.timeoutMs - (performance.now() - lookupStarted))
    return { near, entry, generationKeys, generations, readAt, budget, agreed }
  }

  /** A near copy served without reading its generations, within the trust window the user allowed. */
  #trusted(request: Request): QueryResult<unknown> | undefined {
    const near = this.#near
    if (near === undefined || near.trustMs === 0) return undefined
    const copy = near.get(request.key)
    if (copy === undefined || performance.now() - copy.validatedAt > near.trustMs) return undefined
    // Only while fresh: refreshing needs the generations, which the full path reads.
    if (freshness(copy.times, Date.now(), 0, false) !== 'fresh') return undefined
    return this.#fromNear(request.key, copy)?.result
  }

  /** Rows of a near copy, decoded for this caller; a copy that does not decode is dropped. */
  #fromNear(key: string, copy: NearEntry): Flight | undefined {
    try {
      const rows = this.#config.codec.decodeRows(copy.rows)
      this.#counters.nearHit()
      return { result: { rows }, encoded: copy.rows, hit: true, shareable: true, databaseMs: undefined, times: copy.times }
    } catch (error) {
      this.#near?.delete(key)
      this.#failed(error)
      return undefined
    }
  }

  /** Keeps rows near, unless this process wrote since the read began (they may predate its own write). */
  #keepNear(request: Request, generationKeys: readonly string[], tokens: readonly string[], flight: Flight): void {
    if (flight.encoded !== undefined) this.#keep(request.key, generationKeys, tokens, flight.encoded, flight.times, request.epoch)
  }

  /** Keeps a copy near, unless this process wrote since `epoch` (when the rows' read began). */
  #keep(key: string, generationKeys: readonly string[], tokens: readonly string[], encoded: Buffer, times: EntryTimes, epoch: number): void {
    if (this.#near === undefined || this.#writeEpoch() !== epoch) return
    this.#near.set(key, { rows: encoded, generations: tokens, generationKeys, validatedAt: performance.now(), times })
  }

  /** The entry found, if it was computed under the generations a majority holds now. */
  #hit(request: Request, probe: Probe): Flight | undefined {
    if (probe.near !== undefined) {
      if (this.#inTime(request, probe.generationKeys, probe.near.times)) return this.#fromNear(request.key, probe.near)
      this.#near?.delete(request.key)
      return undefined
    }
    if (probe.entry.kind !== 'found' || probe.agreed.kind !== 'proven') return undefined
    const hit = this.#servable(probe.entry.value, probe.agreed.tokens)
    if (hit === undefined || !this.#inTime(request, probe.generationKeys, hit.times)) return undefined
    this.#keepNear(request, probe.generationKeys, probe.agreed.tokens, hit)
    return hit
  }

  /**
   * Keeps near the stored entry if it is current, fresh and newer than the one that drew
   * the refresh (another process refreshed it already); whether it was.
   */
  async #adoptStored(request: RefreshRequest, generationKeys: readonly string[], drawnFrom: EntryTimes): Promise<boolean> {
    if (this.#near === undefined) return false
    const epoch = this.#writeEpoch()
    const [entry, ...read] = await Promise.all([
      lookup(this.#config.store, request.key, this.#failed),
      ...generationKeys.map((key) => this.#generations.read(key)),
    ])
    const agreed = agreedTokens(read)
    if (entry.kind !== 'found' || agreed.kind !== 'proven') return false
    const stored = this.#servable(entry.value, agreed.tokens)
    if (stored?.encoded === undefined || stored.times.freshUntil <= drawnFrom.freshUntil) return false
    if (freshness(stored.times, Date.now(), 0, false) !== 'fresh') return false
    this.#keep(request.key, generationKeys, agreed.tokens, stored.encoded, stored.times, epoch)
    return true
  }

  /**
   * Whether a result whose generations match may be served now, by time alone; starts
   * its background refresh when early refresh drew it or it is served stale.
   */
  #inTime(request: Request, generationKeys: readonly string[], times: EntryTimes): boolean {
    const state = freshness(times, Date.now(), request.swr, this.#config.earlyRefresh)
    if (state === 'expired') return false
    if (state === 'stale') {
      this.#counters.staleServed()
      request.servedStale = true
      this.#refresher.refresh(request, generationKeys, 'stale', times)
    } else if (state === 'refresh-early') {
      this.#refresher.refresh(request, generationKeys, 'early', times)
    }
    return true
  }

  /**
   * Identical misses share one flight: same key, no write by this process since, and
   * either a flight whose query began after this read did, or one that read the very
   * generations this read did (a majority held them, so no write came in between).
   */
  async #miss(request: Request, probe: Probe): Promise<QueryResult<unknown>> {
    const { promise, joined } = this.#flights.run(
      `${request.key}|${this.#writeEpoch()}`,
      probe.readAt,
      versionOf(probe.agreed),
      (started) => this.#lead(request, probe, started),
    )
    if (joined) this.#counters.coalesced()
    let flight: Flight
    try {
      flight = await promise
    } catch (error) {
      // The caller whose signal aborted the shared query was told so; the others were not aborted.
      if (!joined || request.options?.signal?.aborted || !isAbortReason(error)) throw error
      return request.runner.run(request.compiled, request.options)
    }
    this.#record(request, flight.hit ? 'hit' : 'miss', joined ? undefined : flight.databaseMs)
    if (!joined) {
      return flight.result
    }
    // Rows read out of the key's scope, or that cannot be copied faithfully: run for this caller.
    if (!flight.shareable || flight.encoded === undefined) {
      return request.runner.run(request.compiled, request.options)
    }
    return { rows: this.#config.codec.decodeRows(flight.encoded) }
  }

  /** The flight's own work: the generations to store under, then the query, under the farm-wide lock when degraded. */
  async #lead(request: Request, probe: Probe, started: (version?: string) => void): Promise<Flight> {
    // Unknown generations: the result can be neither validated nor stored.
    const current =
      probe.entry.kind === 'failed'
        ? UNPROVEN
        : await probe.budget.bound(currentTokens(this.#generations, probe.generationKeys, probe.generations, this.#failed), UNPROVEN)
    const compute = (): Promise<{ value: Flight; stored: boolean }> => this.#compute(request, current, probe.budget, started)
    const safeMode = this.#config.safeMode
    // Degraded: one process of the farm computes. Needs the generations, or nothing could be stored.
    if (safeMode !== false && request.mark.safe && current.kind === 'proven' && this.#config.mode() === 'degraded') {
      // Another process's result may have been computed before a late joiner's read:
      // from here on, only callers that read these very generations may join.
      started(versionOf(current))
      return this.#keptNear(request, probe, current, await this.#computeUnderLock(request.key, current.tokens, safeMode, compute))
    }
    return this.#keptNear(request, probe, current, (await compute()).value)
  }

  /** `flight`, its rows kept near when they are the scope's and computed (or found) under `current`. */
  #keptNear(request: Request, probe: Probe, current: Tokens, flight: Flight): Flight {
    if (current.kind === 'proven' && flight.shareable) this.#keepNear(request, probe.generationKeys, current.tokens, flight)
    return flight
  }

  /** Runs the query and stores its rows under `current`, when they are known, encodable and the key scope's. */
  async #compute(
    request: Request,
    current: Tokens,
    budget: Budget,
    started: (version?: string) => void,
  ): Promise<{ value: Flight; stored: boolean }> {
    started(versionOf(current))
    const queryStarted = performance.now()
    const result = await request.runner.run(request.compiled, request.options)
    const databaseMs = performance.now() - queryStarted
    const encoded = this.#writer.encode(result.rows)
    const shareable = await request.runner.storable()
    const lifetime = entryLifetime(request.ttl, request.swr, databaseMs, this.#config.ttlJitter)
    const stored =
      current.kind === 'proven' &&
      encoded !== undefined &&
      shareable &&
      (await budget.bound(this.#writer.putResult(request.key, current.tokens, encoded, lifetime), false))
    return { value: { result, encoded, hit: false, shareable, databaseMs, times: lifetime.times }, stored }
  }

  /** Counts a served query and tells statistics and subscribers. */
  #record(request: Request, outcome: 'hit' | 'miss', databaseMs: number | undefined): void {
    if (outcome === 'hit') {
      this.#counters.hit()
    } else {
      this.#counters.miss()
    }
    const { key, compiled, info, mark, ttl } = request
    this.#config.statistics?.record(key, () => shape(key, compiled, info, mark, ttl), outcome, databaseMs)
    if (channels.query.hasSubscribers) {
      channels.query.publish({
        namespace: this.#config.namespace,
        key,
        outcome,
        ...(databaseMs === undefined ? {} : { databaseMs }),
        ...(request.servedStale === true ? { stale: true } : {}),
      })
    }
  }

  /** Degraded mode: one process of the farm computes, the others wait and re-check. */
  #computeUnderLock(
    key: string,
    generations: readonly string[],
    safeMode: SafeLockConfig,
    compute: () => Promise<{ value: Flight; stored: boolean }>,
  ): Promise<Flight> {
    return computeUnderLock(
      this.#config.store,
      lockKey(key),
      safeMode,
      { compute, recheck: () => this.#recheck(key, generations) },
      this.#counters,
      (event, waitMs) => {
        if (channels.lock.hasSubscribers) {
          channels.lock.publish({ namespace: this.#config.namespace, key, event, ...(waitMs === undefined ? {} : { waitMs }) })
        }
      },
    )
  }

  /** What another process stored meanwhile, if it is servable under `generations`. */
  async #recheck(key: string, generations: readonly string[]): Promise<Lookup<Flight>> {
    const entry = await lookup(this.#config.store, key, this.#failed)
    if (entry.kind !== 'found') return entry
    const found = this.#servable(entry.value, generations)
    // Another process computed it for this miss: a miss all the same, for the hit ratio.
    return found === undefined || freshness(found.times, Date.now(), 0, false) === 'expired'
      ? ABSENT
      : { kind: 'found', value: { ...found, hit: false } }
  }

  /** An entry computed under exactly the current generations, else `undefined`. */
  #servable(value: Buffer, generations: readonly string[]): Flight | undefined {
    const entry = this.#config.codec.decodeEntry(value)
    if (entry === undefined || !sameTokens(entry.generations, generations)) {
      return undefined
    }
    try {
      const rows = this.#config.codec.decodeRows(entry.rows)
      return { result: { rows }, encoded: entry.rows, hit: true, shareable: true, databaseMs: undefined, times: entry.times }
    } catch (error) {
      // Framed as ours but undecodable: hostile or corrupt bytes, refused like a bad signature.
      this.#counters.rejected()
      this.#failed(error)
      return undefined
    }
  }
}

/** An abort signal's reason, as Kysely and the wrapped connection reject with it. */
function isAbortReason(error: unknown): boolean {
  return error instanceof DOMException && (error.name === 'AbortError' || error.name === 'TimeoutError')
}

/** What the statistics keep of a query, built only when its shape is first tracked. */
function shape(key: string, compiled: CompiledQuery, info: StatementInfo, mark: CacheMark, ttl: number): QueryShape {
  return { key, sql: compiled.sql, parameters: compiled.parameters, tables: info.reads, tags: mark.tags, ttl }
}
