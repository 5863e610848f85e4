import { afterEach, describe, expect, it, vi } from 'vitest'
import { MemoryStore } from '../../src/store/memory-store.js'
import type { MemoryStoreOptions } from '../../src/store/memory-store.js'
import { ValueTooLargeError } from '../../src/store/value-too-large-error.js'

afterEach(() => {
  vi.useRealTimers()
})

/** Freezes Date so TTLs can be stepped through without waiting. */
function useClock(): (ms: number) => void {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(new Date('2030-01-01T00:00:00Z'))
  return (ms) => vi.setSystemTime(Date.now() + ms)
}

describe('MemoryStore semantics', () => {
  it('keeps its own copy of values, like a network store would', async () => {
    const store = new MemoryStore()
    const value = Buffer.from('abc')
    await store.set('k', value, 0)
    value[0] = 0x7a
    const read = await store.get('k')
    read![1] = 0x7a
    expect((await store.get('k'))?.toString()).toBe('abc')
  })

  it('items expire after their TTL, expired items count as absent, and TTL 0 never expires', async () => {
    const advance = useClock()
    const store = new MemoryStore()
    await store.set('set', Buffer.from('a'), 2)
    expect(await store.add('add', Buffer.from('b'), 2)).toBe(true)
    await store.set('forever', Buffer.from('c'), 0)
    await store.set('deleted', Buffer.from('d'), 2)

    advance(1999)
    expect((await store.get('set'))?.toString()).toBe('a')
    expect(await store.add('add', Buffer.from('again'), 2)).toBe(false)

    advance(1)
    expect(await store.get('set')).toBeUndefined()
    expect(await store.add('add', Buffer.from('again'), 0)).toBe(true)
    expect(await store.delete('deleted')).toBe(false)

    advance(10 * 365 * 24 * 3600 * 1000)
    expect((await store.get('forever'))?.toString()).toBe('c')
    expect((await store.get('add'))?.toString()).toBe('again')
  })

  it('increment keeps the expiry of an existing counter and creates new ones without expiry', async () => {
    const advance = useClock()
    const store = new MemoryStore()
    await store.set('c', Buffer.from('5'), 2)
    expect(await store.increment('c', 1, 0n)).toBe('6')
    advance(2000)
    expect(await store.get('c')).toBeUndefined()
    expect(await store.increment('c', 1, 100n)).toBe('100')
    advance(10 * 365 * 24 * 3600 * 1000)
    expect(await store.increment('c', 1, 100n)).toBe('101')
  })

  it('a value above maxValueBytes throws ValueTooLargeError and stores nothing', async () => {
    const store = new MemoryStore({ maxValueBytes: 1000 })
    expect(store.maxValueBytes).toBe(1000)
    const set = store.set('k', Buffer.alloc(1001), 0)
    await expect(set).rejects.toBeInstanceOf(ValueTooLargeError)
    await expect(set).rejects.toMatchObject({ key: 'k', size: 1001, limit: 1000 })
    await expect(store.add('k', Buffer.alloc(1001), 0)).rejects.toBeInstanceOf(ValueTooLargeError)
    expect(await store.get('k')).toBeUndefined()
    await store.set('k', Buffer.alloc(1000), 0)
    expect((await store.get('k'))?.length).toBe(1000)
    expect(new MemoryStore().maxValueBytes).toBe(1024 * 1024)
  })
})

describe('MemoryStore bounds', () => {
  it('evicts the least recently used entry beyond maxEntries', async () => {
    const store = new MemoryStore({ maxEntries: 3 })
    for (const key of ['a', 'b', 'c']) {
      await store.set(key, Buffer.from(key), 0)
    }
    await store.get('a') // a is now the most recently used
    await store.set('d', Buffer.from('d'), 0)
    expect(await store.get('b')).toBeUndefined()
    for (const key of ['a', 'c', 'd']) {
      expect((await store.get(key))?.toString()).toBe(key)
    }
  })

  it('evicts the least recently used entries beyond maxBytes', async () => {
    // Each entry costs 1000 bytes + key + 64 of overhead: three fit in 4096, four do not.
    const store = new MemoryStore({ maxBytes: 4096 })
    for (const key of ['a', 'b', 'c']) {
      await store.set(key, Buffer.alloc(1000), 0)
    }
    await store.get('a')
    await store.set('d', Buffer.alloc(1000), 0)
    expect(await store.get('b')).toBeUndefined()
    for (const key of ['a', 'c', 'd']) {
      expect(await store.get(key)).toBeDefined()
    }
    await store.set('e', Buffer.alloc(3000), 0)
    const present = await Promise.all(['a', 'c', 'd', 'e'].map(async (key) => (await store.get(key)) !== undefined))
    expect(present).toEqual([false, false, false, true])
  })

  it('shrinks the default maxValueBytes so the largest value fits in maxBytes', () => {
    expect(new MemoryStore({ maxBytes: 2048 }).maxValueBytes).toBe(2048 - 250 - 64)
  })
})

describe('MemoryStore options', () => {
  const cases: Array<[string, unknown, ErrorConstructor, string]> = [
    ['maxEntries', { maxEntries: 0 }, RangeError, 'maxEntries must be an integer of at least 1, got 0'],
    ['maxEntries', { maxEntries: '10' }, RangeError, 'maxEntries must be an integer of at least 1, got "10"'],
    ['maxBytes', { maxBytes: 100 }, RangeError, 'maxBytes must be an integer of at least 1024, got 100'],
    ['maxValueBytes', { maxValueBytes: 1.5 }, RangeError, 'maxValueBytes must be an integer of at least 1, got 1.5'],
    [
      'maxValueBytes',
      { maxBytes: 2048, maxValueBytes: 2048 },
      RangeError,
      'maxValueBytes must leave room for the key and entry overhead within maxBytes (at most 1734), got 2048',
    ],
    ['an unknown option', { maxSize: 10 }, TypeError, 'unknown option "maxSize" for MemoryStore'],
    ['the options object', 'big', TypeError, 'MemoryStore options must be an object, got "big"'],
  ]
  it.each(cases)('name %s and quote the bad value', (_, options, Kind, message) => {
    expect(() => new MemoryStore(options as MemoryStoreOptions)).toThrow(Kind)
    expect(() => new MemoryStore(options as MemoryStoreOptions)).toThrow(message)
  })

  it('treat options given as undefined as defaults', () => {
    const store = new MemoryStore({ maxEntries: undefined, maxBytes: undefined, maxValueBytes: undefined })
    expect(store.maxValueBytes).toBe(1024 * 1024)
  })
})
