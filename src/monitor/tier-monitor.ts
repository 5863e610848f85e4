import { farmCounterKeys } from '../keys.js'
import type { FarmCounterKeys } from '../keys.js'
import { MemcachedStore, secretsOption } from '../store/memcached/memcached-store.js'
import type { TierState } from '../tier/tier-state.js'
import { errorMessage, iso, startLines } from './log-text.js'
import { ManifestKeeper } from './manifest-keeper.js'
import type { MonitorConfig } from './monitor-config.js'
import { downDetail, downReason, observeNode } from './node-tracker.js'
import type { DownNode, NodeEvent } from './node-tracker.js'
import { NodeWarmer } from './node-warmer.js'
import { OverrideWatcher } from './override-watcher.js'
import { probeRound } from './probe-round.js'
import type { NodeCheck } from './probe-round.js'
import { nextAutoMode, parseCounter, recordCounters } from './recovery.js'
import type { AutoMode, Counters, TrafficHistory } from './recovery.js'
import { StatePublisher } from './state-publisher.js'

/**
 * The monitor's loop: every round it probes and flushes the nodes, feeds the
 * node tracker, the warmer and the recovery decision, and has the publisher
 * publish the tier state.
 *
 * ```ts
 * const monitor = new TierMonitor(config) // config as validated by startMonitor
 * await monitor.ready
 * await monitor.stop()
 * ```
 */
export class TierMonitor {
  /** Resolves once the first round has been published (or the monitor stopped). */
  readonly ready: Promise<void>
  readonly #config: MonitorConfig
  readonly #store: MemcachedStore
  readonly #counterKeys: FarmCounterKeys
  readonly #publisher: StatePublisher
  readonly #overrides: OverrideWatcher
  #resolveReady: () => void = () => {}
  #timer: NodeJS.Timeout | undefined
  #inFlight: Promise<void> | undefined
  #stopping: Promise<void> | undefined
  #rounds = 0

  readonly #down = new Map<string, DownNode>()
  /** Since when every node has been up; `undefined` while one is down. */
  #allUpSince: number | undefined
  #auto: AutoMode
  #traffic: TrafficHistory = { last: undefined, recent: [], normal: [] }

  /** The warm-up manifest (warm-up only). */
  readonly #keeper: ManifestKeeper | undefined
  /** Warms returning nodes (warm-up only). */
  readonly #warmer: NodeWarmer | undefined

  constructor(config: MonitorConfig) {
    this.#config = config
    this.#counterKeys = farmCounterKeys(config.namespace)
    const log = (message: string): void => this.#log(message)
    // The probes alone decide which nodes are down (holdDown below): the store's own failure count
    // would take a node off on its own and later flush it, wiping a node the probes call healthy.
    this.#store = new MemcachedStore({
      servers: config.servers,
      timeoutMs: config.probeTimeoutMs,
      failureThreshold: Number.MAX_SAFE_INTEGER,
      sasl: config.sasl,
      ...secretsOption(config.secrets),
    })
    const { namespace } = config
    this.#publisher = new StatePublisher({ store: this.#store, namespace, flagTtlSeconds: config.flagTtlSeconds, onState: config.onState, log })
    this.#overrides = new OverrideWatcher({ store: this.#store, namespace, log })
    if (config.warmup !== undefined) {
      const { manifestFile: file, saveEveryMs } = config.warmup
      this.#keeper = new ManifestKeeper({ store: this.#store, namespace, file, saveEveryMs, log })
      this.#warmer = new NodeWarmer({ config, warmup: config.warmup, keeper: this.#keeper, down: this.#down, log })
    }
    this.#auto = { mode: 'normal', since: Date.now(), reason: 'all nodes up' }
    this.ready = new Promise<void>((resolve) => {
      this.#resolveReady = resolve
    })
    for (const line of startLines(config)) this.#log(line)
    this.#schedule(0)
  }

  /** The state published last (before the first round: the starting state). */
  state(): TierState {
    return this.#publisher.state
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

    const checks = await probeRound(config.nodes, this.#down, config.probeTimeoutMs, config.sasl)
    const now = Date.now()
    for (const check of checks) this.#updateNode(check)
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

    const [override, counters] = await Promise.all([this.#overrides.read(now), this.#readCounters()])
    // The baseline learns only from a healthy tier; during an incident it stays the pre-incident level.
    this.#traffic = recordCounters(this.#traffic, counters, now, this.#auto.mode === 'normal' && this.#down.size === 0)
    const { auto, change } = nextAutoMode(this.#auto, {
      now,
      down: this.#down.size > 0 ? { reason: downReason(this.#down), detail: downDetail(this.#down) } : undefined,
      allUpSince: this.#allUpSince,
      settleMs: config.settleMs,
      hitRatioRecovery: config.hitRatioRecovery,
      minRequests: config.minRequests,
      traffic: this.#traffic,
    })
    this.#auto = auto
    this.#overrides.update(override, now, auto)
    await this.#publisher.publish(
      {
        auto,
        autoChange: change,
        override,
        down: config.nodes.filter((node) => this.#down.has(node.id)).map((node) => node.id),
        traffic: this.#traffic,
        warmup: this.#warmer?.progress,
      },
      Date.now(),
    )
  }

  /** Picks up where a previous monitor left off, so a restart neither forgets down nodes nor flaps to normal. */
  async #inherit(): Promise<void> {
    const previous = await this.#publisher.readPublished()
    if (previous === undefined) return
    const known = new Set(this.#config.nodes.map((node) => node.id))
    for (const id of previous.down) {
      // Held down by the processes until now: it must be flushed before it is released.
      if (known.has(id)) this.#down.set(id, { reason: 'inherited', message: `down according to ${previous.setBy}`, flushFailureLogged: false })
    }
    if (previous.mode === 'degraded' && previous.reason !== 'operator') {
      this.#auto = { mode: 'degraded', since: previous.since, reason: previous.reason }
      this.#publisher.resume(this.#auto)
    }
    if (previous.mode === 'degraded' || previous.down.length > 0) {
      this.#log(
        `resuming from ${previous.setBy}: ${previous.mode} since ${iso(previous.since)} (${previous.reason})${previous.down.length > 0 ? `, down: ${previous.down.join(', ')}` : ''}`,
      )
    }
  }

  #updateNode({ node, probe, flush }: NodeCheck): void {
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

  /** The farm-wide counters every process increments; `undefined` when unreadable. */
  async #readCounters(): Promise<Counters | undefined> {
    try {
      // incr by 0 reads a counter: counters are memcached's own numbers, not framed values a get would refuse.
      const read = (key: string) => this.#store.increment(key, 0, 0n).then((text) => Buffer.from(text, 'latin1'))
      const [hits, misses] = await Promise.all([read(this.#counterKeys.hits), read(this.#counterKeys.misses)])
      const parsedHits = parseCounter(hits)
      const parsedMisses = parseCounter(misses)
      return parsedHits === undefined || parsedMisses === undefined ? undefined : { hits: parsedHits, misses: parsedMisses }
    } catch {
      return undefined
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
