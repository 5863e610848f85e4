import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { StoreUnavailableError, type Store } from '../../src/store/store.js'
import { ValueTooLargeError } from '../../src/store/value-too-large-error.js'

/** What the contract needs to build a store; everything else is the store's default. */
export interface ContractStoreOptions {
  maxValueBytes?: number
}

let keySerial = 0

/** Keys unique across runs and workers: a network store outlives one test. */
function uniqueKey(label: string): string {
  return `contract-${process.pid}-${Date.now().toString(36)}-${++keySerial}-${label}`
}

/**
 * Registers the behaviour every {@link Store} promises, for the stores `create`
 * builds. A store on several nodes is given exactly one, so the per-home calls
 * have one home.
 *
 * ```ts
 * describe('MemoryStore', () => storeContract((options) => new MemoryStore(options)))
 * ```
 */
export function storeContract(create: (options: ContractStoreOptions) => Store, { framesValues = false } = {}): void {
  const open = new Set<Store>()
  const openStore = (options: ContractStoreOptions = {}): Store => {
    const store = create(options)
    open.add(store)
    return store
  }

  afterEach(async () => {
    await Promise.all([...open].map((store) => store.close()))
    open.clear()
  })

  describe('the Store contract', () => {
    it('get returns undefined for a missing key and the exact bytes after set', async () => {
      const store = openStore()
      const key = uniqueKey('get')
      const value = Buffer.from([0, 1, 2, 255, 13, 10, 0])
      expect(await store.get(key)).toBeUndefined()
      await store.set(key, value, 0)
      expect(await store.get(key)).toEqual(value)
      await store.set(key, Buffer.from('second'), 0)
      expect((await store.get(key))?.toString()).toBe('second')
    })

    it('add stores only when the key is absent and answers false otherwise', async () => {
      const store = openStore()
      const key = uniqueKey('add')
      expect(await store.add(key, Buffer.from('first'), 0)).toBe(true)
      expect(await store.add(key, Buffer.from('second'), 0)).toBe(false)
      expect((await store.get(key))?.toString()).toBe('first')
      const raced = await Promise.all(
        Array.from({ length: 10 }, (_, i) => store.add(`${key}-race`, Buffer.from(String(i)), 0)),
      )
      expect(raced.filter(Boolean)).toHaveLength(1)
    })

    it('delete reports whether the key existed', async () => {
      const store = openStore()
      const key = uniqueKey('delete')
      expect(await store.delete(key)).toBe(false)
      await store.set(key, Buffer.from('x'), 0)
      expect(await store.delete(key)).toBe(true)
      expect(await store.get(key)).toBeUndefined()
      expect(await store.delete(key)).toBe(false)
    })

    it('increment creates a missing counter holding initial, then adds the amount atomically', async () => {
      const store = openStore()
      const key = uniqueKey('incr')
      expect(await store.increment(key, 5, 10n)).toBe('10')
      expect(await store.increment(key, 5, 10n)).toBe('15')
      expect(await store.increment(key, 0, 10n)).toBe('15')
      const concurrent = await Promise.all(Array.from({ length: 20 }, () => store.increment(key, 1, 0n)))
      expect(new Set(concurrent).size).toBe(20)
      expect(await store.increment(key, 0, 0n)).toBe('35')
    })

    it('increment starts a counter at a clock-sized value without losing precision and wraps at 2^64', async () => {
      const store = openStore()
      const clock = BigInt(Date.now()) * 1000n
      const clockKey = uniqueKey('clock')
      expect(await store.increment(clockKey, 1, clock)).toBe(clock.toString())
      expect(await store.increment(clockKey, 1, clock)).toBe((clock + 1n).toString())
      // Above 2^32, where memjs's own increment breaks.
      const clockLikeKey = uniqueKey('clock-like')
      expect(await store.increment(clockLikeKey, 0, 1_800_000_000_000_000n)).toBe('1800000000000000')
      expect(await store.increment(clockLikeKey, 7, 1_800_000_000_000_000n)).toBe('1800000000000007')
      expect(await store.increment(clockLikeKey, 0, 0n)).toBe('1800000000000007')
      // Above 2^53, where a double would round.
      const bigKey = uniqueKey('big')
      expect(await store.increment(bigKey, 1, 18_000_000_000_000_000_003n)).toBe('18000000000000000003')
      expect(await store.increment(bigKey, 1, 0n)).toBe('18000000000000000004')
      const max = (1n << 64n) - 1n
      const wrapKey = uniqueKey('wrap')
      expect(await store.increment(wrapKey, 0, max)).toBe(max.toString())
      expect(await store.increment(wrapKey, 2, 0n)).toBe('1')
    })

    it.skipIf(framesValues)('increment counts a value set as decimal text and rejects a non-numeric one', async () => {
      const store = openStore()
      const [text, nan, huge] = ['text', 'nan', 'huge'].map(uniqueKey) as [string, string, string]
      await store.set(text, Buffer.from('41'), 0)
      expect(await store.increment(text, 1, 0n)).toBe('42')
      await store.set(nan, Buffer.from('not a number'), 0)
      await expect(store.increment(nan, 1, 0n)).rejects.toThrow(/not a decimal counter/)
      await store.set(huge, Buffer.from('18446744073709551616'), 0)
      await expect(store.increment(huge, 1, 0n)).rejects.toThrow(/not a decimal counter/)
      expect((await store.get(nan))?.toString()).toBe('not a number')
    })

    it.runIf(framesValues)('increment refuses a value set (framed under its key), which stays as it was', async () => {
      const store = openStore()
      const text = uniqueKey('framed')
      await store.set(text, Buffer.from('41'), 0)
      await expect(store.increment(text, 1, 0n)).rejects.toThrow(/not a decimal counter/)
      expect((await store.get(text))?.toString()).toBe('41')
    })

    it('items expire after their TTL, then count as absent, while TTL 0 and TTLs beyond 30 days stay', async () => {
      const store = openStore()
      const [setKey, addKey, forever, longKey] = ['ttl-set', 'ttl-add', 'ttl-0', 'ttl-long'].map(uniqueKey) as [
        string,
        string,
        string,
        string,
      ]
      await store.set(setKey, Buffer.from('a'), 2)
      expect(await store.add(addKey, Buffer.from('b'), 2)).toBe(true)
      await store.set(forever, Buffer.from('c'), 0)
      // Read as a Unix time, 40 days would be 1970: already expired.
      await store.set(longKey, Buffer.from('d'), 40 * 24 * 3600)
      expect((await store.get(setKey))?.toString()).toBe('a')
      expect(await store.add(addKey, Buffer.from('again'), 2)).toBe(false)

      await sleep(3100)
      expect(await store.get(setKey)).toBeUndefined()
      expect(await store.delete(setKey)).toBe(false)
      expect(await store.add(addKey, Buffer.from('again'), 0)).toBe(true)
      expect((await store.get(addKey))?.toString()).toBe('again')
      expect((await store.get(forever))?.toString()).toBe('c')
      expect((await store.get(longKey))?.toString()).toBe('d')
    }, 10_000)

    it('a value above maxValueBytes throws ValueTooLargeError and stores nothing', async () => {
      const store = openStore({ maxValueBytes: 1000 })
      expect(store.maxValueBytes).toBe(1000)
      const key = uniqueKey('too-large')
      const set = store.set(key, Buffer.alloc(1001), 0)
      await expect(set).rejects.toBeInstanceOf(ValueTooLargeError)
      await expect(set).rejects.toMatchObject({ key, size: 1001, limit: 1000 })
      await expect(store.add(key, Buffer.alloc(1001), 0)).rejects.toBeInstanceOf(ValueTooLargeError)
      expect(await store.get(key)).toBeUndefined()
      await store.set(key, Buffer.alloc(1000), 0)
      expect((await store.get(key))?.length).toBe(1000)
    })

    it('rejects keys memcached could not take with a TypeError', async () => {
      const store = openStore()
      for (const key of ['', 'has space', 'line\nbreak', 'tab\t', 'x'.repeat(251), 'é'.repeat(126), 42]) {
        await expect(store.get(key as string)).rejects.toThrow(TypeError)
        await expect(store.set(key as string, Buffer.from('v'), 0)).rejects.toThrow(/key must be 1 to 250 bytes/)
      }
      expect(await store.get('x'.repeat(250))).toBeUndefined()
    })

    it('rejects bad TTLs, amounts, initials and values with errors naming them', async () => {
      const store = openStore()
      const key = uniqueKey('bad')
      const value = Buffer.from('v')
      await expect(store.set(key, value, -1)).rejects.toThrow(
        new RangeError('ttlSeconds must be a non-negative integer number of seconds, got -1'),
      )
      await expect(store.add(key, value, 1.5)).rejects.toThrow(RangeError)
      await expect(store.set(key, value, '5' as unknown as number)).rejects.toThrow(TypeError)
      await expect(store.set(key, 'text' as unknown as Buffer, 0)).rejects.toThrow(/value must be a Buffer/)
      await expect(store.increment(key, -1, 0n)).rejects.toThrow(/amount must be a non-negative safe integer, got -1/)
      await expect(store.increment(key, 1, -1n)).rejects.toThrow(/initial must be a bigint from 0 to 2\^64-1, got -1n/)
      await expect(store.increment(key, 1, 1n << 64n)).rejects.toThrow(RangeError)
      await expect(store.increment(key, 1, 1 as unknown as bigint)).rejects.toThrow(TypeError)
      expect(await store.get(key)).toBeUndefined()
    })

    it('on one node, every home and replica of a key is that node', async () => {
      const store = openStore()
      const key = uniqueKey('homes')
      const writes = store.writeHomes(key, Buffer.from('home'), 0, 3)
      expect(writes).toHaveLength(1)
      await Promise.all(writes)
      expect((await store.get(key))?.toString()).toBe('home')

      const reads = store.readHomes(key, 3)
      expect(reads).toHaveLength(1)
      expect((await reads[0])?.toString()).toBe('home')
      expect(await Promise.all(store.addHomes(key, Buffer.from('other'), 0, 3))).toEqual([false])

      const fresh = uniqueKey('homes-add')
      expect(await Promise.all(store.addHomes(fresh, Buffer.from('added'), 0, 3))).toEqual([true])
      expect(await Promise.all(store.readHomes(fresh, 3))).toEqual([Buffer.from('added')])

      const replicated = uniqueKey('replicas')
      expect(await store.setReplicas(replicated, Buffer.from('copy'), 0, 3)).toEqual([true])
      expect(await store.getReplicas(replicated, 3)).toEqual([Buffer.from('copy')])
      expect(await store.getReplicas(uniqueKey('replicas-missing'), 3)).toEqual([undefined])
    })

    it('rejects every call after close with StoreUnavailableError, and closes twice quietly', async () => {
      const store = openStore()
      const key = uniqueKey('closed')
      await store.set(key, Buffer.from('x'), 0)
      await store.close()
      await expect(store.get(key)).rejects.toBeInstanceOf(StoreUnavailableError)
      await expect(store.set(key, Buffer.from('y'), 0)).rejects.toBeInstanceOf(StoreUnavailableError)
      await expect(store.increment(key, 1, 0n)).rejects.toBeInstanceOf(StoreUnavailableError)
      await expect(store.getReplicas(key, 1)).rejects.toBeInstanceOf(StoreUnavailableError)
      await store.close()
    })
  })
}
