import { hostname } from 'node:os'
import { validateNamespace } from './key.js'
import { flushNode, probeNode } from './node-probe.js'
import type { ProbeResult } from './node-probe.js'
import { formatDuration } from './duration.js'
import { describe } from './options.js'
import { parseServerList } from './server-address.js'
import type { ServerAddress } from './server-address.js'
import { MemcachedStore } from './store/memcached-store.js'
import { farmCounterKeys, publish, readModeOverride, readTierState, tierStateKey } from './tier-state.js'
import type { CacheMode, ModeOverride, TierState } from './tier-state.js'

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
}

interface DownNode {
  /** Published reason: `refused`, `timeout`, `error`, `flush failed`, `inherited`. */
  reason: string
  message: string
  /** Already logged that it answers but cannot be flushed (once per outage). */
  flushFailureLogged: boolean
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
    const now = Date.now()
    this.#auto = { mode: 'normal', since: now, reason: 'all nodes up' }
    this.#state = { version: 1, mode: 'normal', down: [], since: now, reason: 'starting', setBy: this.#setBy, at: now }
    this.ready = new Promise<void>((resolve) => {
      this.#resolveReady = resolve
    })
    this.#log(
      `started for ${config.nodes.length} node${config.nodes.length === 1 ? '' : 's'} (${config.servers.join(', ')}), namespace ${JSON.stringify(config.namespace)}, every ${formatDuration(config.intervalMs)}, settle ${formatDuration(config.settleMs)}`,
    )
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
    if (this.#rounds++ === 0) await this.#inherit()

    // 1. Probe every node; 2. flush the ones coming back before they count as up.
    const probes = await Promise.all(config.nodes.map((node) => probeNode(node, config.probeTimeoutMs)))
    const flushes = await Promise.all(
      config.nodes.map((node, i) => {
        const probe = probes[i]
        return probe?.ok === true && this.#down.has(node.id)
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
      } else {
        down.reason = probe.reason
        down.message = probe.message
      }
      return
    }
    if (down === undefined || flush === null) return
    if (flush === undefined) {
      this.#down.delete(node.id)
      this.#log(`node ${node.id} back: answered and flushed`)
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
  }
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

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
