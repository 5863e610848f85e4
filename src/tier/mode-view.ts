import type { CacheCounters } from '../cache/counters.js'
import { isNodeAware, type NodeAwareStore } from '../store/node-aware-store.js'
import type { Store } from '../store/store.js'
import { farmCounterKeys, type FarmCounterKeys } from '../keys.js'
import { readModeOverride, readTierState, type CacheMode, type ModeOverride, type TierState } from './tier-state.js'

/** A change of this process's mode, for `onEvent`. */
export interface ModeChange {
  readonly from: CacheMode
  readonly to: CacheMode
  readonly reason: string
}

export interface ModeViewOptions {
  readonly store: Store
  readonly namespace: string
  /** How often the shared flag is read and this process's counts reported. */
  readonly refreshMs: number
  /** Without a monitor: how long this process stays degraded after its last node rejoined (empty). */
  readonly settleMs: number
  readonly counters: CacheCounters
  readonly onChange: (change: ModeChange) => void
  readonly onError: (error: unknown) => void
}

/**
 * This process's view of the tier: degraded when the shared flag says so, or
 * when this process itself has taken a node out of its ring; an operator's
 * override beats both. Reading it costs no I/O: the flag is polled in the
 * background, so normal mode adds no round trip to any query.
 */
export class ModeView {
  readonly #store: Store
  readonly #nodes: NodeAwareStore | undefined
  readonly #namespace: string
  readonly #counters: CacheCounters
  readonly #farmKeys: FarmCounterKeys
  readonly #refreshMs: number
  readonly #onChange: (change: ModeChange) => void
  readonly #onError: (error: unknown) => void
  #shared: TierState | undefined
  #override: ModeOverride | undefined
  #reported = { hits: 0, misses: 0 }
  #last: CacheMode = 'normal'
  #nodesDown = false
  /** Until when the tier counts as settling after this process's nodes all rejoined. */
  #settlingUntil = 0
  readonly #settleMs: number
  #timer: NodeJS.Timeout | undefined
  #refreshing: Promise<void> | undefined
  #stopped = false

  constructor(options: ModeViewOptions) {
    this.#store = options.store
    this.#nodes = isNodeAware(options.store) ? options.store : undefined
    this.#namespace = options.namespace
    this.#counters = options.counters
    this.#farmKeys = farmCounterKeys(options.namespace)
    this.#refreshMs = options.refreshMs
    this.#settleMs = options.settleMs
    this.#onChange = options.onChange
    this.#onError = options.onError
  }

  /** The mode this process acts on now. */
  get mode(): CacheMode {
    return this.#decide().mode
  }

  /** The monitor's last published state, if a monitor is running. */
  get shared(): TierState | undefined {
    return this.#shared
  }

  /** Starts polling; the first poll runs at once. */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return
    this.#tick()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#refreshing
  }

  /** Re-evaluates after a local change (a node left or rejoined this process's ring). */
  noteLocalChange(): void {
    const nodes = this.#nodes
    const down = nodes !== undefined && nodes.liveNodeCount < nodes.nodeCount
    if (this.#nodesDown && !down) this.#settlingUntil = Date.now() + this.#settleMs
    this.#nodesDown = down
    this.#announce()
  }

  /**
   * One poll: read the flag and any override, report hit/miss counts, follow the
   * monitor's node list. Starts after any poll in flight, so it sees writes made before the call.
   */
  async refresh(): Promise<void> {
    while (this.#refreshing !== undefined) await this.#refreshing
    this.#refreshing = this.#refresh().finally(() => {
      this.#refreshing = undefined
    })
    return this.#refreshing
  }

  async #refresh(): Promise<void> {
    const now = Date.now()
    const [shared, override] = await Promise.all([
      readTierState(this.#store, this.#namespace).catch((error: unknown) => this.#failed(error)),
      readModeOverride(this.#store, this.#namespace, now).catch((error: unknown) => this.#failed(error)),
      this.#report(),
    ])
    this.#shared = shared
    this.#override = override
    // A flag lists the nodes the monitor flushed back in; without one, nobody vouches for a node.
    this.#nodes?.holdDown(new Set(shared?.down ?? []), shared === undefined ? 'probe' : 'flushed')
    this.#announce()
  }

  #tick(): void {
    this.refresh()
      .catch((error: unknown) => this.#failed(error))
      .finally(() => {
        if (this.#stopped) return
        this.#timer = setTimeout(() => this.#tick(), this.#refreshMs)
        this.#timer.unref()
      })
  }

  /** Adds what this process served since the last report to the farm-wide counters. */
  async #report(): Promise<void> {
    const hits = this.#counters.hits - this.#reported.hits
    const misses = this.#counters.misses - this.#reported.misses
    const sent = await Promise.allSettled([
      hits > 0 ? this.#store.increment(this.#farmKeys.hits, hits, BigInt(hits)) : undefined,
      misses > 0 ? this.#store.increment(this.#farmKeys.misses, misses, BigInt(misses)) : undefined,
    ])
    // A count that could not be sent is dropped, not resent: the ratio survives that.
    this.#reported = { hits: this.#reported.hits + hits, misses: this.#reported.misses + misses }
    for (const outcome of sent) {
      if (outcome.status === 'rejected') this.#failed(outcome.reason)
    }
  }

  #decide(): { mode: CacheMode; reason: string } {
    const override = this.#override
    if (override !== undefined && override.until > Date.now()) {
      return { mode: override.mode, reason: `operator override by ${override.setBy}` }
    }
    if (this.#shared?.mode === 'degraded') {
      return { mode: 'degraded', reason: `monitor: ${this.#shared.reason}` }
    }
    const nodes = this.#nodes
    if (nodes !== undefined && nodes.liveNodeCount < nodes.nodeCount) {
      const down = nodes.nodeStates().filter((node) => !node.up).map((node) => node.id)
      return { mode: 'degraded', reason: `this process has ${down.join(', ')} out of its ring` }
    }
    if (this.#shared === undefined && Date.now() < this.#settlingUntil) {
      // A node that rejoined was flushed: it is empty. Without a monitor to judge, wait a settle period.
      return { mode: 'degraded', reason: 'settling: every node is back in this process\'s ring' }
    }
    return { mode: 'normal', reason: this.#shared === undefined ? 'all nodes up' : `monitor: ${this.#shared.reason}` }
  }

  #announce(): void {
    const { mode, reason } = this.#decide()
    if (mode !== this.#last) {
      const change = { from: this.#last, to: mode, reason }
      this.#last = mode
      this.#counters.modeChanged()
      this.#onChange(change)
    }
  }

  #failed(error: unknown): undefined {
    this.#counters.failed()
    this.#onError(error)
    return undefined
  }
}
