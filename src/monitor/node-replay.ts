import type { MemcachedStore } from '../store/memcached/memcached-store.js'
import { formatDuration } from '../util/duration.js'
import type { WarmupEntry, WarmupManifest } from '../warmup/manifest.js'
import type { WarmupReport } from '../warmup/replay.js'
import { createReplayClient } from '../warmup/replay-client.js'
import type { ReplayClient } from '../warmup/replay-client.js'
import { readFlushCount } from './flush-watch.js'
import type { MonitorConfig, WarmupConfig } from './monitor-config.js'
import { heldDownFor } from './node-tracker.js'
import type { DownNode } from './node-tracker.js'

/** A node's warm-up gets this long after its signal aborted (limit, stop, node lost) before the monitor stops waiting for it. */
const WARMUP_GRACE_MS = 5000
/** Replays of one node's warm-up at most, when someone else flushes it meanwhile. */
const WARMUP_ATTEMPTS = 3

/**
 * `return`: a flushed node before it is listed up. `rewarm`: a node already
 * listed up that someone else flushed since (see `WARMUP_WATCH_MS`).
 */
export type WarmupKind = 'return' | 'rewarm'

/** Why a warm-up was aborted: the time limit, the monitor stopping, the node lost again. */
export type WarmupAbortReason = 'limit' | 'stopping' | 'lost'

/** The warm-up of one node, running in the background. */
export interface WarmupJob {
  readonly node: string
  readonly kind: WarmupKind
  readonly startedAt: number
  done: number
  total: number
  readonly controller: AbortController
  abortReason: WarmupAbortReason | undefined
  /** Resolves WARMUP_GRACE_MS after the abort: the job stops waiting for stragglers then. */
  readonly giveUp: Promise<void>
  readonly startGiveUp: () => void
  /** Settles when the job is over: its report logged, its client and pool closed. Never rejects. */
  finished: Promise<void>
  /** How it went, for the line that lists the node up: `42 of 50 entries warmed`, `warm-up failed`. */
  summary: string
  /** The node's `cmd_flush` when the replay last checked it. */
  flushes: number | undefined
}

/**
 * A warm-up of `node` about to replay `total` entries.
 *
 * ```ts
 * const job = createWarmupJob('10.0.0.2:11211', 42, 'return')
 * ```
 */
export function createWarmupJob(node: string, total: number, kind: WarmupKind): WarmupJob {
  let startGiveUp = (): void => {}
  const giveUp = new Promise<void>((resolve) => {
    startGiveUp = () => {
      setTimeout(resolve, WARMUP_GRACE_MS).unref()
    }
  })
  return {
    node,
    kind,
    startedAt: Date.now(),
    done: 0,
    total,
    controller: new AbortController(),
    abortReason: undefined,
    giveUp,
    startGiveUp,
    finished: Promise.resolve(),
    summary: 'warm-up failed',
    flushes: undefined,
  }
}

/**
 * Aborts `job` (once): its replay stops starting entries, and WARMUP_GRACE_MS
 * later it stops waiting for the ones in flight.
 *
 * ```ts
 * abortWarmup(job, 'limit')
 * ```
 */
export function abortWarmup(job: WarmupJob, reason: WarmupAbortReason): void {
  if (job.controller.signal.aborted) return
  job.abortReason = reason
  job.controller.abort()
  job.startGiveUp()
}

/**
 * The node that owns `entry`'s key on `ring`: the key as recorded, since it holds the scope of the read.
 *
 * ```ts
 * ownerOf(ring, entry) // '10.0.0.2:11211'
 * ```
 */
export function ownerOf(ring: MemcachedStore, entry: WarmupEntry): string {
  return ring.nodeFor(entry.key)
}

/** What {@link replayNode} needs besides the job. */
export interface NodeReplayContext {
  readonly config: MonitorConfig
  readonly warmup: WarmupConfig
  /** Routes like a process with every node up: which node owns a key. */
  readonly ring: MemcachedStore
  /** The monitor's down nodes: the replay routes around them. */
  readonly down: ReadonlyMap<string, DownNode>
  readonly log: (message: string) => void
}

/**
 * Replays `entries` (the ones `job.node` owns) into memcached through a cache
 * client of its own whose ring has the returning node and the healthy ones,
 * under generations read by majority, like any miss. Logs one line with the
 * report and sets `job.summary`.
 *
 * ```ts
 * job.finished = replayNode(job, manifest, entries, { config, warmup, ring, down, log })
 * ```
 */
export async function replayNode(
  job: WarmupJob,
  manifest: WarmupManifest,
  entries: readonly WarmupEntry[],
  context: NodeReplayContext,
): Promise<void> {
  const { config, warmup, ring, log } = context
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
      holdDown: heldDownFor(context.down, node),
      sasl: config.sasl,
      secrets: config.secrets,
      onDatabaseError: (error) => log(`node ${node} warm-up: database connection error: ${error.message}`),
    })
    const wanted = new Set(entries.map((entry) => entry.key))
    const address = config.nodes.find((candidate) => candidate.id === node)!
    // Someone else may flush the node meanwhile: a process that could read no flag (every node
    // had been down) probes it back and flushes it itself, and so does another namespace's
    // monitor. That wipes the replay, so it runs again, until the node's flush count holds still.
    let flushes = await readFlushCount(address, config.probeTimeoutMs, config.sasl)
    job.flushes = flushes
    for (let attempt = 1; ; attempt++) {
      const running = client.replay(manifest, {
        concurrency: warmup.concurrency,
        signal: job.controller.signal,
        filter: (entry) => wanted.has(entry.key) && ownerOf(ring, entry) === node,
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
      const now = await readFlushCount(address, config.probeTimeoutMs, config.sasl)
      job.flushes = now
      if (now === undefined || flushes === undefined || now === flushes) break
      flushes = now
      job.done = 0
      log(`node ${node} was flushed by someone else during its warm-up (a process or another monitor); warming it again`)
    }
  } finally {
    // Close before listing the node up, so no replay is still writing when it is.
    if (client !== undefined) await Promise.race([client.close(), delay(WARMUP_GRACE_MS)])
    logReplay(job, report, gaveUp, context)
  }
}

function logReplay(job: WarmupJob, report: WarmupReport | undefined, gaveUp: boolean, context: NodeReplayContext): void {
  const seconds = ((Date.now() - job.startedAt) / 1000).toFixed(1)
  const why =
    job.abortReason === 'limit'
      ? `stopped at the ${formatDuration(context.warmup.maxMs)} limit`
      : job.abortReason === 'stopping'
        ? 'stopped with the monitor'
        : job.abortReason === 'lost'
          ? 'stopped: the node was lost again'
          : undefined
  if (report === undefined) {
    if (gaveUp) {
      job.summary = `warm-up cut short after ${job.done} of ${job.total} entries`
      context.log(`node ${job.node} warmed: ${job.done} of ${job.total} entries done in ${seconds}s (${why ?? 'stopped'}; gave up waiting for the queries in flight)`)
    }
    return
  }
  const details = [`${report.failed} failed`]
  if (report.skipped > 0) details.push(`${report.skipped} skipped`)
  if (report.aborted > 0) details.push(`${report.aborted} not run: ${why ?? 'stopped'}`)
  const first = report.failures[0]
  job.summary = `${report.warmed} of ${report.total} entries warmed`
  context.log(
    `node ${job.node} warmed: ${report.warmed} of ${report.total} entries in ${seconds}s (${details.join(', ')})${first === undefined ? '' : `; first failure: ${first.error}`}`,
  )
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms).unref()
  })
}
