import { readNodeStats } from '../store/memcached/node-probe.js'
import type { ServerAddress } from '../store/memcached/server-address.js'
import type { SaslCredentials } from '../util/validate.js'

/**
 * How long after a warmed node is listed up the monitor watches its flush
 * count and warms it again if someone flushed it. A process that had lost every
 * node reads no flag, so it probes the nodes back on its own and flushes each
 * once (within its `retryAfterMs`, 5 s by default), warmed or not.
 */
export const WARMUP_WATCH_MS = 60_000

/**
 * The node's `cmd_flush` (how often it was flushed since it started), or
 * `undefined` when it cannot be read. Authenticates first with `sasl`. Never rejects.
 *
 * ```ts
 * await readFlushCount(node, 250, undefined) // 3
 * ```
 */
export async function readFlushCount(address: ServerAddress, probeTimeoutMs: number, sasl: SaslCredentials | undefined): Promise<number | undefined> {
  try {
    const value = (await readNodeStats(address, Math.max(probeTimeoutMs, 250), sasl))['cmd_flush']
    return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined
  } catch {
    return undefined
  }
}

/** Options of {@link FlushWatch}. */
export interface FlushWatchOptions {
  readonly nodes: readonly ServerAddress[]
  readonly probeTimeoutMs: number
  /** SASL PLAIN credentials for the stats reads; `undefined`: none. */
  readonly sasl: SaslCredentials | undefined
  /** Whether the monitor lists `node` down: a down node is no longer watched. */
  readonly isDown: (node: string) => boolean
  /** A watched node was flushed since it was listed up (or since its last warm-up). */
  readonly onFlushed: (node: string) => void
}

/**
 * Watches the flush count of warmed nodes for {@link WARMUP_WATCH_MS} after
 * they are listed up, and reports the ones someone flushed meanwhile: what
 * their warm-up wrote is gone.
 *
 * ```ts
 * const flushWatch = new FlushWatch({ nodes, probeTimeoutMs: 250, sasl: undefined, isDown, onFlushed: (node) => rewarm(node) })
 * flushWatch.watch('10.0.0.2:11211', 3)
 * flushWatch.check(Date.now()) // every round
 * ```
 */
export class FlushWatch {
  readonly #options: FlushWatchOptions
  /** Per watched node: its flush count last seen, and until when it is watched. */
  readonly #watched = new Map<string, { flushes: number | undefined; until: number }>()
  #checking: Promise<void> | undefined

  constructor(options: FlushWatchOptions) {
    this.#options = options
  }

  /**
   * Watches `node`, just listed up with `flushes` as its flush count, from now on.
   *
   * ```ts
   * flushWatch.watch('10.0.0.2:11211', 3)
   * ```
   */
  watch(node: string, flushes: number | undefined): void {
    this.#watched.set(node, { flushes, until: Date.now() + WARMUP_WATCH_MS })
  }

  /**
   * Stops watching `node` (lost again).
   *
   * ```ts
   * flushWatch.forget('10.0.0.2:11211')
   * ```
   */
  forget(node: string): void {
    this.#watched.delete(node)
  }

  /**
   * Takes `flushes` as the count of a watched `node` (read when its new warm-up
   * ended), so the flush that warm-up answered is not reported again.
   *
   * ```ts
   * flushWatch.recordCount('10.0.0.2:11211', 4)
   * ```
   */
  recordCount(node: string, flushes: number | undefined): void {
    const watched = this.#watched.get(node)
    if (watched !== undefined && flushes !== undefined) watched.flushes = flushes
  }

  /**
   * Every round: reads the flush count of the nodes still watched at `now`, in
   * the background (never two reads at once), and reports the flushed ones.
   *
   * ```ts
   * flushWatch.check(Date.now())
   * ```
   */
  check(now: number): void {
    if (this.#checking !== undefined) return
    for (const [node, watched] of this.#watched) {
      if (watched.until <= now || this.#options.isDown(node)) this.#watched.delete(node)
    }
    if (this.#watched.size === 0) return
    this.#checking = Promise.all([...this.#watched.entries()].map(([node, watched]) => this.#checkNode(node, watched)))
      .then(() => undefined)
      .finally(() => {
        this.#checking = undefined
      })
  }

  /**
   * Resolves once no check is running.
   *
   * ```ts
   * await flushWatch.idle()
   * ```
   */
  async idle(): Promise<void> {
    await this.#checking
  }

  async #checkNode(node: string, watched: { flushes: number | undefined }): Promise<void> {
    const address = this.#options.nodes.find((candidate) => candidate.id === node)!
    const flushes = await readFlushCount(address, this.#options.probeTimeoutMs, this.#options.sasl)
    if (flushes === undefined || flushes === watched.flushes) return
    const known = watched.flushes
    watched.flushes = flushes
    // Listed up without a known count: this is the first one seen, not a flush.
    if (known === undefined) return
    this.#options.onFlushed(node)
  }
}
