import { CompiledQuery, type DatabaseConnection, type QueryResult, type RootOperationNode } from 'kysely'
import { declaredWritesOf, markOf, noteHandled, warmMarkOf, type CacheMark, type WarmMark } from '../kysely/cached.js'
import type { Codec } from './codec.js'
import { Generations } from './generations.js'
import type { QuorumRead } from './quorum.js'
import { InvalidationFailedError } from './invalidation-failed-error.js'
import { lockKey, queryKey } from '../keys.js'
import { channels } from '../observability/channels.js'
import { classifyRawStatement } from '../kysely/raw-statement.js'
import { computeUnderLock, UNAVAILABLE, type SafeLockConfig } from './safe-lock.js'
import { SingleFlight } from './single-flight.js'
import { analyzeStatement, normalizeTableName, type StatementInfo } from '../kysely/statement.js'
import { CacheCounters } from './counters.js'
import { StoreUnavailableError, type Store } from '../store/store.js'
import type { CacheMode } from '../tier/tier-state.js'
import type { QueryShape, QueryStatistics } from '../statistics/query-statistics.js'
import type { KeyScope } from '../kysely/scope.js'
import { ValueTooLargeError } from '../store/value-too-large-error.js'

/** What the engine needs from a connection: run on the real one, and its transaction state. */
/** Kysely passes these (an abort signal) with each call; not exported by its index. */
export type AbortableOperationOptions = Parameters<DatabaseConnection['executeQuery']>[1]

export interface QueryRunner {
  run(compiled: CompiledQuery, options?: AbortableOperationOptions): Promise<QueryResult<unknown>>
  /** Writes seen since the transaction began; `undefined` outside a transaction. */
  readonly transactionWrites: WriteSet | undefined
  beginTransaction(): void
  /** Ends the transaction and hands back what it wrote. */
  endTransaction(): WriteSet | undefined
  /**
   * The scope keys are made in (learned from a first connection if need be);
   * `undefined` when the connection held has another scope: bypass the cache.
   */
  keyScope(options?: AbortableOperationOptions): Promise<KeyScope | undefined>
  /** Whether rows just read on the connection held belong to the key scope, so may be stored. */
  storable(): Promise<boolean>
  /** `writes` with unqualified tables resolved through the search_path of the connection held. */
  resolveWrites(writes: WriteSet): Promise<WriteSet>
}

/** Tables a statement (or a transaction) wrote; `namespace` when it cannot be told. */
export interface WriteSet {
  namespace: boolean
  readonly tables: Set<string>
}

export interface CacheEngineConfig {
  readonly store: Store
  readonly namespace: string
  readonly defaultTtl: number
  readonly defaultSchema: string
  readonly generationReplicas: number
  /** Longest a query waits for the cache, all cache steps of one query together. */
  readonly timeoutMs: number
  /** The farm-wide lock's settings, or `false` when safe mode is off. */
  readonly safeMode: SafeLockConfig | false
  /** This process's mode, read on every miss: must cost no I/O. */
  readonly mode: () => CacheMode
  /** Per-shape statistics for warm-up, or `undefined` when turned off. */
  readonly statistics: QueryStatistics | undefined
  /** Nodes that hold a copy of a hot result (1: no extra copy). */
  readonly hotReplicas: number
  /** Rows and entries as stored; per cache, with the cache's registered types. */
  readonly codec: Codec
  readonly onError: (error: unknown) => void
}

interface Flight {
  readonly result: QueryResult<unknown>
  /** Served from the cache after all (a restored generation); not a database result. */
  readonly hit: boolean
  /** The rows as stored, so every joined caller gets its own copy; `undefined` if they could not be encoded. */
  readonly rowsText: string | undefined
  /** Read in the key's scope: callers that joined may have it (else they run their own query). */
  readonly shareable: boolean
}

/** Distinct SQL texts whose analysis is kept; cleared whole when full (rare: SQL texts are few). */
const ANALYSIS_MEMO_SIZE = 2000

/** A store read that failed: the value is unknown, unlike `undefined` (absent). */
const FAILED = Symbol('failed')

/** An abort signal's reason, as Kysely and the wrapped connection reject with it. */
function isAbortReason(error: unknown): boolean {
  return error instanceof DOMException && (error.name === 'AbortError' || error.name === 'TimeoutError')
}

/** The tokens, when a majority agreed on every generation; else `undefined`: they prove nothing. */
function agreedTokens(read: readonly QuorumRead[]): string[] | undefined {
  const tokens: string[] = []
  for (const generation of read) {
    if (generation.kind !== 'agreed') return undefined
    tokens.push(generation.value)
  }
  return tokens
}

/**
 * The read-through path for `.cached()` queries and the invalidation path for
 * writes. Called by the wrapped driver's connections for every statement.
 */
export class CacheEngine {
  readonly counters = new CacheCounters()
  readonly #config: CacheEngineConfig
  readonly #store: Store
  readonly #generations: Generations
  readonly #flights: SingleFlight<Flight>
  /** Bumped by every write this process makes, so a read never joins a flight that began before it. */
  #writeEpoch = 0
  readonly #analysisBySql = new Map<string, StatementInfo>()

  constructor(config: CacheEngineConfig) {
    this.#config = config
    this.#store = config.store
    this.#flights = new SingleFlight(config.timeoutMs)
    this.#generations = new Generations(config.store, config.namespace, config.generationReplicas)
  }

  async execute(
    runner: QueryRunner,
    compiled: CompiledQuery,
    options?: AbortableOperationOptions,
  ): Promise<QueryResult<unknown>> {
    const mark = markOf(compiled.query)
    if (mark !== undefined) {
      noteHandled(compiled.queryId)
      const info = this.#analyzeRead(compiled.sql, mark.source)
      // Side effects must happen on every call; volatile values only freeze when asked to.
      if (info.kind === 'read' && (info.volatility === 'stable' || (info.volatility === 'volatile' && mark.volatile))) {
        // In a transaction, uncommitted rows must not enter the cache, and the transaction must
        // see its own writes; on a connection out of scope, rows are not the key's.
        const scope = runner.transactionWrites === undefined ? await runner.keyScope(options) : undefined
        if (scope !== undefined) {
          return this.#read(runner, compiled, mark, scope.reads(info, mark.source), options, scope.id)
        }
        this.counters.bypassed++
        return runner.run(compiled, options)
      }
      // A select that writes (in a CTE), calls such a function, or that the walk cannot see
      // through: run it as any statement.
      this.counters.uncacheable++
    }
    const warm = warmMarkOf(compiled.query)
    if (warm !== undefined) {
      await this.#warm(runner, warm)
      return { rows: [] }
    }
    const writes = this.#writesOf(runner, compiled)
    const result = await runner.run(compiled, options)
    if (writes !== undefined) {
      await this.#afterWrite(runner, writes)
    }
    return result
  }

  /** A stream reached this cache: a `.cached()` one bypasses it (rows arrive in chunks, nothing to store). */
  noteStream(compiled: CompiledQuery): void {
    if (markOf(compiled.query) === undefined) return
    noteHandled(compiled.queryId)
    this.counters.bypassed++
  }

  /** Applies what a committed transaction wrote. */
  async commit(writes: WriteSet | undefined): Promise<void> {
    if (writes !== undefined && (writes.namespace || writes.tables.size > 0)) {
      await this.invalidate({ tables: [...writes.tables], namespace: writes.namespace })
    }
  }

  /** Bumps generations; resolves `false` (and counts an error) when the store could not record it. */
  async invalidate(target: { tables?: readonly string[]; tags?: readonly string[]; namespace?: boolean }): Promise<boolean> {
    this.#writeEpoch++
    const tables = target.tables?.map((table) => normalizeTableName(table, this.#config.defaultSchema))
    try {
      await this.#generations.bump({ ...target, tables })
      this.counters.invalidations++
      return true
    } catch (error) {
      this.#failed(
        new InvalidationFailedError({ tables: tables ?? [], tags: target.tags ?? [], namespace: target.namespace ?? false }, { cause: error }),
      )
      return false
    }
  }

  async #read(
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
      this.counters.uncacheable++
      this.#config.onError(error)
      return runner.run(compiled, options)
    }
    const ttl = mark.ttl ?? this.#config.defaultTtl
    const lookupStarted = performance.now()
    const readAt = this.#flights.ticket()
    const generationKeys = this.#generations.keysFor(info.reads, mark.tags)
    // One round trip: the value and every generation it depends on, in parallel. Each
    // store call is bounded by the store's own timeout, so the hit path sets no timer.
    const [value, ...generations] = await Promise.all([
      this.#get(key),
      ...generationKeys.map((k) => this.#generations.read(k)),
    ])
    // Cache work for this query, all steps together, stays within one cache timeout.
    const budget = { leftMs: this.#config.timeoutMs - (performance.now() - lookupStarted) }
    const agreed = agreedTokens(generations)

    if (value !== undefined && value !== FAILED && agreed !== undefined) {
      const hit = this.#servable(value, agreed)
      if (hit !== undefined) {
        this.counters.hits++
        this.#config.statistics?.record(key, () => shape(key, compiled, info, mark, ttl), 'hit')
        if (channels.query.hasSubscribers) channels.query.publish({ namespace: this.#config.namespace, key, outcome: 'hit' })
        return hit.result
      }
    }

    // Identical misses share one flight: same key, no write by this process since, and
    // either a flight whose query began after this read did, or one that read the very
    // generations this read did (a majority held them, so no write came in between).
    let leader = false
    let databaseMs: number | undefined
    const sharing = this.#flights.run(
      `${key}|${this.#writeEpoch}`,
      readAt,
      agreed?.join(','),
      async (started): Promise<Flight> => {
        leader = true
        // Unknown generations: the result can be neither validated nor stored.
        const current = value === FAILED ? undefined : await this.#bounded(this.#current(generationKeys, generations), budget, undefined)
        const compute = async (): Promise<{ value: Flight; stored: boolean }> => {
          started(current?.join(','))
          const queryStarted = performance.now()
          const result = await runner.run(compiled, options)
          databaseMs = performance.now() - queryStarted
          const rowsText = this.#encode(result.rows)
          const shareable = await runner.storable()
          const stored =
            current !== undefined &&
            rowsText !== undefined &&
            shareable &&
            (await this.#bounded(this.#putResult(key, current, rowsText, ttl), budget, false))
          return { value: { result, rowsText, hit: false, shareable }, stored }
        }
        const safeMode = this.#config.safeMode
        // Degraded: one process of the farm computes. Needs the generations, or nothing could be stored.
        if (safeMode !== false && mark.safe && current !== undefined && this.#config.mode() === 'degraded') {
          // Another process's result may have been computed before a late joiner's read:
          // from here on, only callers that read these very generations may join.
          started(current.join(','))
          return this.#computeUnderLock(key, current, safeMode, compute)
        }
        return (await compute()).value
      },
      () => this.counters.coalesced++,
    )
    let flight: Flight
    try {
      flight = await sharing
    } catch (error) {
      // The caller whose signal aborted the shared query was told so; the others were not aborted.
      if (leader || options?.signal?.aborted || !isAbortReason(error)) throw error
      return runner.run(compiled, options)
    }
    if (flight.hit) {
      this.counters.hits++
    } else {
      this.counters.misses++
    }
    const outcome = flight.hit ? 'hit' : 'miss'
    this.#config.statistics?.record(key, () => shape(key, compiled, info, mark, ttl), outcome, databaseMs)
    if (channels.query.hasSubscribers) {
      channels.query.publish({ namespace: this.#config.namespace, key, outcome, ...(databaseMs === undefined ? {} : { databaseMs }) })
    }
    if (leader) {
      return flight.result
    }
    // Rows read out of the key's scope, or that cannot be copied faithfully: run for this caller.
    if (!flight.shareable || flight.rowsText === undefined) {
      return runner.run(compiled, options)
    }
    return { rows: this.#config.codec.decodeRows(flight.rowsText) }
  }

  /**
   * `work`, or `late` if it does not settle within what is left of the query's
   * cache budget (the wait is charged to it); it then goes on in the background.
   * `work` must not reject.
   */
  async #bounded<T, L>(work: Promise<T>, budget: { leftMs: number }, late: L): Promise<T | L> {
    if (budget.leftMs <= 0) return late
    const started = performance.now()
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<L>((resolve) => {
      timer = setTimeout(() => resolve(late), budget.leftMs)
    })
    try {
      return await Promise.race([work, expired])
    } finally {
      clearTimeout(timer)
      budget.leftMs -= performance.now() - started
    }
  }

  /**
   * The generations to store a result under, read before its query: those a
   * majority held, with fresh ones for any no majority held. `undefined` when any
   * is unknown (too few homes answered) or could not be created: nothing is stored.
   */
  async #current(keys: readonly string[], read: readonly QuorumRead[]): Promise<string[] | undefined> {
    if (read.some((generation) => generation.kind === 'unknown')) return undefined
    try {
      return await Promise.all(keys.map((key, i) => {
        const generation = read[i]!
        return generation.kind === 'agreed' ? generation.value : this.#generations.create(key)
      }))
    } catch (error) {
      this.#failed(error)
      return undefined
    }
  }

  /** A hot result gets a copy on the next node too, so a node's death does not recompute every hot key it held. */
  #putResult(key: string, generations: readonly string[], rowsText: string, ttl: number): Promise<boolean> {
    const copies = this.#config.hotReplicas > 1 && this.#config.statistics?.isHot(key) ? this.#config.hotReplicas : 1
    return this.#put(key, this.#config.codec.encodeEntry(generations, rowsText), ttl, copies)
  }

  /** Degraded mode: one process of the farm computes, the others wait and re-check. */
  #computeUnderLock(
    key: string,
    generations: readonly string[],
    safeMode: SafeLockConfig,
    compute: () => Promise<{ value: Flight; stored: boolean }>,
  ): Promise<Flight> {
    return computeUnderLock(
      this.#store,
      lockKey(key),
      safeMode,
      { compute, recheck: () => this.#recheck(key, generations) },
      this.counters,
      (event, waitMs) => {
        if (channels.lock.hasSubscribers) {
          channels.lock.publish({ namespace: this.#config.namespace, key, event, ...(waitMs === undefined ? {} : { waitMs }) })
        }
      },
    )
  }

  /** What another process stored meanwhile, if it is servable under `generations`. */
  async #recheck(key: string, generations: readonly string[]): Promise<Flight | undefined | typeof UNAVAILABLE> {
    const value = await this.#get(key)
    if (value === FAILED) return UNAVAILABLE
    const found = value === undefined ? undefined : this.#servable(value, generations)
    // Another process computed it for this miss: a miss all the same, for the hit ratio.
    return found === undefined ? undefined : { ...found, hit: false }
  }

  /** An entry computed under exactly the current generations, else `undefined`. */
  #servable(value: Buffer, generations: readonly string[]): Flight | undefined {
    const entry = this.#config.codec.decodeEntry(value)
    if (entry === undefined || entry.generations.length !== generations.length) {
      return undefined
    }
    for (let i = 0; i < generations.length; i++) {
      if (generations[i] !== entry.generations[i]) {
        return undefined
      }
    }
    try {
      return { result: { rows: this.#config.codec.decodeRows(entry.rowsText) }, rowsText: entry.rowsText, hit: true, shareable: true }
    } catch (error) {
      this.#failed(error)
      return undefined
    }
  }

  #encode(rows: readonly unknown[]): string | undefined {
    const text = this.#config.codec.encodeRows(rows)
    // Rows the codec cannot bring back as they are (it warns once): not a cache failure, so not onError.
    if (text === undefined) this.counters.uncacheable++
    return text
  }

  async #get(key: string): Promise<Buffer | undefined | typeof FAILED> {
    try {
      return await this.#store.get(key)
    } catch (error) {
      this.#failed(error)
      return FAILED
    }
  }

  /**
   * Replays one warm-up entry: reads (or creates) its generations first, runs it
   * in a read-only transaction on this connection, and stores the rows under
   * those generations, as a miss would. Reports the outcome on the mark.
   */
  async #warm(runner: QueryRunner, warm: WarmMark): Promise<void> {
    if (runner.transactionWrites !== undefined) {
      throw new Error('warm-up cannot run inside a transaction')
    }
    warm.replayedBy = this
    const { entry } = warm
    const scope = await runner.keyScope()
    // Its rows would not be the key scope's: skipped.
    if (scope === undefined) return
    // `entry.tables` were recorded resolved in the scope of the read, as the key was.
    const key = queryKey(this.#config.namespace, entry.sql, entry.parameters, entry.tags, scope.id)
    const generationKeys = this.#generations.keysFor(entry.tables, entry.tags)
    // Read before the replay's query, as a miss does: a write after this read replaces them.
    const read = await Promise.all(generationKeys.map((k) => this.#generations.read(k)))
    if (read.some((generation) => generation.kind === 'unknown')) {
      throw new StoreUnavailableError(`cannot read the generations of ${JSON.stringify(key)}`)
    }
    const current = await this.#current(generationKeys, read)
    if (current === undefined) {
      throw new StoreUnavailableError(`cannot create the generations of ${JSON.stringify(key)}`)
    }
    await runner.run(CompiledQuery.raw('begin transaction read only'))
    let result: QueryResult<unknown>
    try {
      result = await runner.run(CompiledQuery.raw(entry.sql, [...entry.parameters]))
      await runner.run(CompiledQuery.raw('commit'))
    } catch (error) {
      await runner.run(CompiledQuery.raw('rollback')).catch(() => {})
      throw error
    }
    const rowsText = this.#encode(result.rows)
    warm.stored = rowsText !== undefined && (await runner.storable()) && (await this.#put(key, this.#config.codec.encodeEntry(current, rowsText), entry.ttl))
  }

  /**
   * Resolves whether the value is now where `get` reads it. With `copies` > 1 it is
   * also written to the next nodes: every copy is checked against the generations
   * on read, so an old copy can never be served.
   */
  async #put(key: string, value: Buffer, ttl: number, copies = 1): Promise<boolean> {
    if (value.length > this.#store.maxValueBytes) {
      this.counters.oversize++
      return false
    }
    try {
      if (copies > 1) {
        const [first] = await this.#store.setReplicas(key, value, ttl, copies)
        if (first !== true) throw first
      } else {
        await this.#store.set(key, value, ttl)
      }
      this.counters.stores++
      return true
    } catch (error) {
      if (error instanceof ValueTooLargeError) {
        this.counters.oversize++
      } else {
        this.#failed(error)
      }
      return false
    }
  }

  /** What a statement writes, handling transaction statements sent as raw SQL. */
  #writesOf(runner: QueryRunner, compiled: CompiledQuery): WriteSet | undefined {
    const node = compiled.query
    if (node.kind === 'SelectQueryNode' && node.with === undefined) {
      return undefined
    }
    if (node.kind === 'RawNode') {
      return this.#rawWrites(runner, compiled)
    }
    const info = this.#analyze(node)
    if (info.kind === 'write') {
      return { namespace: false, tables: new Set(info.writes) }
    }
    // Schema statements (create, alter, drop, …) and raw CTE bodies may change what any cached query returns.
    return info.hiddenWrites ? { namespace: true, tables: new Set(info.writes) } : undefined
  }

  #rawWrites(runner: QueryRunner, compiled: CompiledQuery): WriteSet | undefined {
    const declared = declaredWritesOf(compiled.query)
    if (declared !== undefined) {
      return {
        namespace: false,
        tables: new Set(declared.map((table) => normalizeTableName(table, this.#config.defaultSchema))),
      }
    }
    switch (classifyRawStatement(compiled.sql)) {
      case 'write':
        return { namespace: true, tables: new Set() }
      case 'begin':
        runner.beginTransaction()
        return undefined
      case 'commit':
        // Applied once the commit has succeeded, after the statement ran.
        return runner.endTransaction() ?? undefined
      case 'rollback':
        runner.endTransaction()
        return undefined
      default:
        return undefined
    }
  }

  async #afterWrite(runner: QueryRunner, statementWrites: WriteSet): Promise<void> {
    // The tables as the database resolved them for this connection, while it is held.
    const writes = await runner.resolveWrites(statementWrites)
    const pending = runner.transactionWrites
    if (pending === undefined) {
      await this.commit(writes)
      return
    }
    pending.namespace ||= writes.namespace
    for (const table of writes.tables) pending.tables.add(table)
  }

  /** Memoised per node by the walk itself: a reused builder is analysed once. */
  #analyze(node: RootOperationNode): StatementInfo {
    return analyzeStatement(node, this.#config.defaultSchema)
  }

  /**
   * The analysis of a `.cached()` query, memoised by its SQL text too: an
   * application rebuilds its queries on every request, so their nodes are new
   * each time, while the text (which names every table) repeats.
   */
  #analyzeRead(sql: string, node: RootOperationNode): StatementInfo {
    let info = this.#analysisBySql.get(sql)
    if (info === undefined) {
      info = this.#analyze(node)
      if (this.#analysisBySql.size >= ANALYSIS_MEMO_SIZE) this.#analysisBySql.clear()
      this.#analysisBySql.set(sql, info)
    }
    return info
  }

  #failed(error: unknown): void {
    this.counters.errors++
    this.#config.onError(error)
  }
}

/** What the statistics keep of a query, built only when its shape is first tracked. */
function shape(key: string, compiled: CompiledQuery, info: StatementInfo, mark: CacheMark, ttl: number): QueryShape {
  return { key, sql: compiled.sql, parameters: compiled.parameters, tables: info.reads, tags: mark.tags, ttl }
}
