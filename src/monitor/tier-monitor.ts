import { hostname } from 'node:os'
import { flushNode, probeNode } from '../store/memcached/node-probe.js'
import type { ProbeResult } from '../store/memcached/node-probe.js'
import type { ServerAddress } from '../store/memcached/server-address.js'
import { MemcachedStore } from '../store/memcached/memcached-store.js'
import { farmCounterKeys, publish, readModeOverride, readTierState, tierStateKey } from '../tier/tier-state.js'
import type { ModeOverride, TierState } from '../tier/tier-state.js'
import { formatDuration } from '../util/duration.js'
import { errorMessage } from './log-text.js'
import { ManifestKeeper } from './manifest-keeper.js'
import type { MonitorConfig } from './monitor-config.js'
import { downDetail, downReason, flushDue, needsReprobe, observeNode, probesStalled } from './node-tracker.js'
import type { DownNode, NodeEvent } from './node-tracker.js'
import { NodeWarmer } from './node-warmer.js'
import { nextAutoMode, parseCounter, ratioOf, recordCounters, requestCount } from './recovery.js'
import type { AutoMode, Counters, TrafficHistory } from './recovery.js'

/**
 * The monitor's probe loop: every round it probes and flushes the nodes, feeds
 * the node tracker and the recovery decision, and publishes the tier state.
 */
export class TierMonitor {
  readonly ready: Promise<void>
  readonly #config: MonitorConfig
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

  /** The warm-up manifest (warm-up only). */
  readonly #keeper: ManifestKeeper | undefined
  /** Warms returning nodes (warm-up only). */
  readonly #warmer: NodeWarmer | undefined

  #traffic: TrafficHistory = { last: undefined, recent: [], normal: [] }

  constructor(config: MonitorConfig) {
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
      const keeper = new ManifestKeeper({
        store: this.#store,
        namespace: config.namespace,
        file: config.warmup.manifestFile,
        saveEveryMs: config.warmup.saveEveryMs,
        log: (message) => this.#log(message),
      })
      this.#keeper = keeper
      this.#warmer = new NodeWarmer({ config, warmup: config.warmup, keeper, down: this.#down, log: (message) => this.#log(message) })
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

  /** The state published last (before the first round: the starting state). */
  state(): TierState {
    return this.#state
  }

  /** Stops probing, waits for a round in flight and the warm-up, and closes connections. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#warmer?.halt()
    await this.#inFlight
    await this.#warmer?.stop()
    await this.#keeper?.idle()
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
      await this.#keeper?.load()
    }

    // 1. Probe every node; 2. flush the ones coming back before they count as up
    // (not again once flushed for a warm-up: that would wipe what the warm-up wrote).
    const probing = performance.now()
    const first = await Promise.all(config.nodes.map((node) => probeNode(node, config.probeTimeoutMs)))
    // Probes that took well over their timeout mean the monitor itself stalled (GC, a
    // paused VM), not the nodes: ask again before taking a node down and flushing it.
    const stalled = probesStalled(performance.now() - probing, config.probeTimeoutMs)
    const probes = await Promise.all(
      config.nodes.map((node, i) =>
        needsReprobe(stalled, first[i]!, this.#down.get(node.id)) ? probeNode(node, config.probeTimeoutMs) : first[i]!,
      ),
    )
    const flushes = await Promise.all(
      config.nodes.map((node, i) => {
        return flushDue(probes[i]!, this.#down.get(node.id))
          ? flushNode(node, config.probeTimeoutMs).then(
              () => undefined,
              (error: unknown) => errorMessage(error),
            )
          : Promise.resolve(null)
      }),
    )
    const now = Date.now()
    config.nodes.forEach((node, i) => {
      this.#updateNode(node, probes[i]!, flushes[i])
    })
    this.#warmer?.startNext()
    // Not while a node is down or warming: during an incident the manifest stays what it was before
    // it, so a node that comes back later (or after every node restarted, when the farm-wide
    // document restarts from a few entries) is warmed with the pre-incident entries.
    if (this.#stopping === undefined && this.#down.size === 0) this.#keeper?.refreshIfDue(now)
    this.#warmer?.watchFlushes(now)
    if (this.#down.size > 0) {
      this.#allUpSince = undefined
    } else {
      this.#allUpSince ??= now
    }
    // Route nothing to nodes the probes call down; re-admit (unflushed) the ones just flushed.
    this.#store.holdDown(new Set(this.#down.keys()), 'flushed')

    const [override, counters] = await Promise.all([this.#readOverride(now), this.#readCounters()])
    // The baseline learns only from a healthy tier; during an incident it stays the pre-incident level.
    this.#traffic = recordCounters(this.#traffic, counters, now, this.#auto.mode === 'normal' && this.#down.size === 0)
    const next = nextAutoMode(this.#auto, {
      now,
      down: this.#down.size > 0 ? { reason: downReason(this.#down), detail: downDetail(this.#down) } : undefined,
      allUpSince: this.#allUpSince,
      settleMs: config.settleMs,
      hitRatioRecovery: config.hitRatioRecovery,
      minRequests: config.minRequests,
      traffic: this.#traffic,
    })
    this.#auto = next.auto
    this.#autoChange = next.change
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
    const { down, event } = observeNode(this.#down.get(node.id), probe, flush, () => this.#warmer?.entriesToWarm(node.id) ?? 0)
    if (down === undefined) this.#down.delete(node.id)
    else this.#down.set(node.id, down)
    if (event !== undefined) this.#onNodeEvent(node.id, event)
  }

  #onNodeEvent(node: string, event: NodeEvent): void {
    switch (event.type) {
      case 'down':
        this.#log(`node ${node} down: ${event.reason} (${event.message})`)
        // Listed up, maybe being warmed again: that stops; it is flushed and warmed anew when it answers.
        this.#warmer?.forget(node)
        return
      case 'down-again':
        this.#warmer?.forget(node)
        this.#log(`node ${node} down again ${event.after === 'done' ? 'after its warm-up' : 'during its warm-up'}: ${event.reason} (${event.message})`)
        return
      case 'back':
        if (event.warmed) {
          this.#warmer?.watch(node, event.flushes)
          this.#log(`node ${node} back: answered and flushed, ${event.summary}`)
        } else {
          this.#log(
            `node ${node} back: answered and flushed${this.#warmer?.warmsNodes() === true ? ` (none of the ${this.#keeper?.manifest?.entries.length ?? 0} warm-up manifest entries is its)` : ''}`,
          )
        }
        return
      case 'warm-due':
        this.#warmer?.enqueue(node, 'return')
        this.#log(`node ${node} answered and was flushed; warming its ${event.entries} manifest entries before listing it up`)
        return
      case 'flush-failed':
        this.#log(`node ${node} answers but stays down: ${event.message}`)
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
    const recent = requestCount(this.#traffic.recent)
    const state: TierState = {
      version: 1,
      mode,
      down: config.nodes.filter((node) => this.#down.has(node.id)).map((node) => node.id),
      since,
      reason,
      setBy: this.#setBy,
      at: now,
      ...(recent > 0 ? { hitRatio: round3(ratioOf(this.#traffic.recent, 1) ?? 0) } : {}),
      ...(override !== undefined ? { override } : {}),
      ...(this.#warmer?.progress !== undefined ? { warmup: this.#warmer.progress } : {}),
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

function sameOverride(a: ModeOverride | undefined, b: ModeOverride): boolean {
  return a !== undefined && a.mode === b.mode && a.until === b.until && a.setBy === b.setBy
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000
}

/**
 * The URL without its password, for logs.
 *
 * ```ts
 * redactUrl('postgres://app:secret@db/shop') // 'postgres://app:***@db/shop'
 * ```
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(the database URL)'
  }
}
