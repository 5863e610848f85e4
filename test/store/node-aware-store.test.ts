import { describe, expect, it } from 'vitest'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import { MemoryStore } from '../../src/store/memory-store.js'
import { isNodeAware } from '../../src/store/node-aware-store.js'
import type { Store } from '../../src/store/store.js'

describe('isNodeAware', () => {
  it('is true for the memcached store and false for stores without nodes', async () => {
    const memcached = new MemcachedStore({ servers: ['127.0.0.1:1', '127.0.0.1:2'] })
    const memory = new MemoryStore()
    try {
      expect(isNodeAware(memcached)).toBe(true)
      expect(isNodeAware(memory)).toBe(false)
      // A custom store that happens to have one of the methods is not node-aware.
      expect(isNodeAware(Object.assign(Object.create(memory) as Store, { holdDown: () => {} }))).toBe(false)
    } finally {
      await Promise.all([memcached.close(), memory.close()])
    }
  })
})
