import { MemcachedStore, secretsOption } from '../store/memcached/memcached-store.js'
import type { TierState } from '../tier/tier-state.js'
import type { WarmupEntry, WarmupManifest } from '../warmup/manifest.js'
import { FlushWatch } from './flush-watch.js'
import { errorMessage } from './log-text.js'
import type { ManifestKeeper } from './manifest-keeper.js'
import type { MonitorConfig, WarmupConfig } from './monitor-config.js'
import { abortWarmup, createWarmupJob, ownerOf, replayNode } from './node-replay.js'
import type { NodeReplayContext, WarmupJob, WarmupKind } from './node-replay.js'
import { warmed, warming } from './node-tracker.js'
import type { DownNode } from './node-tracker.js'

/** Options of {@link NodeWarmer}: what its replays need, but the ring (the warmer's own) and a down map it may change. */
export interface NodeWarmerOptions extends Omit<NodeReplayContext, 'ring' | 'down'> {
  readonly keeper: ManifestKeeper
  /** The monitor's down nodes: read to route, and marked warming and warmed as warm-ups go. */
  readonly down: Map<string, DownNode>
}

/**
 * Schedules the warm-ups of returning nodes, one at a time, from the kept
 * manifest: a flushed node is warmed before the monitor lists it up, and a
 * warmed node flushed again soon after (by a process that re-admitted it
 * itself) is warmed again.
 *
 * ```ts
 * const warmer = new NodeWarmer({ config, warmup, keeper, down, log })
 * warmer.enqueue('10.0.0.2:11211', 'return')
 * warmer.startNext()
 * ```
 */
export class NodeWarmer {
  readonly #config: MonitorConfig
  readonly #warmup: WarmupConfig
  readonly #keeper: ManifestKeeper
  readonly #down: Map<string, DownNode>
  readonly #log: (message: string) => void
  /** Routes like a process with every node up: which node owns a key. */
  readonly #ring: MemcachedStore
  readonly #flushWatch: FlushWatch
  /** Warm-ups due, in arrival order: flushed nodes waiting for theirs, and nodes flushed again after they were listed up. */
  #queue: Array<{ node: string; kind: WarmupKind }> = []
  #job: WarmupJob | undefined
  #halted = false

  constructor(options: NodeWarmerOptions) {
    const config = options.config
    this.#config = config
    this.#warmup = options.warmup
    this.#keeper = options.keeper
    this.#down = options.down
    this.#log = options.log
    this.#ring = new MemcachedStore({
      servers: config.servers,
      timeoutMs: config.probeTimeoutMs,
      sasl: config.sasl,
      ...secretsOption(config.secrets),
    })
    this.#flushWatch = new FlushWatch({
      nodes: config.nodes,
      probeTimeoutMs: config.probeTimeoutMs,
      sasl: config.sasl,
      isDown: (node) => this.#down.has(node),
      onFlushed: (node) => this.#rewarm(node),
    })
  }

  /**
   * Whether returning nodes are warmed: a database to replay against and a manifest with entries.
   *
   * ```ts
   * warmer.warmsNodes() // true
   * ```
   */
  warmsNodes(): boolean {
    return this.#warmup.databaseUrl !== undefined && (this.#keeper.manifest?.entries.length ?? 0) > 0
  }

  /**
   * How many manifest entries a warm-up of `node` would replay (0 when nodes are not warmed).
   *
   * ```ts
   * warmer.entriesToWarm('10.0.0.2:11211') // 42
   * ```
   */
  entriesToWarm(node: string): number {
    return this.warmsNodes() ? this.#ownedEntries(node).length : 0
  }

  /**
   * Queues a warm-up of `node`: `return` for a flushed node not yet listed up.
   *
   * ```ts
   * warmer.enqueue('10.0.0.2:11211', 'return')
   * ```
   */
  enqueue(node: string, kind: WarmupKind): void {
    this.#queue.push({ node, kind })
  }

  /**
   * Forgets `node` (lost again): no more watching, its queued warm-up dropped, its running one stopped.
   *
   * ```ts
   * warmer.forget('10.0.0.2:11211')
   * ```
   */
  forget(node: string): void {
    this.#flushWatch.forget(node)
    this.#queue = this.#queue.filter((queued) => queued.node !== node)
    const job = this.#job
    if (job !== undefined && job.node === node) abortWarmup(job, 'lost')
  }

  /**
   * Watches a warmed node just listed up for a while: flushed again meanwhile, it is warmed again.
   *
   * ```ts
   * warmer.watch('10.0.0.2:11211', 3)
   * ```
   */
  watch(node: string, flushes: number | undefined): void {
    this.#flushWatch.watch(node, flushes)
  }

  /**
   * Every round: checks the watched nodes' flush counts in the background.
   *
   * ```ts
   * warmer.watchFlushes(Date.now())
   * ```
   */
  watchFlushes(now: number): void {
    if (!this.#halted) this.#flushWatch.check(now)
  }

  /** The running warm-up, as published in the tier state. */
  get progress(): TierState['warmup'] {
    const job = this.#job
    return job === undefined ? undefined : { node: job.node, done: job.done, total: job.total, startedAt: job.startedAt }
  }

  /** Starts no more warm-ups or flush watches (the monitor is stopping). */
  halt(): void {
    this.#halted = true
  }

  /**
   * Stops the running warm-up and waits for it and the flush watch; closes the ring's connections.
   *
   * ```ts
   * warmer.halt()
   * await warmer.stop()
   * ```
   */
  async stop(): Promise<void> {
    this.#halted = true
    const job = this.#job
    if (job !== undefined) {
      abortWarmup(job, 'stopping')
      await job.finished
    }
    await this.#flushWatch.idle()
    await this.#ring.close()
  }

  /**
   * Starts the next queued warm-up unless one runs: one at a time, so the database sees `concurrency` queries at most.
   *
   * ```ts
   * warmer.startNext()
   * ```
   */
  startNext(): void {
    if (this.#job !== undefined || this.#halted) return
    for (;;) {
      const next = this.#queue.shift()
      if (next === undefined) return
      const down = this.#down.get(next.node)
      if (next.kind === 'return' && down?.warm === 'waiting') {
        this.#start(next.node, down)
        return
      }
      if (next.kind === 'rewarm' && down === undefined && this.entriesToWarm(next.node) > 0) {
        this.#start(next.node, undefined)
        return
      }
    }
  }

  /** The manifest entries whose key `node` owns on the full ring (every node up). */
  #ownedEntries(node: string, manifest: WarmupManifest | undefined = this.#keeper.manifest): WarmupEntry[] {
    const ring = this.#ring
    if (manifest === undefined) return []
    return manifest.entries.filter((entry) => ownerOf(ring, entry) === node)
  }

  /** A watched node was flushed after it was listed up: queue it again, unless it already is. */
  #rewarm(node: string): void {
    if (this.#queue.some((queued) => queued.node === node) || this.#job?.node === node) return
    this.#log(`node ${node} was flushed after it was listed up (a process that had lost every node flushes the nodes it re-admits itself); warming it again`)
    this.#queue.push({ node, kind: 'rewarm' })
    this.startNext()
  }

  /** Starts the warm-up of `node`: `down` is its entry while it waits to be listed up, `undefined` for a rewarm. */
  #start(node: string, down: DownNode | undefined): void {
    const warmup = this.#warmup
    const manifest = this.#keeper.manifest!
    const entries = this.#ownedEntries(node, manifest)
    if (down !== undefined) this.#down.set(node, warming(down, entries.length))
    const job = createWarmupJob(node, entries.length, down === undefined ? 'rewarm' : 'return')
    this.#job = job
    const limit = setTimeout(() => abortWarmup(job, 'limit'), warmup.maxMs)
    limit.unref()
    const context: NodeReplayContext = { config: this.#config, warmup, ring: this.#ring, down: this.#down, log: this.#log }
    job.finished = replayNode(job, manifest, entries, context)
      .catch((error: unknown) => {
        this.#log(`node ${node} warm-up failed: ${errorMessage(error)}`)
      })
      .finally(() => {
        clearTimeout(limit)
        if (this.#job === job) this.#job = undefined
        const current = this.#down.get(node)
        // Listed up at the next round, unless it was lost again meanwhile (then it is flushed and warmed anew).
        if (job.kind === 'return' && job.abortReason !== 'lost' && current?.warm === 'running') {
          this.#down.set(node, warmed(current, job.summary, job.flushes))
        }
        if (job.kind === 'rewarm') this.#flushWatch.recordCount(node, job.flushes)
        this.startNext()
      })
  }
}
