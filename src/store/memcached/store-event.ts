/** What `MemcachedStoreOptions.onEvent` receives. */
export type StoreEvent =
  | {
      /** The node left the ring: it refused a connection, or failed `failureThreshold` times in a row. */
      type: 'node-down'
      node: string
      reason: string
    }
  | {
      /**
       * A down node is back on the ring. `flushed`: this store flushed it after it
       * answered a probe; `false` when a `MemcachedStore.holdDown` was
       * released (whoever held it down flushed it).
       */
      type: 'node-up'
      node: string
      flushed: boolean
    }
  | {
      /** One operation (or probe) on the node failed. */
      type: 'error'
      node: string
      error: Error
    }
