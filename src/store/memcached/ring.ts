import HashRing from 'hashring'
import { describe } from '../../util/validate.js'
import { StoreUnavailableError } from '../store.js'
import type { Connection } from './connection.js'
import type { ServerAddress } from './server-address.js'

/** Mutable per-node bookkeeping behind the store's `nodeStates()`. */
export class NodeHealth {
  up = true
  /** Kept down by the store's `holdDown`: not probed, not put back by the store. */
  held = false
  consecutiveFailures = 0
  downSince: number | undefined
  connection: Connection | undefined
  probeTimer: NodeJS.Timeout | undefined
  constructor(readonly address: ServerAddress) {}
}

/**
 * The ketama ring of every node and their health: which node serves a key now,
 * a key's homes, its live replicas.
 */
export class NodeRing {
  readonly #nodes = new Map<string, NodeHealth>()
  readonly #ring: HashRing
  #liveCount: number

  constructor(addresses: readonly ServerAddress[]) {
    for (const address of addresses) {
      this.#nodes.set(address.id, new NodeHealth(address))
    }
    this.#liveCount = addresses.length
    // The ring always holds every node; down nodes are skipped at lookup. Rebuilding
    // a smaller ring would not do: hashring gives each node floor((1 / n) * 40 * n)
    // vnodes in floating point, 39 instead of 40 for n = 7, so going from 8 nodes to
    // 7 would also move keys between healthy nodes.
    this.#ring = new HashRing(addresses.map((address) => address.id))
  }

  /** How many nodes the ring was given. */
  get size(): number {
    return this.#nodes.size
  }

  /** How many nodes are up. */
  get liveCount(): number {
    return this.#liveCount
  }

  /** Every node, in the order given. */
  get nodes(): Iterable<NodeHealth> {
    return this.#nodes.values()
  }

  /** The node serving `key` now: its own, or (`away`) the next live one clockwise while its own is down. */
  route(key: string): { node: NodeHealth; away: boolean } {
    if (this.#liveCount === 0) {
      throw this.#allDown()
    }
    const home = this.#nodes.get(this.#ring.get(key))
    if (home?.up) {
      return { node: home, away: false }
    }
    // range() walks the full ring clockwise from the key: the first live node is
    // exactly the owner on the ring without the down nodes.
    for (const id of this.#ring.range(key)) {
      const node = this.#nodes.get(id)
      if (node?.up) {
        return { node, away: true }
      }
    }
    throw this.#allDown()
  }

  /** The first `count` nodes of the full ring from `key`, whatever their health: the same in every process. */
  homes(key: string, count: number): NodeHealth[] {
    assertCount(count)
    return this.#ring.range(key, Math.min(count, this.#nodes.size)).map((id) => this.#nodes.get(id)!)
  }

  /** The first `count` live nodes clockwise from `key`; the first is the one {@link route} gives. */
  replicas(key: string, count: number): NodeHealth[] {
    assertCount(count)
    const replicas: NodeHealth[] = []
    for (const id of this.#ring.range(key)) {
      const node = this.#nodes.get(id)
      if (node?.up) replicas.push(node)
      if (replicas.length === count) break
    }
    if (replicas.length === 0) {
      throw this.#allDown()
    }
    return replicas
  }

  /** Takes `node` off the ring (its keys move to the next live node). */
  markDown(node: NodeHealth): void {
    node.up = false
    node.downSince = Date.now()
    this.#liveCount--
  }

  /** Puts `node` back on the ring with a clean record. */
  markUp(node: NodeHealth): void {
    node.up = true
    node.consecutiveFailures = 0
    node.downSince = undefined
    this.#liveCount++
  }

  #allDown(): StoreUnavailableError {
    return new StoreUnavailableError(`all ${this.#nodes.size} memcached nodes are down`)
  }
}

function assertCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new RangeError(`replica count must be a positive integer, got ${describe(count)}`)
  }
}
