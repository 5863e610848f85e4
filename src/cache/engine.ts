import type { CompiledQuery, QueryResult } from 'kysely'
import { isOptedOut, markOf, noteHandled, warmMarkOf, type CacheMark, type WarmMark } from '../kysely/cached.js'
import { CacheCounters } from './counters.js'
import type { CacheEngineConfig } from './engine-config.js'
import { Generations } from './generations.js'
import type { AbortableOperationOptions, QueryRunner, WriteSet } from './query-runner.js'
import { NearCache } from './near-cache.js'
import { ReadPath } from './read-path.js'
import { ResultWriter } from './result-writer.js'
import { replayEntry } from './warm-path.js'
import { WritePath, type InvalidationTarget } from './write-path.js'

export type { CacheEngineConfig } from './engine-config.js'
export type { AbortableOperationOptions, QueryRunner, WriteSet } from './query-runner.js'

/**
 * The cache as the wrapped driver's connections see it: every statement goes
 * through {@link CacheEngine.execute}, which sends `.cached()` queries down the
 * read path and writes down the write path.
 *
 * ```ts
 * const engine = new CacheEngine(config)
 * const result = await engine.execute(connection, compiled, options)
 * engine.counters.snapshot().hits
 * ```
 */
export class CacheEngine {
  readonly counters = new CacheCounters()
  readonly #onError: (error: unknown) => void
  readonly #reads: ReadPath
  readonly #writes: WritePath
  readonly #warming: Parameters<typeof replayEntry>[0]

  constructor(config: CacheEngineConfig) {
    this.#onError = config.onError
    const generations = new Generations(config.store, config.namespace, config.generationReplicas)
    const failed = (error: unknown): void => this.#failed(error)
    const near = config.nearCache === false ? undefined : new NearCache(config.nearCache)
    this.#writes = new WritePath({ defaultSchema: config.defaultSchema, generations, counters: this.counters, failed, near })
    const writer = new ResultWriter(config, this.counters, failed)
    this.#warming = { namespace: config.namespace, generations, writer, ttlJitter: config.ttlJitter, failed }
    this.#reads = new ReadPath({
      engine: config, generations, counters: this.counters, writeEpoch: () => this.#writes.epoch, failed, near, writer,
    })
  }

  /** Runs one statement of a wrapped connection, through the cache when it is a `.cached()` read. */
  async execute(
    runner: QueryRunner,
    compiled: CompiledQuery,
    options?: AbortableOperationOptions,
  ): Promise<QueryResult<unknown>> {
    const mark = markOf(compiled.query) ?? this.#implicitMark(runner, compiled)
    if (mark !== undefined) {
      noteHandled(compiled.queryId)
      const info = this.#reads.analyze(compiled.sql, mark.source)
      // Side effects must happen on every call; volatile values only freeze when asked to.
      if (info.kind === 'read' && (info.volatility === 'stable' || (info.volatility === 'volatile' && mark.volatile))) {
        // In a transaction, uncommitted rows must not enter the cache, and the transaction must
        // see its own writes; on a connection out of scope, rows are not the key's.
        const scope = runner.transactionWrites === undefined ? await runner.keyScope(options) : undefined
        if (scope !== undefined) {
          return this.#reads.read(runner, compiled, mark, scope.reads(info, mark.source), options, scope.id)
        }
        this.counters.bypassed()
        return runner.run(compiled, options)
      }
      // A select that writes (in a CTE), calls such a function, or that the walk cannot see
      // through: run it as any statement.
      this.counters.uncacheable()
    }
    const warm = warmMarkOf(compiled.query)
    if (warm !== undefined) {
      await this.#warm(runner, warm)
      return { rows: [] }
    }
    const writes = this.#writes.writesOf(runner, compiled)
    const result = await runner.run(compiled, options)
    if (writes !== undefined) {
      await this.#writes.afterWrite(runner, writes)
    }
    return result
  }

  /** A stream reached this cache: a `.cached()` one bypasses it (rows arrive in chunks, nothing to store). */
  noteStream(compiled: CompiledQuery): void {
    if (markOf(compiled.query) === undefined) return
    noteHandled(compiled.queryId)
    this.counters.bypassed()
  }

  /** Applies what a committed transaction wrote. */
  commit(writes: WriteSet | undefined): Promise<void> {
    return this.#writes.commit(writes)
  }

  /** Bumps generations; resolves `false` (and counts an error) when the store could not record it. */
  invalidate(target: InvalidationTarget): Promise<boolean> {
    return this.#writes.invalidate(target)
  }

  /** The dialect's `cacheAll` settings for a select that said nothing (not `.cached(false)`). */
  #implicitMark(runner: QueryRunner, compiled: CompiledQuery): CacheMark | undefined {
    const settings = runner.cacheAll
    if (settings === undefined || compiled.query.kind !== 'SelectQueryNode' || isOptedOut(compiled.query)) return undefined
    return { ...settings, source: compiled.query }
  }

  /** Replays one warm-up entry on this connection, outside any transaction; reports the outcome on the mark. */
  async #warm(runner: QueryRunner, warm: WarmMark): Promise<void> {
    if (runner.transactionWrites !== undefined) {
      throw new Error('warm-up cannot run inside a transaction')
    }
    warm.replayedBy = this
    const scope = await runner.keyScope()
    // Its rows would not be the key scope's: skipped.
    if (scope === undefined) return
    await replayEntry(this.#warming, runner, warm, scope)
  }

  #failed(error: unknown): void {
    this.counters.failed()
    this.#onError(error)
  }
}
