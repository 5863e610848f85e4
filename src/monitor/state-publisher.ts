import { hostname } from 'node:os'
import { tierStateKey } from '../keys.js'
import type { Store } from '../store/store.js'
import { publish, readTierState } from '../tier/tier-state.js'
import type { ModeOverride, TierState } from '../tier/tier-state.js'
import { errorMessage, iso } from './log-text.js'
import { ratioOf, requestCount } from './recovery.js'
import type { AutoMode, TrafficHistory } from './recovery.js'

/** What a round decided: the input of {@link StatePublisher.publish}. */
export interface RoundDecision {
  readonly auto: AutoMode
  /** Set when the automatic mode changed this round: what to log. */
  readonly autoChange: string | undefined
  readonly override: ModeOverride | undefined
  /** The nodes listed down, in the configured order. */
  readonly down: readonly string[]
  readonly traffic: TrafficHistory
  readonly warmup: TierState['warmup']
}

/** Options of {@link StatePublisher}. */
export interface StatePublisherOptions {
  /** Every live node of it gets the state. */
  readonly store: Store
  readonly namespace: string
  /** How long a published state outlives a monitor that stopped. */
  readonly flagTtlSeconds: number
  readonly onState: ((state: TierState) => void) | undefined
  readonly log: (message: string) => void
}

/**
 * Publishes the tier state every process reads: a short-lived lease written to
 * every live node, so it stays readable whichever nodes are down. Logs the
 * mode transitions, and a publish failure once per outage.
 *
 * ```ts
 * const publisher = new StatePublisher({ store, namespace: 'shop', flagTtlSeconds: 3, onState: undefined, log })
 * await publisher.publish({ auto, autoChange, override, down: [], traffic, warmup: undefined }, Date.now())
 * publisher.state.mode // 'normal'
 * ```
 */
export class StatePublisher {
  /** Who publishes, as the state says: `monitor host:pid`. */
  readonly #setBy = `monitor ${hostname()}:${process.pid}`
  readonly #options: StatePublisherOptions
  #state: TierState
  #failing = false

  constructor(options: StatePublisherOptions) {
    this.#options = options
    const now = Date.now()
    this.#state = { version: 1, mode: 'normal', down: [], since: now, reason: 'starting', setBy: this.#setBy, at: now }
  }

  /** The state published last (before the first publish: the starting state). */
  get state(): TierState {
    return this.#state
  }

  /**
   * The state published before this monitor started (by a previous monitor),
   * or `undefined` when there is none or it cannot be read. Never rejects.
   *
   * ```ts
   * const previous = await publisher.readPublished()
   * ```
   */
  async readPublished(): Promise<TierState | undefined> {
    try {
      return await readTierState(this.#options.store, this.#options.namespace)
    } catch {
      return undefined
    }
  }

  /**
   * Carries on a previous monitor's degraded mode: the next publish keeps its `since`.
   *
   * ```ts
   * publisher.resume({ mode: 'degraded', since: previous.since, reason: previous.reason })
   * ```
   */
  resume(auto: AutoMode): void {
    this.#state = { ...this.#state, mode: auto.mode, since: auto.since, reason: auto.reason }
  }

  /**
   * Publishes the state `decision` makes (an override beats the automatic mode),
   * then hands it to `onState`. Never rejects: a failure is logged and the state
   * is still the current one.
   *
   * ```ts
   * await publisher.publish(decision, Date.now())
   * ```
   */
  async publish(decision: RoundDecision, now: number): Promise<void> {
    const state = this.#next(decision, now)
    this.#state = state
    const { store, namespace, flagTtlSeconds, onState, log } = this.#options
    try {
      await publish(store, tierStateKey(namespace), state, flagTtlSeconds)
      if (this.#failing) {
        this.#failing = false
        log('publishing the tier state again')
      }
    } catch (error) {
      if (!this.#failing) {
        this.#failing = true
        log(`cannot publish the tier state: ${errorMessage(error)}`)
      }
    }
    if (onState !== undefined) {
      try {
        onState(state)
      } catch (error) {
        log(`onState listener threw: ${errorMessage(error)}`)
      }
    }
  }

  /** The state `decision` makes, after the one published last; logs a change of the published mode. */
  #next(decision: RoundDecision, now: number): TierState {
    const { auto, autoChange, override, traffic } = decision
    const previous = this.#state
    const mode = override?.mode ?? auto.mode
    // `since` says when the published mode took effect: it moves only when that mode changes.
    const since = mode === previous.mode ? previous.since : now
    if (mode !== previous.mode) {
      const detail =
        override !== undefined
          ? `operator override until ${iso(override.until)}`
          : (autoChange ?? `operator override over; automatic mode: ${auto.reason}`)
      this.#options.log(`${mode} (${detail})`)
    } else if (autoChange !== undefined && override !== undefined) {
      this.#options.log(`automatic mode ${auto.mode} (${autoChange}); operator override keeps ${mode} until ${iso(override.until)}`)
    }
    return {
      version: 1,
      mode,
      down: decision.down,
      since,
      reason: override === undefined ? auto.reason : 'operator',
      setBy: this.#setBy,
      at: now,
      ...(requestCount(traffic.recent) > 0 ? { hitRatio: round3(ratioOf(traffic.recent, 1) ?? 0) } : {}),
      ...(override !== undefined ? { override } : {}),
      ...(decision.warmup !== undefined ? { warmup: decision.warmup } : {}),
    }
  }
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000
}
