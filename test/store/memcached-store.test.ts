import HashRing from 'hashring'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import { ValueTooLargeError } from '../../src/store/value-too-large-error.js'
import type { MemcachedStoreOptions } from '../../src/store/memcached/memcached-store.js'
import type { StoreEvent } from '../../src/store/memcached/store-event.js'
import { StoreUnavailableError } from '../../src/store/store.js'
import { startMemcached } from '../harness/memcached.js'
import type { MemcachedCluster, MemcachedNode } from '../harness/memcached.js'
import { waitFor } from '../harness/wait.js'

const openStores = new Set<MemcachedStore>()
let keySerial = 0

/** A store closed after each test, with every event recorded. */
function openStore(options: MemcachedStoreOptions): { store: MemcachedStore; events: StoreEvent[] } {
  const events: StoreEvent[] = []
  const store = new MemcachedStore({ ...options, onEvent: (event) => events.push(event) })
  openStores.add(store)
  return { store, events }
}

afterEach(async () => {
  await Promise.all([...openStores].map((store) => store.close()))
  openStores.clear()
})

function uniqueKey(label: string): string {
  return `t${process.pid}-${Date.now().toString(36)}-${++keySerial}-${label}`
}

/** A fresh key whose home (all nodes up) is `node`. */
function keyOwnedBy(store: MemcachedStore, node: MemcachedNode, label = 'k'): string {
  for (let i = 0; i < 10_000; i++) {
    const key = uniqueKey(`${label}${i}`)
    if (store.nodeFor(key) === node.address) {
      return key
    }
  }
  throw new Error(`no key maps to ${node.address}`)
}

async function timed<T>(promise: Promise<T>): Promise<{ ms: number; result?: T; error?: unknown }> {
  const started = performance.now()
  try {
    const result = await promise
    return { ms: performance.now() - started, result }
  } catch (error) {
    return { ms: performance.now() - started, error }
  }
}

function countResources(kind: string): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === kind).length
}

describe('MemcachedStore on healthy nodes', () => {
  let cluster: MemcachedCluster

  beforeAll(async () => {
    cluster = await startMemcached(2)
  })

  afterAll(async () => {
    await cluster?.stopAll()
  })

  it('increment of a non-numeric value rejects without counting as a node failure', async () => {
    const { store } = openStore({ servers: cluster.servers })
    const key = uniqueKey('nan')
    await store.set(key, Buffer.from('not a number'), 0)
    await expect(store.increment(key, 1, 0n)).rejects.toThrow(/not a decimal counter/)
    expect(store.nodeStates().every((state) => state.up && state.consecutiveFailures === 0)).toBe(true)
  })

  it('sends TTLs up to 30 days as they are, 0 as no expiry, and longer ones as an absolute time', async () => {
    const { store } = openStore({ servers: cluster.servers })
    const [short, forever, long] = ['ttl-short', 'ttl-0', 'ttl-long'].map(uniqueKey) as [string, string, string]
    const fortyDays = 40 * 24 * 3600
    await store.set(short, Buffer.from('a'), 2)
    await store.set(forever, Buffer.from('c'), 0)
    await store.set(long, Buffer.from('d'), fortyDays)
    const owner = (key: string): MemcachedNode => cluster.nodes.find((node) => node.address === store.nodeFor(key))!
    expect(await owner(short).ttl(short)).toBeLessThanOrEqual(2)
    expect(await owner(forever).ttl(forever)).toBe(-1)
    // Sent as an absolute Unix time; memcached reports the remaining seconds.
    expect(await owner(long).ttl(long)).toBeGreaterThan(fortyDays - 10)
  })

  it('a value above maxValueBytes throws ValueTooLargeError and sends nothing', async () => {
    const { store } = openStore({ servers: cluster.servers, maxValueBytes: 1000 })
    const key = uniqueKey('big')
    const owner = cluster.nodes.find((node) => node.address === store.nodeFor(key))!
    const setsBefore = Number((await owner.stats())['cmd_set'])

    const set = store.set(key, Buffer.alloc(1001), 0)
    await expect(set).rejects.toBeInstanceOf(ValueTooLargeError)
    await expect(set).rejects.toMatchObject({ key, size: 1001, limit: 1000 })
    await expect(store.add(key, Buffer.alloc(1001), 0)).rejects.toBeInstanceOf(ValueTooLargeError)

    expect(Number((await owner.stats())['cmd_set'])).toBe(setsBefore)
    expect(await store.get(key)).toBeUndefined()
    await store.set(key, Buffer.alloc(1000), 0)
    expect((await store.get(key))?.length).toBe(1000)
  })

  it("memcached's own too-large reply becomes ValueTooLargeError, not a node failure", async () => {
    const { store, events } = openStore({ servers: cluster.servers, maxValueBytes: 4 * 1024 * 1024 })
    const key = uniqueKey('huge')
    await expect(store.set(key, Buffer.alloc(2 * 1024 * 1024), 0)).rejects.toMatchObject({
      name: 'ValueTooLargeError',
      limit: undefined,
    })
    await expect(store.add(key, Buffer.alloc(2 * 1024 * 1024), 0)).rejects.toBeInstanceOf(ValueTooLargeError)
    expect(store.nodeStates().every((state) => state.up && state.consecutiveFailures === 0)).toBe(true)
    expect(events).toEqual([])
    // The connection is still in step after memcached swallowed the body.
    await store.set(key, Buffer.from('small'), 0)
    expect((await store.get(key))?.toString()).toBe('small')
  })

  it('rejects keys memcached cannot take with a TypeError, before sending', async () => {
    const { store, events } = openStore({ servers: cluster.servers })
    for (const key of ['', 'has space', 'line\nbreak', 'tab\t', 'x'.repeat(251), 'é'.repeat(126), 42]) {
      await expect(store.get(key as string)).rejects.toThrow(TypeError)
      await expect(store.set(key as string, Buffer.from('v'), 0)).rejects.toThrow(/key must be 1 to 250 bytes/)
    }
    expect(() => store.nodeFor('has space')).toThrow(TypeError)
    expect(await store.get('x'.repeat(250))).toBeUndefined()
    expect(events).toEqual([])
  })
})

describe('MemcachedStore options', () => {
  const servers = ['127.0.0.1:11211']
  const cases: Array<[string, unknown, ErrorConstructor, string]> = [
    ['timeoutMs', { servers, timeoutMs: -1 }, RangeError, 'timeoutMs must be a positive number of milliseconds, at most 2147483647, got -1'],
    ['timeoutMs', { servers, timeoutMs: Infinity }, RangeError, 'timeoutMs must be a positive number of milliseconds, at most 2147483647, got Infinity'],
    ['timeoutMs', { servers, timeoutMs: '250' }, RangeError, 'timeoutMs must be a positive number of milliseconds, at most 2147483647, got "250"'],
    ['failureThreshold', { servers, failureThreshold: 0 }, RangeError, 'failureThreshold must be a positive integer, got 0'],
    ['retryAfterMs', { servers, retryAfterMs: NaN }, RangeError, 'retryAfterMs must be a positive number of milliseconds, at most 2147483647, got NaN'],
    ['fallbackTtlSeconds', { servers, fallbackTtlSeconds: 0 }, RangeError, 'fallbackTtlSeconds must be a whole number of seconds from 1 to 2592000, got 0'],
    ['maxValueBytes', { servers, maxValueBytes: 1.5 }, RangeError, 'maxValueBytes must be an integer from 1 to 1073741824, got 1.5'],
    ['onEvent', { servers, onEvent: 'log' }, TypeError, 'onEvent must be a function, got "log"'],
    ['an unknown option', { servers, timeout: 100 }, TypeError, 'unknown option "timeout" for MemcachedStore'],
    ['servers', { servers: '127.0.0.1:11211' }, TypeError, 'servers must be an array of "host:port" strings, got "127.0.0.1:11211"'],
    ['servers', { servers: [] }, RangeError, 'servers must list at least one "host:port", got []'],
    ['servers', { servers: ['127.0.0.1:11211', 'localhost'] }, TypeError, 'servers[1] must be "host:port", got "localhost"'],
    ['servers', { servers: ['127.0.0.1:99999'] }, RangeError, 'servers[0] port must be an integer from 1 to 65535, got "127.0.0.1:99999"'],
    ['servers', { servers: ['a:1', 'A:1'] }, TypeError, 'servers[1] repeats servers[0]'],
    ['the options object', null, TypeError, 'MemcachedStore options must be an object, got null'],
  ]
  it.each(cases)('name %s and quote the bad value', (_, options, Kind, message) => {
    expect(() => new MemcachedStore(options as MemcachedStoreOptions)).toThrow(Kind)
    expect(() => new MemcachedStore(options as MemcachedStoreOptions)).toThrow(message)
  })

  it('accept IPv6 servers written in brackets', () => {
    const store = new MemcachedStore({ servers: ['[::1]:11211', '127.0.0.1:11211'] })
    expect(store.nodeStates().map((state) => state.id)).toEqual(['[::1]:11211', '127.0.0.1:11211'])
    expect(store.liveNodeCount).toBe(2)
    void store.close()
  })
})

describe('the memcached test harness', () => {
  it('explains how to install memcached when the binary is not on PATH', async () => {
    const { PATH, MEMCACHED_BIN } = process.env
    process.env['PATH'] = '/nonexistent'
    delete process.env['MEMCACHED_BIN']
    try {
      await expect(startMemcached(1)).rejects.toThrow(
        'memcached binary not found on PATH; install it (Debian/Ubuntu: apt-get install memcached, macOS: brew install memcached)',
      )
    } finally {
      process.env['PATH'] = PATH
      if (MEMCACHED_BIN !== undefined) {
        process.env['MEMCACHED_BIN'] = MEMCACHED_BIN
      }
    }
  })
})

describe('MemcachedStore consistent hashing', () => {
  it('removing one of four nodes from the ketama ring remaps under 35% of 10 000 keys, all from that node', () => {
    const ids = ['10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11211', '10.0.0.4:11211']
    const full = new HashRing(ids)
    const reduced = new HashRing(ids.slice(0, 3))
    let moved = 0
    for (let i = 0; i < 10_000; i++) {
      const key = `key-${i}`
      const before = full.get(key)
      const after = reduced.get(key)
      if (before !== after) {
        moved++
        expect(before).toBe(ids[3])
      }
    }
    expect(moved / 10_000).toBeLessThan(0.35)
    expect(moved / 10_000).toBeGreaterThan(0.15)
  })

  it('after kill -9 of one of four nodes only its keys move and every other key still hits', async () => {
    const cluster = await startMemcached(4)
    try {
      const { store, events } = openStore({ servers: cluster.servers, retryAfterMs: 60_000 })
      const victim = cluster.nodes[3]!
      const sample = Array.from({ length: 10_000 }, (_, i) => `ring-${i}`)
      const ownersBefore = sample.map((key) => store.nodeFor(key))

      const written = sample.slice(0, 2000)
      for (let i = 0; i < written.length; i += 200) {
        await Promise.all(written.slice(i, i + 200).map((key) => store.set(key, Buffer.from(`v:${key}`), 0)))
      }

      await victim.kill()
      const victimKey = written.find((_, i) => ownersBefore[i] === victim.address)!
      // The open connection may first fail with a reset (one failure); the next connection is
      // refused: out at once, and that read goes on to the node that now owns the key (no copy there).
      const first = await store.get(victimKey).catch((error: unknown) => error)
      if (first !== undefined) {
        expect(first).toBeInstanceOf(StoreUnavailableError)
        expect(await store.get(victimKey)).toBeUndefined()
      }
      expect(store.nodeStates().find((state) => state.id === victim.address)).toMatchObject({ up: false })
      expect(events.filter((event) => event.type === 'node-down')).toMatchObject([{ node: victim.address, reason: expect.stringMatching(/ECONNREFUSED/) }])

      let moved = 0
      sample.forEach((key, i) => {
        const after = store.nodeFor(key)
        if (after !== ownersBefore[i]) {
          moved++
          expect(ownersBefore[i]).toBe(victim.address)
        }
        expect(after).not.toBe(victim.address)
      })
      expect(moved / sample.length).toBeLessThan(0.35)

      const survivors = cluster.nodes.slice(0, 3)
      const hitsBefore = await Promise.all(survivors.map(async (node) => Number((await node.stats())['get_hits'])))
      const values = await Promise.all(written.map((key) => store.get(key)))
      let expectedHits = 0
      written.forEach((key, i) => {
        if (ownersBefore[i] === victim.address) {
          expect(values[i]).toBeUndefined()
        } else {
          expectedHits++
          expect(values[i]?.toString()).toBe(`v:${key}`)
        }
      })
      const hitsAfter = await Promise.all(survivors.map(async (node) => Number((await node.stats())['get_hits'])))
      const hits = hitsAfter.reduce((sum, value, i) => sum + value - hitsBefore[i]!, 0)
      expect(hits).toBe(expectedHits)
      expect(expectedHits).toBeGreaterThan(1000)
    } finally {
      await cluster.stopAll()
    }
  }, 15_000)
})

describe('MemcachedStore when nodes fail', () => {
  let cluster: MemcachedCluster

  beforeAll(async () => {
    cluster = await startMemcached(3)
  })

  afterEach(async () => {
    // Bring every node back for the next test, empty.
    await Promise.all(
      cluster.nodes.map(async (node) => {
        if (node.running) {
          await node.resume()
          await node.flush()
        } else {
          await node.restart()
        }
      }),
    )
  })

  afterAll(async () => {
    await cluster?.stopAll()
  })

  it('keeps replicated keys on the first live nodes clockwise, uncapped, and serves them after the first copy dies', async () => {
    const { store } = openStore({ servers: cluster.servers, failureThreshold: 1, retryAfterMs: 60_000, fallbackTtlSeconds: 2 })
    const first = cluster.nodes[0]!
    const key = keyOwnedBy(store, first)
    expect(await store.setReplicas(key, Buffer.from('g1'), 0, 2)).toEqual([true, true])
    const holders = await Promise.all(cluster.nodes.map(async (node) => (await node.ttl(key)) !== undefined))
    expect(holders.filter(Boolean)).toHaveLength(2)
    expect(holders[0]).toBe(true)

    const copies = await store.getReplicas(key, 3)
    expect(copies.map((copy) => copy?.toString())).toEqual(['g1', 'g1', undefined])

    await first.kill()
    // The read that finds the first copy dead goes on to the next replica: same copy, no stand-in TTL cap.
    expect((await store.get(key))?.toString()).toBe('g1')
    expect(store.nodeStates()[0]).toMatchObject({ up: false })
    expect(await store.setReplicas(key, Buffer.from('g3'), 0, 2)).toEqual([true, true])
    await sleep(3100)
    expect((await store.get(key))?.toString()).toBe('g3')
    const [survivor] = await store.getReplicas(key, 1)
    expect(survivor?.toString()).toBe('g3')
  })

  it('names the same homes for a key in every process, whatever each has off its ring', async () => {
    const { store: healthy } = openStore({ servers: cluster.servers })
    const { store: partial } = openStore({ servers: cluster.servers })
    const first = cluster.nodes[0]!
    const key = keyOwnedBy(healthy, first)
    partial.holdDown(new Set([first.address]), 'probe')
    await Promise.all(partial.writeHomes(key, Buffer.from('h1'), 0, 3))
    // Off the writer's ring, the first home got the write all the same, as did the others.
    for (const node of cluster.nodes) expect(await node.command(`get ${key}\r\n`, /END\r\n$/)).toContain('h1')
    // The two homes read first agree: the third is not asked.
    const read = await Promise.allSettled(healthy.readHomes(key, 3))
    expect(read.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value?.toString() : 'failed')).sort()).toEqual(['failed', 'h1', 'h1'])
    // A home this process has taken out fails at once, without a round trip.
    const started = performance.now()
    const [off, ...rest] = await Promise.allSettled(partial.readHomes(key, 3))
    expect(off!.status).toBe('rejected')
    expect(performance.now() - started).toBeLessThan(200)
    expect(rest.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled'])
  })

  it('sends replicated writes also to nodes it has off its ring, for processes that already read from them', async () => {
    const { store: sooner } = openStore({ servers: cluster.servers })
    const { store: later } = openStore({ servers: cluster.servers })
    const first = cluster.nodes[0]!
    const key = keyOwnedBy(sooner, first)
    await sooner.setReplicas(key, Buffer.from('old'), 0, 3)
    // `later` has not re-admitted the node yet; `sooner` reads the key from it.
    later.holdDown(new Set([first.address]), 'flushed')
    const outcomes = await later.setReplicas(key, Buffer.from('new'), 0, 3)
    expect(outcomes).toEqual([true, true])
    await sleep(50)
    expect((await sooner.get(key))?.toString()).toBe('new')
  })

  it('does not reroute a hung node before the threshold of timeouts, and one success resets its count', async () => {
    const { store } = openStore({ servers: cluster.servers, failureThreshold: 3, retryAfterMs: 60_000, timeoutMs: 100 })
    const node = cluster.nodes[0]!
    const key = keyOwnedBy(store, node)
    await store.set(key, Buffer.from('x'), 0)
    await node.pause()
    for (const expected of [1, 2]) {
      await expect(store.get(key)).rejects.toMatchObject({ name: 'StoreUnavailableError', node: node.address })
      expect(store.nodeStates()[0]).toMatchObject({ up: true, consecutiveFailures: expected })
      expect(store.nodeFor(key)).toBe(node.address)
    }
    await node.resume()
    expect((await store.get(key))?.toString()).toBe('x')
    expect(store.nodeStates()[0]).toEqual({ id: node.address, up: true, consecutiveFailures: 0 })
  })

  it('a refused node leaves the ring at the first refusal, and its keys go to a fallback node with TTLs capped at fallbackTtlSeconds', async () => {
    const { store, events } = openStore({
      servers: cluster.servers,
      failureThreshold: 3,
      retryAfterMs: 60_000,
      fallbackTtlSeconds: 1,
    })
    const home = cluster.nodes[0]!
    const [setKey, longKey, addKey, counterKey] = ['set', 'long', 'add', 'ctr'].map((label) =>
      keyOwnedBy(store, home, label),
    ) as [string, string, string, string]
    const otherKey = keyOwnedBy(store, cluster.nodes[1]!, 'other')
    await home.kill()

    // A write is not retried elsewhere (the caller decides); it fails fast, and the node is out.
    const { ms, error } = await timed(store.set(setKey, Buffer.from('x'), 0))
    expect(error).toBeInstanceOf(StoreUnavailableError)
    expect(ms).toBeLessThan(100)
    const down = events.find((event) => event.type === 'node-down')
    expect(down).toMatchObject({ node: home.address, reason: expect.stringMatching(/ECONNREFUSED/) })
    expect(events.filter((event) => event.type === 'error')).toHaveLength(1)
    expect(store.liveNodeCount).toBe(2)
    expect(store.nodeStates()[0]).toMatchObject({ up: false, downSince: expect.any(Number) })

    const fallback = cluster.nodes.find((node) => node.address === store.nodeFor(setKey))!
    expect(fallback.address).not.toBe(home.address)
    await store.set(setKey, Buffer.from('during'), 0)
    await store.set(longKey, Buffer.from('during'), 3600)
    expect(await store.add(addKey, Buffer.from('during'), 0)).toBe(true)
    expect(await store.increment(counterKey, 1, 100n)).toBe('100')
    await store.set(otherKey, Buffer.from('home'), 0)

    for (const key of [setKey, longKey, addKey, counterKey]) {
      const owner = cluster.nodes.find((node) => node.address === store.nodeFor(key))!
      const ttl = await owner.ttl(key)
      expect(ttl).toBeGreaterThanOrEqual(0)
      expect(ttl).toBeLessThanOrEqual(1)
    }
    // A key at home keeps the TTL it asked for.
    expect(await cluster.nodes[1]!.ttl(otherKey)).toBe(-1)

    expect((await store.get(setKey))?.toString()).toBe('during')
    await sleep(2100)
    expect(await store.get(setKey)).toBeUndefined()
    expect(await store.get(counterKey)).toBeUndefined()
    expect((await store.get(otherKey))?.toString()).toBe('home')
  }, 10_000)

  it('a SIGSTOPped node makes every call return within timeoutMs, goes down, and is flushed before it rejoins', async () => {
    const timeoutMs = 250
    const { store, events } = openStore({
      servers: cluster.servers,
      timeoutMs,
      failureThreshold: 3,
      retryAfterMs: 300,
    })
    const node = cluster.nodes[1]!
    const key = keyOwnedBy(store, node, 'paused')
    const neighbourKey = keyOwnedBy(store, cluster.nodes[2]!, 'healthy')
    await store.set(key, Buffer.from('before'), 0)
    expect(await node.ttl(key)).toBe(-1)

    await node.pause()
    const calls: Array<() => Promise<unknown>> = [
      () => store.get(key),
      () => store.set(key, Buffer.from('x'), 0),
      () => store.increment(key, 1, 0n),
    ]
    for (const call of calls) {
      const { ms, error } = await timed(call())
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect(ms).toBeLessThan(timeoutMs + 150)
      // Other nodes are unaffected meanwhile.
      const healthy = await timed(store.get(neighbourKey))
      expect(healthy.error).toBeUndefined()
      expect(healthy.ms).toBeLessThan(100)
    }
    expect(events.find((event) => event.type === 'node-down')).toMatchObject({ node: node.address })
    expect(store.nodeFor(key)).not.toBe(node.address)
    const fallbackRead = await timed(store.get(key))
    expect(fallbackRead).toMatchObject({ result: undefined })
    expect(fallbackRead.ms).toBeLessThan(100)

    // Probes keep timing out while it is paused; the node stays down.
    await sleep(700)
    expect(store.nodeStates()[1]!.up).toBe(false)

    await node.resume()
    await waitFor('node-up', 3000, () => events.some((event) => event.type === 'node-up') || undefined)
    expect(events.find((event) => event.type === 'node-up')).toEqual({ type: 'node-up', node: node.address, flushed: true })
    expect(store.nodeFor(key)).toBe(node.address)
    expect(await store.get(key)).toBeUndefined()
    expect(await node.ttl(key)).toBeUndefined()
    expect(Number((await node.stats())['cmd_flush'])).toBeGreaterThanOrEqual(1)
    expect(store.nodeStates()[1]).toEqual({ id: node.address, up: true, consecutiveFailures: 0 })
  }, 10_000)

  it('a killed node that restarts is probed after retryAfterMs, flushed and put back on the ring', async () => {
    const { store, events } = openStore({ servers: cluster.servers, failureThreshold: 2, retryAfterMs: 1000 })
    const node = cluster.nodes[2]!
    const key = keyOwnedBy(store, node, 'restart')
    await node.kill()
    expect(await store.get(key)).toBeUndefined()
    expect(store.nodeStates()[2]).toMatchObject({ up: false })
    const downAt = Date.now()
    await node.restart()
    // Written behind the store's back before the probe: a flush must remove it.
    expect(await node.command(`set ${key} 0 0 5\r\nstale\r\n`, /\r\n$/)).toBe('STORED\r\n')
    expect(Date.now() - downAt).toBeLessThan(900)

    await waitFor('node-up', 3000, () => events.some((event) => event.type === 'node-up') || undefined)
    expect(Date.now() - downAt).toBeGreaterThanOrEqual(950)
    expect(store.nodeFor(key)).toBe(node.address)
    expect(await store.get(key)).toBeUndefined()
    expect(store.liveNodeCount).toBe(3)
  }, 10_000)

  it('when every node is down each call rejects at once with StoreUnavailableError and nothing goes unhandled', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason)
    }
    process.on('unhandledRejection', onUnhandled)
    try {
      const { store } = openStore({ servers: cluster.servers, failureThreshold: 1, retryAfterMs: 200 })
      const keys = cluster.nodes.map((node) => keyOwnedBy(store, node, 'all'))
      await Promise.all(cluster.nodes.map((node) => node.kill()))
      for (const key of keys) {
        await store.get(key).catch(() => undefined)
      }
      expect(store.liveNodeCount).toBe(0)

      const calls: Array<() => Promise<unknown>> = [
        () => store.get('k'),
        () => store.set('k', Buffer.from('v'), 0),
        () => store.add('k', Buffer.from('v'), 0),
        () => store.delete('k'),
        () => store.increment('k', 1, 0n),
      ]
      for (const call of calls) {
        const { ms, error } = await timed(call())
        expect(error).toBeInstanceOf(StoreUnavailableError)
        expect((error as Error).message).toBe('all 3 memcached nodes are down')
        expect(ms).toBeLessThan(20)
      }
      expect(() => store.nodeFor('k')).toThrow(StoreUnavailableError)
      // Let a few background probes fail against the dead ports.
      await sleep(500)
      expect(store.liveNodeCount).toBe(0)
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
    expect(unhandled).toEqual([])
  })

  it('close leaves no socket or ref-ed timer behind, even with a paused node', async () => {
    await sleep(50) // Let sockets of earlier tests finish closing.
    // Idle sockets are unref'd (they must not keep a process alive), so Node's resource list
    // does not show them: count the connections the live nodes see instead.
    const connections = async () =>
      (await Promise.all(cluster.nodes.slice(1).map(async (node) => Number((await node.stats()).curr_connections)))).reduce((a, b) => a + b, 0)
    const before = await connections()
    const timers = countResources('Timeout')
    const { store } = openStore({ servers: cluster.servers, timeoutMs: 150, failureThreshold: 1, retryAfterMs: 100 })
    const paused = cluster.nodes[0]!
    const pausedKey = keyOwnedBy(store, paused, 'close')
    await Promise.all(cluster.nodes.map((node) => store.set(keyOwnedBy(store, node, 'warm'), Buffer.from('x'), 0)))
    expect(await connections()).toBeGreaterThan(before)
    await paused.pause()
    // Out after one timeout; the read goes on to the next node, which holds nothing.
    expect(await store.get(pausedKey)).toBeUndefined()
    const inFlight = store.get(keyOwnedBy(store, cluster.nodes[1]!, 'inflight'))
    await store.close()
    await inFlight.catch(() => undefined)
    // The nodes see a close a moment after it happens.
    await waitFor('the nodes to see every connection closed', 2000, async () => ((await connections()) === before ? true : undefined))
    expect(countResources('Timeout')).toBeLessThanOrEqual(timers)
  })
})
