import { statSync } from 'node:fs'
import { readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname, resolve } from 'node:path'
import { Kysely, PostgresDialect } from 'kysely'
import type { Pool } from 'pg'
import { createQueryCache } from '../cache/create-query-cache.js'
import type { QueryCache } from '../cache/create-query-cache.js'
import { FarmStatistics } from '../statistics/farm-statistics.js'
import { validateNamespace } from '../keys.js'
import { flushNode, probeNode, readNodeStats } from '../store/memcached/node-probe.js'
import type { ProbeResult } from '../store/memcached/node-probe.js'
import { formatDuration } from '../util/duration.js'
import { describe } from '../util/options.js'
import { parseServerList } from '../store/memcached/server-address.js'
import type { ServerAddress } from '../store/memcached/server-address.js'
import { QueryStatistics } from '../statistics/query-statistics.js'
import { MemcachedStore } from '../store/memcached/memcached-store.js'
import { createManifest, parseManifest, serializeManifest } from '../warmup/manifest.js'
import type { WarmupEntry, WarmupManifest } from '../warmup/manifest.js'
import type { WarmupReport } from '../warmup/replay.js'
import { farmCounterKeys, publish, readModeOverride, readTierState, tierStateKey } from '../tier/tier-state.js'
import type { CacheMode, ModeOverride, TierState } from '../tier/tier-state.js'

/** Options of {@link startMonitor}. */
export interface MonitorOptions {
  /** memcached nodes as `"host:port"`, the same list the processes use. */
  servers: readonly string[]
  /** Namespace of the processes' caches. Default `'kysely'`, as in `createQueryCache`. */
  namespace?: string
  /** Probe interval in ms. Default 1000. */
  intervalMs?: number
  /** Longest a probe (or any memcached call of the monitor) may take, in ms. Default `min(250, intervalMs / 2)`. */
  probeTimeoutMs?: number
  /** How long every node must be healthy before going back to normal, in ms. Default 30 000. */
  settleMs?: number
  /** Fraction of the pre-incident farm hit ratio that must be back before going normal. Default 0.9. */
  hitRatioRecovery?: number
  /** A window with fewer requests counts as recovered (nothing to protect). Default 20. */
  minRequests?: number
  /** TTL of the published flag: how long it outlives a monitor that stopped. Default `max(3, ceil(3 * intervalMs / 1000))`. */
  flagTtlSeconds?: number
  /** Receives one line per transition. Default `console.log`. */
  log?: (line: string) => void
  /** Called with each state after it was published (or failed to be). */
  onState?: (state: TierState) => void
  /**
   * Warm-up of returning nodes (see docs/warmup.md): the monitor keeps a warm-up
   * manifest built from the farm-wide statistics and, before it lists a flushed
   * node up again, replays the manifest entries that node owns.
   */
  warmup?: MonitorWarmupOptions
}

/** The `warmup` option of {@link startMonitor}; give `databaseUrl`, `manifestFile` or both. */
export interface MonitorWarmupOptions {
  /**
   * PostgreSQL connection string the entries are replayed against (each in a
   * READ ONLY transaction, through pg's default type parsers). Without it the
   * monitor only keeps and saves the manifest: returning nodes are listed up cold.
   */
  databaseUrl?: string
  /**
   * Where the manifest is kept across monitor and memcached restarts: loaded at
   * start if it exists, rewritten (write to a temporary file, then rename) every
   * `saveEveryMs` from the farm-wide statistics. Its directory must exist.
   * Without it the manifest lives in the monitor's memory only.
   */
  manifestFile?: string
  /** Entries replayed at once. Default 4. */
  concurrency?: number
  /** Longest a node's warm-up may run before the node is listed up anyway, ms. Default 60 000. */
  maxMs?: number
  /** How often the manifest is rebuilt from the farm-wide statistics (and saved), ms. Default 60 000. */
  saveEveryMs?: number
}

/** A running health monitor (see {@link startMonitor}). */
export interface Monitor {
  /** Resolves once the first probe round has been published. Never rejects. */
  readonly ready: Promise<void>
  /** The state published last (before the first round: the starting state). */
  state(): TierState
  /** Stops probing, waits for a round in flight and closes connections. Leaves the flag to expire. */
  stop(): Promise<void>
}

const MAX_TIMER_MS = 2 ** 31 - 1
const BASELINE_WINDOW_MS = 30_000
const RECOVERY_WINDOW_MS = 5_000
/** Without a pre-incident baseline, this farm-wide hit ratio counts as recovered. */
const RATIO_WITHOUT_BASELINE = 0.5
/** A node's warm-up gets this long after its signal aborted (limit, stop, node lost) before the monitor stops waiting for it. */
const WARMUP_GRACE_MS = 5000
/** The warm-up client never polls the tier state on its own: the monitor routes it (see #runWarmup). */
const WARMUP_CLIENT_REFRESH_MS = 24 * 60 * 60 * 1000
/** Replays of one node's warm-up at most, when someone else flushes it meanwhile. */
const WARMUP_ATTEMPTS = 3
/**
 * How long after a warmed node is listed up the monitor watches its flush
 * count and warms it again if someone flushed it. A process that had lost every
 * node reads no flag, so it probes the nodes back on its own and flushes each
 * once (within its `retryAfterMs`, 5 s by default), warmed or not.
 */
const WARMUP_WATCH_MS = 60_000
const WARMUP_OPTIONS = new Set(['databaseUrl', 'manifestFile', 'concurrency', 'maxMs', 'saveEveryMs'])
const KNOWN_OPTIONS = new Set([
  'servers',
  'namespace',
  'intervalMs',
  'probeTimeoutMs',
  'settleMs',
  'hitRatioRecovery',
  'minRequests',
  'flagTtlSeconds',
  'log',
  'onState',
  'warmup',
])

/**
 * Starts the tier's health monitor: every `intervalMs` it probes each memcached
 * node over a fresh connection, decides the tier's mode and publishes it (with
 * {@link publish}) to every live node as a short-lived lease that every
 * process reads.
 *
 * - One failed probe (refused, timeout, garbage) marks a node down; the mode is
 *   `degraded` from that round on.
 * - A down node that answers again is flushed first, and counts as up only once
 *   the flush succeeded: it must not serve values older than the writes made
 *   while it was away.
 * - Back to `normal` only when every node has been up for `settleMs` and the
 *   farm-wide hit ratio (from the counters every process increments) is back
 *   to `hitRatioRecovery` of its pre-incident level.
 * - An operator override (`kysely-memcache mode degraded --for 10m`) decides
 *   the mode while it lasts.
 * - With `warmup`, the monitor keeps a warm-up manifest (loaded from
 *   `manifestFile`, rebuilt every `saveEveryMs` from the farm-wide statistics
 *   and saved there) and, with `databaseUrl`, warms a flushed node before listing
 *   it up: it replays the manifest entries whose key that node owns, in the
 *   background (rounds go on, the node stays down and the tier degraded, the
 *   published state carries `warmup` progress), one node at a time, for at most
 *   `maxMs`. Whatever happens to the warm-up, the node is listed up afterwards.
 *
 * Run exactly one per tier (two would agree on nodes but not on `since`).
 *
 * @example
 * const monitor = startMonitor({ servers: ['10.0.0.1:11211', '10.0.0.2:11211'], namespace: 'shop' })
 * await monitor.ready
 * monitor.state() // { version: 1, mode: 'normal', down: [], reason: 'all nodes up', ... }
 * // logs e.g. "2026-11-25T12:00:00.000Z kysely-memcache monitor: degraded (node 10.0.0.2:11211 down: refused)"
 * process.once('SIGTERM', () => void monitor.stop())
 *
 * @throws {TypeError | RangeError} When an option is missing, unknown or out of range; the message names it.
 */
export function startMonitor(options: MonitorOptions): Monitor {
  return new TierMonitor(validateOptions(options))
}

interface Config {
  readonly nodes: readonly ServerAddress[]
  readonly servers: readonly string[]
  readonly namespace: string
  readonly intervalMs: number
  readonly probeTimeoutMs: number
  readonly settleMs: number
  readonly hitRatioRecovery: number
  readonly minRequests: number
  readonly flagTtlSeconds: number
  readonly log: (line: string) => void
  readonly onState: ((state: TierState) => void) | undefined
  readonly warmup: WarmupConfig | undefined
}

interface WarmupConfig {
  readonly databaseUrl: string | undefined
  /** Absolute. */
  readonly manifestFile: string | undefined
  readonly concurrency: number
  readonly maxMs: number
  readonly saveEveryMs: number
}

interface DownNode {
  /** Published reason: `refused`, `timeout`, `error`, `flush failed`, `inherited`, `waiting to warm`, `warming`. */
  reason: string
  message: string
  /** Already logged that it answers but cannot be flushed (once per outage). */
  flushFailureLogged: boolean
  /**
   * Answered and flushed, and warm-up is due: queued (`waiting`), replaying
   * (`running`), or over (`done`: listed up at the next round, not flushed again).
   */
  warm?: 'waiting' | 'running' | 'done'
  /** Its `cmd_flush` when its warm-up last checked it (`done` only). */
  flushes?: number | undefined
}

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

/** The automatic (probe and hit-ratio driven) mode, before any override. */
interface AutoMode {
  mode: CacheMode
  since: number
  /** Published: short. */
  reason: string
}

/** Farm-wide requests between two rounds. */
interface RequestWindow {
  at: number
  hits: number
  misses: number
}

interface Counters {
  hits: number
  misses: number
}

class TierMonitor implements Monitor {
  readonly ready: Promise<void>
  readonly #config: Config
  readonly #store: MemcachedStore
  readonly #setBy = `monitor ${hostname()}:${process.pid}`
  readonly #counterKeys: { hits: string; misses: string }
  #resolveReady: () => void = () => {}
  #timer: NodeJS.Timeout | undefined
  #inFlight: Promise<void> | undefined
  #stopping: Promise<void> | undefined
  #rounds = 0

  readonly #down = new Map<string, DownNode>()
  /** Since when every node has been up; `undefined` while one is down. */
  #allUpSince: number | undefined
  #auto: AutoMode
  /** Set when the automatic mode changed this round: what to log. */
  #autoChange: string | undefined
  #override: ModeOverride | undefined
  #state: TierState
  #publishFailing = false

  /** Routes like a process with every node up: which node owns a key (warm-up only). */
  readonly #ring: MemcachedStore | undefined
  /** Reads the farm-wide statistics document (warm-up only). */
  readonly #farm: FarmStatistics | undefined
  /** The manifest returning nodes are warmed from: the file's, then the farm's latest. */
  #manifest: WarmupManifest | undefined
  #lastSaveAt: number | undefined
  #saving: Promise<void> | undefined
  #saveFailing = false
  #savedOnce = false
  /** Warm-ups due, in arrival order: flushed nodes waiting for theirs, and nodes flushed again after they were listed up. */
  #warmQueue: Array<{ node: string; kind: 'return' | 'rewarm' }> = []
  #warmJob: WarmupJob | undefined
  /** Warmed nodes listed up recently: their flush count then, and until when they are watched. */
  readonly #watch = new Map<string, { flushes: number | undefined; until: number }>()
  #watching: Promise<void> | undefined

  #lastCounters: Counters | undefined
  /** Request windows while the tier was normal: the last 30 s of normal time. */
  #normalWindows: RequestWindow[] = []
  /** Every known window of the last 5 s. */
  #recentWindows: RequestWindow[] = []

  constructor(config: Config) {
    this.#config = config
    this.#counterKeys = farmCounterKeys(config.namespace)
    // The probes alone decide which nodes are down (holdDown below): the store's own failure count
    // would take a node off on its own and later flush it, wiping a node the probes call healthy.
    this.#store = new MemcachedStore({
      servers: config.servers,
      timeoutMs: config.probeTimeoutMs,
      failureThreshold: Number.MAX_SAFE_INTEGER,
    })
    if (config.warmup !== undefined) {
      this.#ring = new MemcachedStore({ servers: config.servers, timeoutMs: config.probeTimeoutMs })
      this.#farm = new FarmStatistics({ store: this.#store, namespace: config.namespace, local: new QueryStatistics() })
    }
    const now = Date.now()
    this.#auto = { mode: 'normal', since: now, reason: 'all nodes up' }
    this.#state = { version: 1, mode: 'normal', down: [], since: now, reason: 'starting', setBy: this.#setBy, at: now }
    this.ready = new Promise<void>((resolve) => {
      this.#resolveReady = resolve
    })
    this.#log(
      `started for ${config.nodes.length} node${config.nodes.length === 1 ? '' : 's'} (${config.servers.join(', ')}), namespace ${JSON.stringify(config.namespace)}, every ${formatDuration(config.intervalMs)}, settle ${formatDuration(config.settleMs)}`,
    )
    const warmup = config.warmup
    if (warmup !== undefined) {
      const kept = warmup.manifestFile === undefined ? 'kept in memory' : `kept in ${warmup.manifestFile}`
      this.#log(
        warmup.databaseUrl === undefined
          ? `warm-up manifest ${kept}, rebuilt every ${formatDuration(warmup.saveEveryMs)}; returning nodes are not warmed (no database URL)`
          : `returning nodes are warmed from ${redactUrl(warmup.databaseUrl)} before they are listed up (concurrency ${warmup.concurrency}, at most ${formatDuration(warmup.maxMs)} each); manifest ${kept}, rebuilt every ${formatDuration(warmup.saveEveryMs)}`,
      )
    }
    this.#schedule(0)
  }

  state(): TierState {
    return this.#state
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#inFlight
    const job = this.#warmJob
    if (job !== undefined) {
      this.#abortWarmup(job, 'stopping')
      await job.finished
    }
    await this.#saving
    await this.#watching
    await this.#ring?.close()
    await this.#store.close()
    this.#resolveReady()
    this.#log(`stopped; the published state expires within ${this.#config.flagTtlSeconds}s`)
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => this.#run(), delayMs)
    // The monitor alone must not keep a process alive; the CLI keeps itself alive.
    this.#timer.unref()
  }

  #run(): void {
    this.#timer = undefined
    if (this.#stopping !== undefined) return
    const started = Date.now()
    this.#inFlight = this.#round()
      .catch((error: unknown) => {
        // #round handles its own failures; this is a last guard so the loop survives a bug.
        this.#log(`round failed: ${errorMessage(error)}`)
      })
      .finally(() => {
        this.#inFlight = undefined
        this.#resolveReady()
        if (this.#stopping === undefined) {
          // Fixed rate: a slow round (timeouts) eats into the wait, never overlaps the next.
          this.#schedule(Math.max(0, this.#config.intervalMs - (Date.now() - started)))
        }
      })
  }

  async #round(): Promise<void> {
    const config = this.#config
    if (this.#rounds++ === 0) {
      await this.#inherit()
      await this.#loadManifest()
    }

    // 1. Probe every node; 2. flush the ones coming back before they count as up
    // (not again once flushed for a warm-up: that would wipe what the warm-up wrote).
    const probing = performance.now()
    const first = await Promise.all(config.nodes.map((node) => probeNode(node, config.probeTimeoutMs)))
    // Probes that took well over their timeout mean the monitor itself stalled (GC, a
    // paused VM), not the nodes: ask again before taking a node down and flushing it.
    const stalled = performance.now() - probing > config.probeTimeoutMs * 1.5
    const probes = await Promise.all(
      config.nodes.map((node, i) =>
        stalled && first[i]?.ok === false && !this.#down.has(node.id) ? probeNode(node, config.probeTimeoutMs) : first[i],
      ),
    )
    const flushes = await Promise.all(
      config.nodes.map((node, i) => {
        const probe = probes[i]
        return probe?.ok === true && this.#down.has(node.id) && this.#down.get(node.id)?.warm === undefined
          ? flushNode(node, config.probeTimeoutMs).then(
              () => undefined,
              (error: unknown) => errorMessage(error),
            )
          : Promise.resolve(null)
      }),
    )
    const now = Date.now()
    config.nodes.forEach((node, i) => {
      this.#updateNode(node, probes[i] as ProbeResult, flushes[i])
    })
    this.#startNextWarmup()
    this.#maybeSaveManifest(now)
    this.#watchFlushes(now)
    if (this.#down.size > 0) {
      this.#allUpSince = undefined
    } else {
      this.#allUpSince ??= now
    }
    // Route nothing to nodes the probes call down; re-admit (unflushed) the ones just flushed.
    this.#store.holdDown(new Set(this.#down.keys()), 'flushed')

    const [override, counters] = await Promise.all([this.#readOverride(now), this.#readCounters()])
    this.#recordWindow(counters, now)
    this.#autoChange = undefined
    this.#updateAutoMode(now)
    this.#updateOverride(override, now)
    await this.#publish(Date.now())
  }

  /** Picks up where a previous monitor left off, so a restart neither forgets down nodes nor flaps to normal. */
  async #inherit(): Promise<void> {
    let previous: TierState | undefined
    try {
      previous = await readTierState(this.#store, this.#config.namespace)
    } catch {
      return
    }
    if (previous === undefined) return
    const known = new Set(this.#config.nodes.map((node) => node.id))
    for (const id of previous.down) {
      // Held down by the processes until now: it must be flushed before it is released.
      if (known.has(id)) this.#down.set(id, { reason: 'inherited', message: `down according to ${previous.setBy}`, flushFailureLogged: false })
    }
    if (previous.mode === 'degraded' && previous.reason !== 'operator') {
      this.#auto = { mode: 'degraded', since: previous.since, reason: previous.reason }
      this.#state = { ...this.#state, mode: 'degraded', since: previous.since, reason: previous.reason }
    }
    if (previous.mode === 'degraded' || previous.down.length > 0) {
      this.#log(
        `resuming from ${previous.setBy}: ${previous.mode} since ${iso(previous.since)} (${previous.reason})${previous.down.length > 0 ? `, down: ${previous.down.join(', ')}` : ''}`,
      )
    }
  }

  /** @param flush `null`: no flush was due; `undefined`: flushed; a string: why the flush failed. */
  #updateNode(node: ServerAddress, probe: ProbeResult, flush: string | null | undefined): void {
    const down = this.#down.get(node.id)
    if (!probe.ok) {
      if (down === undefined) {
        this.#down.set(node.id, { reason: probe.reason, message: probe.message, flushFailureLogged: false })
        this.#log(`node ${node.id} down: ${probe.reason} (${probe.message})`)
        // Listed up, maybe being warmed again: that stops; it is flushed and warmed anew when it answers.
        this.#watch.delete(node.id)
        this.#warmQueue = this.#warmQueue.filter((queued) => queued.node !== node.id)
        const job = this.#warmJob
        if (job !== undefined && job.node === node.id) this.#abortWarmup(job, 'lost')
      } else {
        if (down.warm !== undefined) {
          // Lost again before it was listed up: whatever was warmed is gone; flush and warm again when it answers.
          const was = down.warm
          down.warm = undefined
          this.#warmQueue = this.#warmQueue.filter((queued) => queued.node !== node.id)
          const job = this.#warmJob
          if (job !== undefined && job.node === node.id) this.#abortWarmup(job, 'lost')
          this.#log(`node ${node.id} down again ${was === 'done' ? 'after its warm-up' : 'during its warm-up'}: ${probe.reason} (${probe.message})`)
        }
        down.reason = probe.reason
        down.message = probe.message
      }
      return
    }
    if (down === undefined) return
    if (down.warm === 'done') {
      this.#down.delete(node.id)
      this.#watch.set(node.id, { flushes: down.flushes, until: Date.now() + WARMUP_WATCH_MS })
      this.#log(`node ${node.id} back: answered and flushed, ${down.message}`)
      return
    }
    if (down.warm !== undefined || flush === null) return
    if (flush === undefined) {
      const owned = this.#warmsNodes() ? this.#ownedEntries(node.id).length : 0
      if (owned === 0) {
        this.#down.delete(node.id)
        this.#log(
          `node ${node.id} back: answered and flushed${this.#warmsNodes() ? ` (none of the ${this.#manifest?.entries.length ?? 0} warm-up manifest entries is its)` : ''}`,
        )
        return
      }
      down.warm = 'waiting'
      down.reason = 'waiting to warm'
      down.message = `${owned} manifest entries to replay`
      this.#warmQueue.push({ node: node.id, kind: 'return' })
      this.#log(`node ${node.id} answered and was flushed; warming its ${owned} manifest entries before listing it up`)
      return
    }
    down.reason = 'flush failed'
    down.message = flush
    if (!down.flushFailureLogged) {
      down.flushFailureLogged = true
      this.#log(`node ${node.id} answers but stays down: ${flush}`)
    }
  }

  async #readOverride(now: number): Promise<ModeOverride | undefined> {
    try {
      return await readModeOverride(this.#store, this.#config.namespace, now)
    } catch {
      // Unreadable this round: keep the one we know while it lasts, rather than flap.
      return this.#override !== undefined && this.#override.until > now ? this.#override : undefined
    }
  }

  async #readCounters(): Promise<Counters | undefined> {
    try {
      const [hits, misses] = await Promise.all([
        this.#store.get(this.#counterKeys.hits),
        this.#store.get(this.#counterKeys.misses),
      ])
      const parsedHits = parseCounter(hits)
      const parsedMisses = parseCounter(misses)
      return parsedHits === undefined || parsedMisses === undefined ? undefined : { hits: parsedHits, misses: parsedMisses }
    } catch {
      return undefined
    }
  }

  #recordWindow(counters: Counters | undefined, now: number): void {
    const last = this.#lastCounters
    this.#lastCounters = counters
    this.#recentWindows = this.#recentWindows.filter((window) => window.at > now - RECOVERY_WINDOW_MS)
    // A counter that went down was reset (its node died or it was evicted): that delta is unknown.
    if (counters === undefined || last === undefined || counters.hits < last.hits || counters.misses < last.misses) return
    const window: RequestWindow = { at: now, hits: counters.hits - last.hits, misses: counters.misses - last.misses }
    this.#recentWindows.push(window)
    // The baseline learns only from a healthy tier; during an incident it stays the pre-incident level.
    if (this.#auto.mode === 'normal' && this.#down.size === 0) {
      this.#normalWindows.push(window)
      this.#normalWindows = this.#normalWindows.filter((w) => w.at > now - BASELINE_WINDOW_MS)
    }
  }

  /** Hit ratio over the normal windows of the last 30 s of normal time, if they saw enough requests. */
  #baseline(): number | undefined {
    return ratioOf(this.#normalWindows, this.#config.minRequests)
  }

  #updateAutoMode(now: number): void {
    const config = this.#config
    if (this.#down.size > 0) {
      const reason = downReason(this.#down)
      if (this.#auto.mode === 'normal') {
        this.#auto = { mode: 'degraded', since: now, reason }
        this.#autoChange = downDetail(this.#down)
      } else {
        this.#auto.reason = reason
      }
      return
    }
    if (this.#auto.mode === 'normal') return
    const upFor = now - (this.#allUpSince ?? now)
    if (upFor < config.settleMs) {
      this.#auto.reason = `settling: all nodes up since ${iso(this.#allUpSince ?? now)}`
      return
    }
    const recovery = this.#recovery()
    if (recovery.recovered) {
      this.#auto = { mode: 'normal', since: now, reason: 'settled' }
      this.#autoChange = `settled: all nodes up for ${formatDuration(upFor)}, ${recovery.detail}`
    } else {
      this.#auto.reason = `settling: ${recovery.detail}`
    }
  }

  /** Whether the farm's hit ratio over the last 5 s is back to its pre-incident level. */
  #recovery(): { recovered: boolean; detail: string } {
    const config = this.#config
    const requests = this.#recentWindows.reduce((sum, w) => sum + w.hits + w.misses, 0)
    if (requests < config.minRequests) {
      return { recovered: true, detail: `${requests} requests in the last ${RECOVERY_WINDOW_MS / 1000}s` }
    }
    const ratio = ratioOf(this.#recentWindows, 1) ?? 0
    const baseline = this.#baseline()
    if (baseline === undefined) {
      return {
        recovered: ratio >= RATIO_WITHOUT_BASELINE,
        detail: `hit ratio ${ratio.toFixed(2)} (no baseline, need ${RATIO_WITHOUT_BASELINE})`,
      }
    }
    const target = config.hitRatioRecovery * baseline
    return {
      recovered: ratio >= target,
      detail: `hit ratio ${ratio.toFixed(2)} (baseline ${baseline.toFixed(2)}, need ${target.toFixed(2)})`,
    }
  }

  #updateOverride(override: ModeOverride | undefined, now: number): void {
    const previous = this.#override
    this.#override = override
    if (override !== undefined && !sameOverride(previous, override)) {
      this.#log(`override: ${override.mode} until ${iso(override.until)} (set by ${override.setBy})`)
    } else if (override === undefined && previous !== undefined) {
      this.#log(
        `override ${previous.until <= now ? 'expired' : 'cleared'}; automatic mode resumes (${this.#auto.mode}: ${this.#auto.reason})`,
      )
    }
  }

  async #publish(now: number): Promise<void> {
    const config = this.#config
    const override = this.#override
    const mode = override?.mode ?? this.#auto.mode
    const reason = override === undefined ? this.#auto.reason : 'operator'
    const previous = this.#state
    // `since` says when the published mode took effect: it moves only when that mode changes.
    const since = mode === previous.mode ? previous.since : now
    if (mode !== previous.mode) {
      const detail =
        override !== undefined
          ? `operator override until ${iso(override.until)}`
          : (this.#autoChange ?? `operator override over; automatic mode: ${this.#auto.reason}`)
      this.#log(`${mode} (${detail})`)
    } else if (this.#autoChange !== undefined && override !== undefined) {
      this.#log(`automatic mode ${this.#auto.mode} (${this.#autoChange}); operator override keeps ${mode} until ${iso(override.until)}`)
    }
    const recent = this.#recentWindows.reduce((sum, w) => sum + w.hits + w.misses, 0)
    const state: TierState = {
      version: 1,
      mode,
      down: config.nodes.filter((node) => this.#down.has(node.id)).map((node) => node.id),
      since,
      reason,
      setBy: this.#setBy,
      at: now,
      ...(recent > 0 ? { hitRatio: round3(ratioOf(this.#recentWindows, 1) ?? 0) } : {}),
      ...(override !== undefined ? { override } : {}),
      ...(this.#warmJob !== undefined
        ? { warmup: { node: this.#warmJob.node, done: this.#warmJob.done, total: this.#warmJob.total, startedAt: this.#warmJob.startedAt } }
        : {}),
    }
    this.#state = state
    try {
      await publish(this.#store, tierStateKey(config.namespace), state, config.flagTtlSeconds)
      if (this.#publishFailing) {
        this.#publishFailing = false
        this.#log('publishing the tier state again')
      }
    } catch (error) {
      if (!this.#publishFailing) {
        this.#publishFailing = true
        this.#log(`cannot publish the tier state: ${errorMessage(error)}`)
      }
    }
    if (config.onState !== undefined) {
      try {
        config.onState(state)
      } catch (error) {
        this.#log(`onState listener threw: ${errorMessage(error)}`)
      }
    }
  }

  /** Loads `manifestFile` if there is one: a missing, unreadable or invalid file is logged, never fatal. */
  async #loadManifest(): Promise<void> {
    const file = this.#config.warmup?.manifestFile
    if (file === undefined) return
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#log(`no warm-up manifest at ${file} yet; it is written once the farm-wide statistics have entries`)
      } else {
        this.#log(`cannot read the warm-up manifest ${file}: ${errorMessage(error)}`)
      }
      return
    }
    let manifest: WarmupManifest
    try {
      manifest = parseManifest(text)
    } catch (error) {
      const path = (error as { path?: unknown }).path
      this.#log(
        `ignoring the warm-up manifest ${file}: ${errorMessage(error)}${typeof path === 'string' && path !== '' ? ` (at ${path})` : ''}; it is rewritten from the farm-wide statistics`,
      )
      return
    }
    if (manifest.namespace !== this.#config.namespace) {
      this.#log(
        `ignoring the warm-up manifest ${file}: it is for namespace ${JSON.stringify(manifest.namespace)}, the monitor's is ${JSON.stringify(this.#config.namespace)}`,
      )
      return
    }
    this.#manifest = manifest
    this.#log(`loaded the warm-up manifest ${file}: ${plural(manifest.entries.length, 'entry', 'entries')} from ${manifest.createdAt}`)
  }

  /**
   * Starts a manifest rebuild in the background when one is due (never two at
   * once). Not while a node is down or warming: during an incident the
   * manifest stays what it was before it, so a node that comes back later (or
   * after every node restarted, when the farm-wide document restarts from a
   * few entries) is warmed with the pre-incident entries.
   */
  #maybeSaveManifest(now: number): void {
    const warmup = this.#config.warmup
    if (warmup === undefined || this.#saving !== undefined || this.#stopping !== undefined || this.#down.size > 0) return
    if (this.#lastSaveAt !== undefined && now - this.#lastSaveAt < warmup.saveEveryMs) return
    this.#lastSaveAt = now
    this.#saving = this.#saveManifest(warmup)
      .catch((error: unknown) => this.#log(`saving the warm-up manifest failed: ${errorMessage(error)}`))
      .finally(() => {
        this.#saving = undefined
      })
  }

  /**
   * Rebuilds the manifest from the farm-wide statistics document and writes it
   * to `manifestFile` (temporary file, then rename: a reader never sees half a
   * file). An empty or missing document (say, every node restarted) changes
   * nothing: the manifest and the file keep the last known entries.
   */
  async #saveManifest(warmup: WarmupConfig): Promise<void> {
    let manifest: WarmupManifest
    try {
      manifest = createManifest(this.#config.namespace, await this.#farm!.read())
    } catch (error) {
      this.#saveFailed(`cannot read the farm-wide statistics: ${errorMessage(error)}`)
      return
    }
    if (manifest.entries.length === 0) return
    this.#manifest = manifest
    const file = warmup.manifestFile
    if (file !== undefined) {
      const temporary = `${file}.${process.pid}.tmp`
      try {
        await writeFile(temporary, serializeManifest(manifest), 'utf8')
        await rename(temporary, file)
      } catch (error) {
        await unlink(temporary).catch(() => {})
        this.#saveFailed(`cannot write the warm-up manifest ${file}: ${errorMessage(error)}`)
        return
      }
    }
    if (this.#saveFailing || !this.#savedOnce) {
      this.#log(
        `${this.#saveFailing ? 'saving the warm-up manifest again: ' : 'warm-up manifest '}${plural(manifest.entries.length, 'entry', 'entries')} from the farm-wide statistics${file === undefined ? '' : `, saved to ${file}`}`,
      )
    }
    this.#saveFailing = false
    this.#savedOnce = true
  }

  #saveFailed(message: string): void {
    if (this.#saveFailing) return
    this.#saveFailing = true
    this.#log(`${message}; keeping the manifest of ${plural(this.#manifest?.entries.length ?? 0, 'entry', 'entries')} known so far`)
  }

  /** Whether returning nodes are warmed: a database to replay against and a manifest with entries. */
  #warmsNodes(): boolean {
    return this.#config.warmup?.databaseUrl !== undefined && (this.#manifest?.entries.length ?? 0) > 0
  }

  /** The manifest entries whose key `node` owns on the full ring (every node up). */
  #ownedEntries(node: string, manifest: WarmupManifest | undefined = this.#manifest): WarmupEntry[] {
    const ring = this.#ring
    if (manifest === undefined || ring === undefined) return []
    return manifest.entries.filter((entry) => ownerOf(ring, entry) === node)
  }

  /** Starts the next queued warm-up unless one runs: one at a time, so the database sees `concurrency` queries at most. */
  #startNextWarmup(): void {
    if (this.#warmJob !== undefined || this.#stopping !== undefined) return
    for (;;) {
      const next = this.#warmQueue.shift()
      if (next === undefined) return
      const down = this.#down.get(next.node)
      if (next.kind === 'return' && down?.warm === 'waiting') {
        this.#startWarmup(next.node, down)
        return
      }
      if (next.kind === 'rewarm' && down === undefined && this.#warmsNodes() && this.#ownedEntries(next.node).length > 0) {
        this.#startWarmup(next.node, undefined)
        return
      }
    }
  }

  /**
   * Every round: reads the flush count of the warmed nodes listed up within
   * WARMUP_WATCH_MS, in the background, and queues a new warm-up for one that
   * someone flushed since.
   */
  #watchFlushes(now: number): void {
    if (this.#watching !== undefined || this.#stopping !== undefined) return
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
        this.#startNextWarmup()
      }),
    )
      .then(() => undefined)
      .finally(() => {
        this.#watching = undefined
      })
  }

  #startWarmup(node: string, down: DownNode | undefined): void {
    const warmup = this.#config.warmup!
    const manifest = this.#manifest!
    const entries = this.#ownedEntries(node, manifest)
    if (down !== undefined) {
      down.warm = 'running'
      down.reason = 'warming'
      down.message = `replaying ${entries.length} manifest entries`
    }
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
          current.warm = 'done'
          current.reason = 'warmed'
          current.message = job.summary
          current.flushes = job.flushes
        }
        const watched = this.#watch.get(node)
        if (job.kind === 'rewarm' && watched !== undefined && job.flushes !== undefined) watched.flushes = job.flushes
        this.#startNextWarmup()
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
    let cache: QueryCache | undefined
    let db: Kysely<any> | undefined
    let pool: Pool | undefined
    let report: WarmupReport | undefined
    let gaveUp = false
    try {
      const { default: pg } = await import('pg')
      cache = createQueryCache({
        servers: config.servers,
        namespace: config.namespace,
        statistics: false,
        modeRefreshMs: WARMUP_CLIENT_REFRESH_MS,
        safeMode: false,
      })
      // Its first poll of the tier state holds down every node the monitor lists, this one included
      // (or, when no node has the flag, leaves them all to its own probes): let it finish, then route
      // to this node and the healthy ones only. Holding every node first makes the release below
      // re-admit them, whatever state the poll left them in. It polls again only in a day.
      await cache.refreshMode()
      const store = cache.store as MemcachedStore
      store.holdDown(new Set(config.servers), 'flushed')
      store.holdDown(this.#heldDownFor(node), 'flushed')
      pool = new pg.Pool({
        connectionString: warmup.databaseUrl,
        max: warmup.concurrency,
        connectionTimeoutMillis: Math.min(warmup.maxMs, 10_000),
        statement_timeout: Math.max(1, Math.ceil(warmup.maxMs)),
      })
      // An idle client losing its connection emits 'error' on the pool: unhandled, it would end the monitor.
      pool.on('error', (error: Error) => this.#log(`node ${node} warm-up: database connection error: ${error.message}`))
      db = new Kysely<any>({ dialect: cache.wrapDialect(new PostgresDialect({ pool })) })
      const wanted = new Set(entries.map((entry) => entry.key))
      const address = config.nodes.find((candidate) => candidate.id === node)!
      // Someone else may flush the node meanwhile: a process that could read no flag (every node
      // had been down) probes it back and flushes it itself, and so does another namespace's
      // monitor. That wipes the replay, so it runs again, until the node's flush count holds still.
      let flushes = await this.#flushCount(address)
      job.flushes = flushes
      for (let attempt = 1; ; attempt++) {
        const running = cache.warmup(manifest, {
          db,
          concurrency: warmup.concurrency,
          signal: job.controller.signal,
          filter: (entry) => wanted.has(entry.key) && ownerOf(this.#ring!, entry) === node,
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
      const closing = Promise.all([db?.destroy().catch(() => {}), cache?.close().catch(() => {})])
      await Promise.race([closing, delay(WARMUP_GRACE_MS)])
      if (db === undefined && pool !== undefined) await pool.end().catch(() => {})
      this.#logWarmup(job, report, gaveUp, warmup)
    }
  }

  /**
   * Nodes the warm-up must route around: the ones down, except `node` and the
   * ones already warmed (those are as current as the healthy nodes and are
   * listed up at the next round).
   */
  #heldDownFor(node: string): Set<string> {
    return new Set([...this.#down.entries()].filter(([id, down]) => id !== node && down.warm !== 'done').map(([id]) => id))
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

  #log(message: string): void {
    try {
      this.#config.log(`${new Date().toISOString()} kysely-memcache monitor: ${message}`)
    } catch {
      // A failing logger must not stop the monitor.
    }
  }
}

function validateOptions(options: MonitorOptions): Config {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`startMonitor options must be an object, got ${describe(options)}`)
  }
  for (const name of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(name)) {
      throw new TypeError(`startMonitor got unknown option ${JSON.stringify(name)}; known options: ${[...KNOWN_OPTIONS].join(', ')}`)
    }
  }
  const nodes = parseServerList(options.servers, 'servers')
  const namespace = validateNamespace(options.namespace ?? 'kysely')
  const intervalMs = number(options.intervalMs, 1000, 'intervalMs', 'a positive number of milliseconds', (v) => v > 0 && v <= MAX_TIMER_MS)
  const probeTimeoutMs = number(
    options.probeTimeoutMs,
    Math.min(250, intervalMs / 2),
    'probeTimeoutMs',
    'a positive number of milliseconds',
    (v) => v > 0 && v <= MAX_TIMER_MS,
  )
  const settleMs = number(options.settleMs, 30_000, 'settleMs', 'a non-negative number of milliseconds', (v) => v >= 0)
  const hitRatioRecovery = number(options.hitRatioRecovery, 0.9, 'hitRatioRecovery', 'a number from 0 to 1', (v) => v >= 0 && v <= 1)
  const minRequests = number(options.minRequests, 20, 'minRequests', 'a non-negative integer', (v) => Number.isSafeInteger(v) && v >= 0)
  const flagTtlSeconds = number(
    options.flagTtlSeconds,
    Math.max(3, Math.ceil((3 * intervalMs) / 1000)),
    'flagTtlSeconds',
    `an integer number of seconds above intervalMs (${intervalMs} ms), at most 2592000`,
    (v) => Number.isSafeInteger(v) && v * 1000 > intervalMs && v <= 2_592_000,
  )
  if (options.log !== undefined && typeof options.log !== 'function') {
    throw new TypeError(`log must be a function, got ${describe(options.log)}`)
  }
  if (options.onState !== undefined && typeof options.onState !== 'function') {
    throw new TypeError(`onState must be a function, got ${describe(options.onState)}`)
  }
  const warmup = options.warmup === undefined ? undefined : validateWarmup(options.warmup)
  return {
    nodes,
    servers: nodes.map((node) => node.id),
    namespace,
    intervalMs,
    probeTimeoutMs,
    settleMs,
    hitRatioRecovery,
    minRequests,
    flagTtlSeconds,
    log: options.log ?? ((line) => console.log(line)),
    onState: options.onState,
    warmup,
  }
}

function validateWarmup(options: MonitorWarmupOptions): WarmupConfig {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`warmup must be an object like { databaseUrl, manifestFile }, got ${describe(options)}`)
  }
  for (const name of Object.keys(options)) {
    if (!WARMUP_OPTIONS.has(name)) {
      throw new TypeError(`warmup got unknown option ${JSON.stringify(name)}; known options: ${[...WARMUP_OPTIONS].join(', ')}`)
    }
  }
  const { databaseUrl, manifestFile } = options
  if (databaseUrl !== undefined && (typeof databaseUrl !== 'string' || databaseUrl.trim() === '')) {
    throw new TypeError(`warmup.databaseUrl must be a PostgreSQL connection string like postgres://user@host:5432/db, got ${describe(databaseUrl)}`)
  }
  if (manifestFile !== undefined && (typeof manifestFile !== 'string' || manifestFile.trim() === '')) {
    throw new TypeError(`warmup.manifestFile must be a file path, got ${describe(manifestFile)}`)
  }
  if (databaseUrl === undefined && manifestFile === undefined) {
    throw new TypeError('warmup needs databaseUrl (to warm returning nodes), manifestFile (to keep the manifest across restarts) or both')
  }
  let file: string | undefined
  if (manifestFile !== undefined) {
    file = resolve(manifestFile)
    let directory = false
    try {
      directory = statSync(dirname(file)).isDirectory()
    } catch {
      // Reported below.
    }
    if (!directory) throw new RangeError(`warmup.manifestFile must be in an existing directory, got ${describe(manifestFile)} (${dirname(file)} is not a directory)`)
  }
  const concurrency = number(options.concurrency, 4, 'warmup.concurrency', 'a positive integer', (v) => Number.isSafeInteger(v) && v > 0)
  const maxMs = number(options.maxMs, 60_000, 'warmup.maxMs', 'a positive number of milliseconds', (v) => v > 0 && v <= MAX_TIMER_MS)
  const saveEveryMs = number(options.saveEveryMs, 60_000, 'warmup.saveEveryMs', 'a positive number of milliseconds', (v) => v > 0 && v <= MAX_TIMER_MS)
  return { databaseUrl, manifestFile: file, concurrency, maxMs, saveEveryMs }
}

function number(value: unknown, fallback: number, name: string, expected: string, valid: (value: number) => boolean): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number') throw new TypeError(`${name} must be ${expected}, got ${describe(value)}`)
  if (!Number.isFinite(value) || !valid(value)) throw new RangeError(`${name} must be ${expected}, got ${describe(value)}`)
  return value
}

/** A farm counter as stored by memcached `incr`: decimal text; missing is 0, anything else unknown. */
function parseCounter(value: Buffer | undefined): number | undefined {
  if (value === undefined) return 0
  const text = value.toString('latin1').trim()
  return /^\d{1,20}$/.test(text) ? Number(text) : undefined
}

function ratioOf(windows: readonly RequestWindow[], minRequests: number): number | undefined {
  let hits = 0
  let requests = 0
  for (const window of windows) {
    hits += window.hits
    requests += window.hits + window.misses
  }
  return requests > 0 && requests >= minRequests ? hits / requests : undefined
}

function downReason(down: ReadonlyMap<string, DownNode>): string {
  const entries = [...down.entries()]
  if (entries.length === 1) {
    const [id, node] = entries[0]!
    return `node ${id} down (${node.reason})`
  }
  return `${entries.length} nodes down: ${entries.map(([id, node]) => `${id} (${node.reason})`).join(', ')}`
}

function downDetail(down: ReadonlyMap<string, DownNode>): string {
  return [...down.entries()].map(([id, node]) => `node ${id} down: ${node.reason}`).join(', ')
}

function sameOverride(a: ModeOverride | undefined, b: ModeOverride): boolean {
  return a !== undefined && a.mode === b.mode && a.until === b.until && a.setBy === b.setBy
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000
}

/** The node that owns `entry`'s key on `ring`: the key as recorded, since it holds the scope of the read. */
function ownerOf(ring: MemcachedStore, entry: WarmupEntry): string {
  return ring.nodeFor(entry.key)
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(the database URL)'
  }
}

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms).unref()
  })
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
