import type { ServerAddress } from '../store/memcached/server-address.js'
import { MemcachedStore } from '../store/memcached/memcached-store.js'
import { readNodeStats } from '../store/memcached/node-probe.js'
import type { TierState } from '../tier/tier-state.js'
import { formatDuration } from '../util/duration.js'
import type { WarmupEntry, WarmupManifest } from '../warmup/manifest.js'
import type { WarmupReport } from '../warmup/replay.js'
import { createReplayClient } from '../warmup/replay-client.js'
import type { ReplayClient } from '../warmup/replay-client.js'
import type { ManifestKeeper } from './manifest-keeper.js'
import { errorMessage } from './log-text.js'
import { heldDownFor, warmed, warming } from './node-tracker.js'
import type { DownNode } from './node-tracker.js'
import type { MonitorConfig, WarmupConfig } from './monitor-config.js'

/** A node's warm-up gets this long after its signal aborted (limit, stop, node lost) before the monitor stops waiting for it. */
const WARMUP_GRACE_MS = 5000
/** Replays of one node's warm-up at most, when someone else flushes it meanwhile. */
const WARMUP_ATTEMPTS = 3
/**
 * How long after a warmed node is listed up the monitor watches its flush
 * count and warms it again if someone flushed it. A process that had lost every
 * node reads no flag, so it probes the nodes back on its own and flushes each
 * once (within its `retryAfterMs`, 5 s by default), warmed or not.
 */
const WARMUP_WATCH_MS = 60_000

/** The warm-up of one returning node, running in the background. */
interface WarmupJob {
  readonly node: string
  readonly startedAt: number
  done: number
  total: number
  readonly controller: AbortController
  /** Why it was aborted: the time limit, the monitor stopping, the node lost again. */
  abortReason: 'limit' | 'stopping' | 'lost' | undefined
  /** Resolves WARMUP_GRACE_MS after the abort: the job stops waiting for stragglers then. */
  giveUp: Promise<void>
  startGiveUp: () => void
  /** Settles when the job is over: its report logged, its client and pool closed. Never rejects. */
  finished: Promise<void>
  /** How it went, for the line that lists the node up: `42 of 50 entries warmed`, `warm-up failed`. */
  summary: string
  /**
   * `return`: a flushed node before it is listed up. `rewarm`: a node already
   * listed up that someone else flushed since (see WARMUP_WATCH_MS).
   */
  readonly kind: 'return' | 'rewarm'
  /** The node's `cmd_flush` when the replay last checked it. */
  flushes: number | undefined
}

/** Options of {@link NodeWarmer}. */
export interface NodeWarmerOptions {
  readonly config: MonitorConfig
  readonly warmup: WarmupConfig
  readonly keeper: ManifestKeeper
  /** The monitor's down nodes: read to route, and marked warming and warmed as warm-ups go. */
  readonly down: Map<string, DownNode>
  readonly log: (message: string) => void
}

/**
 * Warms returning nodes, one at a time, from the kept manifest: the entries a
 * node owns are replayed through a replay client routed to that node and the
 * healthy ones, before the monitor lists it up; a warmed node flushed again
 * soon after (by a process that re-admitted it itself) is warmed again.
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
  /** Warm-ups due, in arrival order: flushed nodes waiting for theirs, and nodes flushed again after they were listed up. */
  #warmQueue: Array<{ node: string; kind: 'return' | 'rewarm' }> = []
  #warmJob: WarmupJob | undefined
  /** Warmed nodes listed up recently: their flush count then, and until when they are watched. */
  readonly #watch = new Map<string, { flushes: number | undefined; until: number }>()
  #watching: Promise<void> | undefined
  #halted = false

  constructor(options: NodeWarmerOptions) {
    this.#config = options.config
    this.#warmup = options.warmup
    this.#keeper = options.keeper
    this.#down = options.down
    this.#log = options.log
    this.#ring = new MemcachedStore({ servers: options.config.servers, timeoutMs: options.config.probeTimeoutMs })
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
  enqueue(node: string, kind: 'return' | 'rewarm'): void {
    this.#warmQueue.push({ node, kind })
  }

  /**
   * Forgets `node` (lost again): no more watching, its queued warm-up dropped, its running one stopped.
   *
   * ```ts
   * warmer.forget('10.0.0.2:11211')
   * ```
   */
  forget(node: string): void {
    this.#watch.delete(node)
    this.#warmQueue = this.#warmQueue.filter((queued) => queued.node !== node)
    const job = this.#warmJob
    if (job !== undefined && job.node === node) this.#abortWarmup(job, 'lost')
  }

  /**
   * Watches a warmed node just listed up for WARMUP_WATCH_MS: flushed again meanwhile, it is warmed again.
   *
   * ```ts
   * warmer.watch('10.0.0.2:11211', 3)
   * ```
   */
  watch(node: string, flushes: number | undefined): void {
    this.#watch.set(node, { flushes, until: Date.now() + WARMUP_WATCH_MS })
  }

  /** The running warm-up, as published in the tier state. */
  get progress(): TierState['warmup'] {
    const job = this.#warmJob
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
    const job = this.#warmJob
    if (job !== undefined) {
      this.#abortWarmup(job, 'stopping')
      await job.finished
    }
    await this.#watching
    await this.#ring.close()
  }

  /** The manifest entries whose key `node` owns on the full ring (every node up). */
  #ownedEntries(node: string, manifest: WarmupManifest | undefined = this.#keeper.manifest): WarmupEntry[] {
    const ring = this.#ring
    if (manifest === undefined) return []
    return manifest.entries.filter((entry) => ownerOf(ring, entry) === node)
  }

  /**
   * Starts the next queued warm-up unless one runs: one at a time, so the database sees `concurrency` queries at most.
   *
   * ```ts
   * warmer.startNext()
   * ```
   */
  startNext(): void {
    if (this.#warmJob !== undefined || this.#halted) return
    for (;;) {
      const next = this.#warmQueue.shift()
      if (next === undefined) return
      const down = this.#down.get(next.node)
      if (next.kind === 'return' && down?.warm === 'waiting') {
        this.#startWarmup(next.node, down)
        return
      }
      if (next.kind === 'rewarm' && down === undefined && this.entriesToWarm(next.node) > 0) {
        this.#startWarmup(next.node, undefined)
        return
      }
    }
  }

  /**
   * Every round: reads the flush count of the warmed nodes listed up within
   * WARMUP_WATCH_MS, in the background, and queues a new warm-up for one that
   * someone flushed since.
   *
   * ```ts
   * warmer.watchFlushes(Date.now())
   * ```
   */
  watchFlushes(now: number): void {
    if (this.#watching !== undefined || this.#halted) return
    for (const [node, watched] of this.#watch) {
      if (watched.until <= now || this.#down.has(node)) this.#watch.delete(node)
    }
    if (this.#watch.size === 0) return
    this.#watching = Promise.all(
      [...this.#watch.entries()].map(async ([node, watched]) => {
        const address = this.#config.nodes.find((candidate) => candidate.id === node)!
        const flushes = await this.#flushCount(address)
        if (flushes === undefined || flushes === watched.flushes) return
        const known = watched.flushes
        watched.flushes = flushes
        if (known === undefined) return
        if (this.#warmQueue.some((queued) => queued.node === node) || this.#warmJob?.node === node) return
        this.#log(`node ${node} was flushed after it was listed up (a process that had lost every node flushes the nodes it re-admits itself); warming it again`)
        this.#warmQueue.push({ node, kind: 'rewarm' })
        this.startNext()
      }),
    )
      .then(() => undefined)
      .finally(() => {
        this.#watching = undefined
      })
  }

  #startWarmup(node: string, down: DownNode | undefined): void {
    const warmup = this.#warmup
    const manifest = this.#keeper.manifest!
    const entries = this.#ownedEntries(node, manifest)
    if (down !== undefined) this.#down.set(node, warming(down, entries.length))
    let startGiveUp = (): void => {}
    const giveUp = new Promise<void>((resolve) => {
      startGiveUp = () => {
        setTimeout(resolve, WARMUP_GRACE_MS).unref()
      }
    })
    const job: WarmupJob = {
      node,
      startedAt: Date.now(),
      done: 0,
      total: entries.length,
      controller: new AbortController(),
      abortReason: undefined,
      giveUp,
      startGiveUp,
      finished: Promise.resolve(),
      summary: 'warm-up failed',
      kind: down === undefined ? 'rewarm' : 'return',
      flushes: undefined,
    }
    this.#warmJob = job
    const limit = setTimeout(() => this.#abortWarmup(job, 'limit'), warmup.maxMs)
    limit.unref()
    job.finished = this.#runWarmup(job, manifest, entries, warmup)
      .catch((error: unknown) => {
        this.#log(`node ${node} warm-up failed: ${errorMessage(error)}`)
      })
      .finally(() => {
        clearTimeout(limit)
        if (this.#warmJob === job) this.#warmJob = undefined
        const current = this.#down.get(node)
        // Listed up at the next round, unless it was lost again meanwhile (then it is flushed and warmed anew).
        if (job.kind === 'return' && job.abortReason !== 'lost' && current?.warm === 'running') {
          this.#down.set(node, warmed(current, job.summary, job.flushes))
        }
        const watched = this.#watch.get(node)
        if (job.kind === 'rewarm' && watched !== undefined && job.flushes !== undefined) watched.flushes = job.flushes
        this.startNext()
      })
  }

  /** The node's `cmd_flush`, or `undefined` when it cannot be read. */
  async #flushCount(address: ServerAddress): Promise<number | undefined> {
    try {
      const value = (await readNodeStats(address, Math.max(this.#config.probeTimeoutMs, 250)))['cmd_flush']
      return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined
    } catch {
      return undefined
    }
  }

  #abortWarmup(job: WarmupJob, reason: 'limit' | 'stopping' | 'lost'): void {
    if (job.controller.signal.aborted) return
    job.abortReason = reason
    job.controller.abort()
    job.startGiveUp()
  }

  /**
   * Replays `entries` (the ones `job.node` owns) into memcached through a cache
   * client of its own whose ring has the returning node and the healthy ones,
   * under generations read by majority, like any miss. Logs one line with the report.
   */
  async #runWarmup(job: WarmupJob, manifest: WarmupManifest, entries: readonly WarmupEntry[], warmup: WarmupConfig): Promise<void> {
    const config = this.#config
    const node = job.node
    let client: ReplayClient | undefined
    let report: WarmupReport | undefined
    let gaveUp = false
    try {
      // Routes to this node and the healthy ones only.
      client = await createReplayClient({
        servers: config.servers,
        namespace: config.namespace,
        databaseUrl: warmup.databaseUrl!,
        concurrency: warmup.concurrency,
        maxMs: warmup.maxMs,
        holdDown: heldDownFor(this.#down, node),
        onDatabaseError: (error) => this.#log(`node ${node} warm-up: database connection error: ${error.message}`),
      })
      const wanted = new Set(entries.map((entry) => entry.key))
      const address = config.nodes.find((candidate) => candidate.id === node)!
      // Someone else may flush the node meanwhile: a process that could read no flag (every node
      // had been down) probes it back and flushes it itself, and so does another namespace's
      // monitor. That wipes the replay, so it runs again, until the node's flush count holds still.
      let flushes = await this.#flushCount(address)
      job.flushes = flushes
      for (let attempt = 1; ; attempt++) {
        const running = client.replay(manifest, {
          concurrency: warmup.concurrency,
          signal: job.controller.signal,
          filter: (entry) => wanted.has(entry.key) && ownerOf(this.#ring, entry) === node,
          onProgress: (progress) => {
            job.done = progress.done
            job.total = progress.total
          },
        })
        const outcome = await Promise.race([running.then((value) => ({ report: value })), job.giveUp.then(() => undefined)])
        if (outcome === undefined) {
          gaveUp = true
          running.catch(() => {})
          break
        }
        report = outcome.report
        if (job.controller.signal.aborted || attempt === WARMUP_ATTEMPTS) break
        const now = await this.#flushCount(address)
        job.flushes = now
        if (now === undefined || flushes === undefined || now === flushes) break
        flushes = now
        job.done = 0
        this.#log(`node ${node} was flushed by someone else during its warm-up (a process or another monitor); warming it again`)
      }
    } finally {
      // Close before listing the node up, so no replay is still writing when it is.
      if (client !== undefined) await Promise.race([client.close(), delay(WARMUP_GRACE_MS)])
      this.#logWarmup(job, report, gaveUp, warmup)
    }
  }

  #logWarmup(job: WarmupJob, report: WarmupReport | undefined, gaveUp: boolean, warmup: WarmupConfig): void {
    const seconds = ((Date.now() - job.startedAt) / 1000).toFixed(1)
    const why =
      job.abortReason === 'limit'
        ? `stopped at the ${formatDuration(warmup.maxMs)} limit`
        : job.abortReason === 'stopping'
          ? 'stopped with the monitor'
          : job.abortReason === 'lost'
            ? 'stopped: the node was lost again'
            : undefined
    if (report === undefined) {
      if (gaveUp) {
        job.summary = `warm-up cut short after ${job.done} of ${job.total} entries`
        this.#log(`node ${job.node} warmed: ${job.done} of ${job.total} entries done in ${seconds}s (${why ?? 'stopped'}; gave up waiting for the queries in flight)`)
      }
      return
    }
    const details = [`${report.failed} failed`]
    if (report.skipped > 0) details.push(`${report.skipped} skipped`)
    if (report.aborted > 0) details.push(`${report.aborted} not run: ${why ?? 'stopped'}`)
    const first = report.failures[0]
    job.summary = `${report.warmed} of ${report.total} entries warmed`
    this.#log(
      `node ${job.node} warmed: ${report.warmed} of ${report.total} entries in ${seconds}s (${details.join(', ')})${first === undefined ? '' : `; first failure: ${first.error}`}`,
    )
  }
}

/** The node that owns `entry`'s key on `ring`: the key as recorded, since it holds the scope of the read. */
function ownerOf(ring: MemcachedStore, entry: WarmupEntry): string {
  return ring.nodeFor(entry.key)
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms).unref()
  })
}
