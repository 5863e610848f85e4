/**
 * Which stores follow the farm's mode flag. A store object that delegates to a
 * MemoryStore stands in for a user's own store over a shared tier: nothing but
 * the `processLocal` flag tells the two apart, which is what is under test.
 */
import { describe, expect, it } from 'vitest'
import { createQueryCache } from '../../src/index.js'
import type { Store } from '../../src/store/store.js'
import { signStore } from '../../src/store/signed-store.js'
import { ValueSigner } from '../../src/store/value-signer.js'
import { MemoryStore } from '../../src/store/memory-store.js'
import { writeModeOverride } from '../../src/tier/tier-state.js'

/** Every Store method forwarded, `processLocal` not. */
function customStoreOver(memory: MemoryStore): Store {
  const inner: Store = memory
  return {
    get: (key) => inner.get(key),
    set: (key, value, ttl) => inner.set(key, value, ttl),
    add: (key, value, ttl) => inner.add(key, value, ttl),
    delete: (key) => inner.delete(key),
    increment: (key, amount, initial) => inner.increment(key, amount, initial),
    getReplicas: (key, count) => inner.getReplicas(key, count),
    setReplicas: (key, value, ttl, count) => inner.setReplicas(key, value, ttl, count),
    readHomes: (key, count) => inner.readHomes(key, count),
    writeHomes: (key, value, ttl, count) => inner.writeHomes(key, value, ttl, count),
    addHomes: (key, value, ttl, count) => inner.addHomes(key, value, ttl, count),
    maxValueBytes: inner.maxValueBytes,
    close: () => inner.close(),
  }
}

describe('the farm mode flag', () => {
  it('is followed through a custom store, which other processes may share', async () => {
    const inner = new MemoryStore()
    const shared = customStoreOver(inner)
    const cache = createQueryCache({ store: shared, namespace: 'custom' })
    // Another process of the farm: it frames what it writes as the cache does (a shared store's values are bound to their keys).
    const otherProcess = signStore(shared, new ValueSigner(), () => {})
    try {
      expect(await cache.refreshMode()).toBe('normal')
      // Written raw, past the framing: not something this farm wrote, so not followed.
      await writeModeOverride(inner, 'custom', 'degraded', 60_000, 'test')
      expect(await cache.refreshMode()).toBe('normal')
      await writeModeOverride(otherProcess, 'custom', 'degraded', 60_000, 'test')
      expect(await cache.refreshMode()).toBe('degraded')
    } finally {
      await cache.close()
    }
  })

  it('is not read from the embedded store, which no other process sees', async () => {
    const inner = new MemoryStore()
    const cache = createQueryCache({ store: inner, namespace: 'embedded' })
    try {
      await writeModeOverride(inner, 'embedded', 'degraded', 60_000, 'test')
      expect(await cache.refreshMode()).toBe('normal')
    } finally {
      await cache.close()
    }
  })
})
