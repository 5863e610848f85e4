import type { CompiledQuery } from 'kysely'
import { lockKey } from '../keys.js'
import type { EntryTimes } from './codec.js'
import type { CacheCounters } from './counters.js'
import type { CacheEngineConfig } from './engine-config.js'
import type { Generations } from './generations.js'
import type { QueryRunner } from './query-runner.js'
import { entryLifetime, type ResultWriter } from './result-writer.js'
import { DEFAULT_LOCK_TTL_SECONDS } from './safe-lock.js'
import { currentTokens } from './tokens.js'

/** What a refresh needs of the read that drew it. */
export interface RefreshRequest {
  readonly key: string
  readonly compiled: CompiledQuery
  /** The connection of the read: a refresh takes its own connection from the same driver. */
  readonly runner: QueryRunner
  readonly ttl: number
  readonly swr: number
}

/** Keeps what a refresh computed near, as a miss would. */
export type KeepNear = (
  key: string,
  generationKeys: readonly string[],
  tokens: readonly string[],
  encoded: Buffer,
  times: EntryTimes,
  epoch: number,
) => void

/** What the refresher is given by the read path. */
export interface RefresherConfig {
  readonly engine: CacheEngineConfig
  readonly generations: Generations
  readonly writer: ResultWriter
  readonly counters: CacheCounters
  readonly writeEpoch: () => number
  readonly failed: (error: unknown) => void
  readonly keepNear: KeepNear
  /**
   * Takes a fresh entry another process stored meanwhile, if there is one (a near copy
   * goes stale while the farm's refresher has already replaced the entry); resolves
   * whether it did, so the refresh is not run again.
   */
  readonly adoptStored: (request: RefreshRequest, generationKeys: readonly string[], drawnFrom: EntryTimes) => Promise<boolean>
}

/**
 * Recomputes results in the background, while the read that drew the refresh is
 * served what it found: early (XFetch) or stale (within `swr`). One refresh per key
 * at a time in this process, and one in the farm: the refresh takes the key's
 * `safe-` lock with memcached `add`, and skips when another holds it (it is
 * refreshing, or computing the miss). A refresh is a miss that nobody waits for:
 * generations read before its query, the rows stored under them. A process whose
 * near copy went stale first looks for the entry another process refreshed.
 *
 * ```ts
 * refresher.refresh(request, generationKeys, 'early', entry.times)
 * ```
 */
export class Refresher {
  readonly #config: RefresherConfig
  readonly #running = new Set<string>()

  constructor(config: RefresherConfig) {
    this.#config = config
  }

  /** Starts a refresh of `request`'s result unless one is running; never throws, never waits. */
  refresh(request: RefreshRequest, generationKeys: readonly string[], reason: 'early' | 'stale', drawnFrom: EntryTimes): void {
    if (this.#running.has(request.key)) return
    this.#running.add(request.key)
    this.#run(request, generationKeys, reason, drawnFrom)
      .catch((error: unknown) => {
        this.#config.counters.refreshFailed()
        this.#config.failed(error)
      })
      .finally(() => this.#running.delete(request.key))
  }

  async #run(request: RefreshRequest, generationKeys: readonly string[], reason: 'early' | 'stale', drawnFrom: EntryTimes): Promise<void> {
    const { engine, generations, writer } = this.#config
    if (await this.#config.adoptStored(request, generationKeys, drawnFrom)) return
    const lock = lockKey(request.key)
    const lockTtl = engine.safeMode === false ? DEFAULT_LOCK_TTL_SECONDS : engine.safeMode.lockTtl
    // A lock that cannot be taken (the tier is in trouble) is a reason not to add database load.
    if (!(await engine.store.add(lock, Buffer.from(String(process.pid)), lockTtl))) return
    if (reason === 'early') this.#config.counters.earlyRefreshed()
    const runner = request.runner.detached()
    try {
      const epoch = this.#config.writeEpoch()
      const read = await Promise.all(generationKeys.map((key) => generations.read(key)))
      const current = await currentTokens(generations, generationKeys, read, this.#config.failed)
      if (current.kind !== 'proven') return
      const started = performance.now()
      const result = await runner.run(request.compiled)
      const computeMs = performance.now() - started
      const encoded = writer.encode(result.rows)
      if (encoded === undefined || !(await runner.storable())) return
      const lifetime = entryLifetime(request.ttl, request.swr, computeMs, engine.ttlJitter)
      await writer.putResult(request.key, current.tokens, encoded, lifetime)
      this.#config.keepNear(request.key, generationKeys, current.tokens, encoded, lifetime.times, epoch)
    } finally {
      await runner.release()
      await engine.store.delete(lock).catch(() => false)
    }
  }
}
