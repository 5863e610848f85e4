import type { SaslCredentials } from '../../util/validate.js'
import { asError, Connection, NodeFailure } from './connection.js'
import { EMPTY, OPCODE, STATUS, statusText } from './protocol.js'
import type { NodeHealth, NodeRing } from './ring.js'
import type { StoreEvent } from './store-event.js'

/** What a {@link NodeSupervisor} is told. */
export interface NodeSupervisorConfig {
  readonly timeoutMs: number
  readonly failureThreshold: number
  readonly retryAfterMs: number
  /** SASL PLAIN credentials every connection authenticates with; `undefined`: none. */
  readonly sasl: SaslCredentials | undefined
  /** Node events (down, up, probe errors) for the store's listener. */
  readonly emit: (event: StoreEvent) => void
}

/**
 * The health of a store's nodes, as this process sees it: their connections,
 * when a failing node leaves the ring (at once when refused, after
 * `failureThreshold` failures in a row otherwise), the probes of a node that
 * is out, and its flush before it rejoins (so it cannot serve values older than
 * writes made while it was away).
 *
 * ```ts
 * const supervisor = new NodeSupervisor(ring, { timeoutMs: 250, failureThreshold: 3, retryAfterMs: 5000, sasl: undefined, emit })
 * const response = await supervisor.connectionFor(node).request(OPCODE.get, key, EMPTY, EMPTY)
 * ```
 */
export class NodeSupervisor {
  readonly #ring: NodeRing
  readonly #timeoutMs: number
  readonly #failureThreshold: number
  readonly #retryAfterMs: number
  readonly #sasl: SaslCredentials | undefined
  readonly #emit: (event: StoreEvent) => void
  #closed = false

  constructor(ring: NodeRing, config: NodeSupervisorConfig) {
    this.#ring = ring
    this.#timeoutMs = config.timeoutMs
    this.#failureThreshold = config.failureThreshold
    this.#retryAfterMs = config.retryAfterMs
    this.#sasl = config.sasl
    this.#emit = config.emit
  }

  /** Stops every probe and closes every connection. */
  close(): void {
    this.#closed = true
    for (const node of this.#ring.nodes) {
      clearTimeout(node.probeTimer)
      node.probeTimer = undefined
      node.connection?.destroy(new NodeFailure('reset', 'store closed'))
      node.connection = undefined
    }
  }

  /**
   * Keeps `nodes` off the ring because someone with a wider view (the tier
   * monitor's shared flag) says they are down, and stops probing them.
   *
   * A node that leaves the hold while off the ring either rejoins at once without
   * a flush (`released: 'flushed'`: the monitor flushed it when it came back, and
   * other processes may already be writing to it), or goes back to this store's
   * own probe-then-flush (`'probe'`: the monitor is gone, nobody vouches for it).
   */
  holdDown(nodes: ReadonlySet<string>, released: 'flushed' | 'probe'): void {
    for (const node of this.#ring.nodes) {
      const held = nodes.has(node.address.id)
      if (held === node.held) continue
      node.held = held
      if (held) {
        clearTimeout(node.probeTimer)
        node.probeTimer = undefined
        if (node.up) this.#markDown(node, new NodeFailure('reset', 'reported down by the tier monitor'))
      } else if (!node.up) {
        if (released === 'flushed') {
          clearTimeout(node.probeTimer)
          node.probeTimer = undefined
          this.#rejoin(node, false)
        } else {
          this.#scheduleProbe(node)
        }
      }
    }
  }

  /** The node's connection, opened on first use; its breaking counts as one failure of the node. */
  connectionFor(node: NodeHealth): Connection {
    if (node.connection === undefined) {
      const connection: Connection = new Connection(
        node.address,
        this.#timeoutMs,
        (failure) => this.#onBroken(node, connection, failure),
        this.#sasl,
      )
      node.connection = connection
    }
    return node.connection
  }

  /** Counts one failure per broken connection, not one per request that was on it. */
  #onBroken(node: NodeHealth, connection: Connection, failure: NodeFailure): void {
    if (node.connection === connection) {
      node.connection = undefined
    }
    if (this.#closed || !node.up) {
      return
    }
    node.consecutiveFailures++
    // Nothing listens on its port: the process is gone, no need to wait for more proof. A hang
    // (timeouts) may be a blip, so it takes `failureThreshold` in a row.
    if (failure.kind === 'refused' || node.consecutiveFailures >= this.#failureThreshold) {
      this.#markDown(node, failure)
    }
  }

  #markDown(node: NodeHealth, failure: NodeFailure): void {
    this.#ring.markDown(node)
    this.#emit({
      type: 'node-down',
      node: node.address.id,
      reason:
        node.held || failure.kind === 'refused'
          ? failure.message
          : `${node.consecutiveFailures} consecutive failures, last: ${failure.message}`,
    })
    if (!node.held) this.#scheduleProbe(node)
  }

  #scheduleProbe(node: NodeHealth): void {
    clearTimeout(node.probeTimer)
    node.probeTimer = setTimeout(() => {
      node.probeTimer = undefined
      this.#probe(node).catch(() => {
        // #probe handles its own failures; this only guards against a stray throw.
      })
    }, this.#retryAfterMs)
    node.probeTimer.unref()
  }

  async #probe(node: NodeHealth): Promise<void> {
    if (this.#closed || node.up || node.held) {
      return
    }
    const connection = this.connectionFor(node)
    try {
      const version = await connection.request(OPCODE.version, '', EMPTY, EMPTY)
      if (version.header.opcode !== OPCODE.version || version.header.status !== STATUS.ok) {
        const failure = new NodeFailure('garbled', 'garbled reply to version probe')
        connection.breakWith(failure)
        throw failure
      }
      const flush = await connection.request(OPCODE.flush, '', EMPTY, EMPTY)
      if (flush.header.opcode !== OPCODE.flush || flush.header.status !== STATUS.ok) {
        // Alive but not flushable: rejoining would serve stale values, so stay out.
        throw new Error(`flush_all refused: ${statusText(flush)}`)
      }
    } catch (error) {
      if (!this.#closed) {
        this.#emit({ type: 'error', node: node.address.id, error: asError(error) })
        this.#scheduleProbe(node)
      }
      return
    }
    if (this.#closed || node.up || node.held) {
      return
    }
    this.#rejoin(node, true)
  }

  #rejoin(node: NodeHealth, flushed: boolean): void {
    this.#ring.markUp(node)
    this.#emit({ type: 'node-up', node: node.address.id, flushed })
  }
}
