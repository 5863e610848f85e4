import type { Store } from './store.js'

/** A node's health as this process sees it. */
export interface NodeState {
  /** `host:port`. */
  id: string
  /** On the ring (serving its keys). */
  up: boolean
  /** Failures since the last success; reset by any answer. */
  consecutiveFailures: number
  /** When it was taken off the ring (ms since the epoch), while down. */
  downSince?: number
}

/** A store made of nodes that this process can see and hold down (the memcached store). */
export interface NodeAwareStore extends Store {
  /** Nodes configured, up or down. */
  readonly nodeCount: number
  /** Nodes on the ring now. */
  readonly liveNodeCount: number
  /** Every node's health, in configuration order. */
  nodeStates(): NodeState[]
  /** The node (`host:port`) that serves `key` now. */
  nodeFor(key: string): string
  /**
   * Takes exactly `nodes` off the ring and keeps them off until a later call
   * leaves them out; a released node comes back as `released` says.
   */
  holdDown(nodes: ReadonlySet<string>, released: 'flushed' | 'probe'): void
}

/**
 * Whether `store` has nodes to watch: mode, farm statistics and probes apply
 * only to such a store; an embedded store has none.
 *
 * ```ts
 * const nodes = isNodeAware(store) ? store.nodeStates() : []
 * ```
 */
export function isNodeAware(store: Store): store is NodeAwareStore {
  const candidate = store as Partial<NodeAwareStore>
  return (
    typeof candidate.nodeStates === 'function' &&
    typeof candidate.nodeFor === 'function' &&
    typeof candidate.holdDown === 'function' &&
    typeof candidate.nodeCount === 'number' &&
    typeof candidate.liveNodeCount === 'number'
  )
}
