import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hotStatisticsKey } from '../../src/keys.js'
import { FarmStatistics } from '../../src/statistics/farm-statistics.js'
import type { HotQuery, QueryShape } from '../../src/statistics/query-shape.js'
import { QueryStatistics } from '../../src/statistics/query-statistics.js'
import { validateSnapshot } from '../../src/statistics/statistics-snapshot.js'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import type { MemcachedStoreOptions } from '../../src/store/memcached/memcached-store.js'
import { createManifest, parseManifest, serializeManifest } from '../../src/warmup/manifest.js'
import { startMemcached } from '../harness/memcached.js'
import type { MemcachedCluster } from '../harness/memcached.js'

/** Long enough that decay during a test is far below the tolerances. */
const HALF_LIFE_MS = 24 * 60 * 60 * 1000

let cluster: MemcachedCluster
const stores = new Set<MemcachedStore>()
let serial = 0

beforeAll(async () => {
  cluster = await startMemcached(2)
})

afterAll(async () => {
  await cluster?.stopAll()
})

afterEach(async () => {
  await Promise.all([...stores].map((store) => store.close()))
  stores.clear()
})

/** One "process": its own store connections and statistics. */
function openProcess(namespace: string, options: { capacity?: number; store?: Partial<MemcachedStoreOptions> } = {}) {
  const store = new MemcachedStore({ servers: cluster.servers, ...options.store })
  stores.add(store)
  const local = new QueryStatistics({ halfLifeMs: HALF_LIFE_MS })
  const errors: unknown[] = []
  const farm = new FarmStatistics({
    store,
    namespace,
    local,
    onError: (error) => errors.push(error),
    ...(options.capacity === undefined ? {} : { capacity: options.capacity }),
  })
  const record = (key: string, times: number, outcome: 'hit' | 'miss', databaseMs?: number, sql = `select * from "t" where "k" = $1 -- ${key}`) => {
    const shape = (): QueryShape => ({ key: `${namespace}:q:${key}`, sql, parameters: [key, new Date(0)], tables: ['public.t'], tags: [], ttl: 60 })
    for (let i = 0; i < times; i++) local.record(`${namespace}:q:${key}`, shape, outcome, databaseMs)
  }
  return { store, local, farm, record, errors }
}

function uniqueNamespace(): string {
  return `farm${process.pid}-${Date.now().toString(36)}-${++serial}`
}

function find(hot: readonly HotQuery[], namespace: string, key: string): HotQuery | undefined {
  return hot.find((query) => query.key === `${namespace}:q:${key}`)
}

describe('FarmStatistics', () => {
  it('merges what two processes recorded into one document', async () => {
    const namespace = uniqueNamespace()
    const a = openProcess(namespace)
    const b = openProcess(namespace)
    a.record('shared', 10, 'miss', 5)
    b.record('shared', 5, 'hit')
    b.record('onlyB', 3, 'miss', 100)
    await a.farm.push()
    await b.farm.push()

    for (const reader of [a, b]) {
      const hot = await reader.farm.read()
      expect(hot).toHaveLength(2)
      const shared = find(hot, namespace, 'shared')!
      expect(shared.requests).toBeCloseTo(15, 3)
      expect(shared.hits).toBeCloseTo(5, 3)
      expect(shared.misses).toBeCloseTo(10, 3)
      // b never ran it: the farm-wide mean comes from a's executions.
      expect(shared.meanDatabaseMs).toBeCloseTo(5, 3)
      const onlyB = find(hot, namespace, 'onlyB')!
      expect(onlyB.requests).toBeCloseTo(3, 3)
      expect(onlyB.parameters).toEqual(['onlyB', new Date(0)])
      // Ranked by score: 3 × 100 ms beats 15 × 5 ms.
      expect(hot[0]!.key).toBe(`${namespace}:q:onlyB`)
    }
    // What a manifest is built from.
    const manifest = parseManifest(serializeManifest(createManifest(namespace, await a.farm.read())))
    expect(manifest.entries.map((entry) => entry.key)).toEqual([`${namespace}:q:onlyB`, `${namespace}:q:shared`])
    expect(a.errors).toEqual([])
  })

  it('adds only the new counts on the next push', async () => {
    const namespace = uniqueNamespace()
    const a = openProcess(namespace)
    a.record('k', 10, 'miss', 2)
    await a.farm.push()
    await a.farm.push() // nothing new: counted once
    expect(find(await a.farm.read(), namespace, 'k')!.requests).toBeCloseTo(10, 3)

    a.record('k', 4, 'hit')
    a.record('new', 2, 'miss', 1)
    await a.farm.push()
    const hot = await a.farm.read()
    const k = find(hot, namespace, 'k')!
    expect(k.requests).toBeCloseTo(14, 3)
    expect(k.hits).toBeCloseTo(4, 3)
    expect(k.misses).toBeCloseTo(10, 3)
    expect(k.meanDatabaseMs).toBeCloseTo(2, 3)
    expect(find(hot, namespace, 'new')!.requests).toBeCloseTo(2, 3)
  })

  it('writes the document to every node', async () => {
    const namespace = uniqueNamespace()
    const a = openProcess(namespace)
    a.record('k', 1, 'miss', 1)
    await a.farm.push()
    for (const server of cluster.servers) {
      const single = new MemcachedStore({ servers: [server] })
      stores.add(single)
      const copy = await single.get(hotStatisticsKey(namespace))
      expect(copy).toBeInstanceOf(Buffer)
      expect(validateSnapshot(JSON.parse(copy!.toString('utf8'))).entries).toHaveLength(1)
    }
    expect(await cluster.nodes[0]!.ttl(hotStatisticsKey(namespace))).toBeGreaterThan(23 * 60 * 60)
  })

  it('keeps the document within capacity and under maxValueBytes with long SQL', async () => {
    const namespace = uniqueNamespace()
    const maxValueBytes = 20_000
    const a = openProcess(namespace, { capacity: 50, store: { maxValueBytes } })
    const filler = 'x'.repeat(1000)
    for (let i = 0; i < 200; i++) {
      // Higher i: more requests and a higher score.
      a.record(`q${i}`, 1 + i, 'miss', 10, `select * from "t" where "note" = '${filler}' and "i" = ${i}`)
    }
    // One statement larger than the whole document: skipped, smaller ones still fit.
    a.record('huge', 5000, 'miss', 10, `select '${'y'.repeat(30_000)}'`)
    await a.farm.push()
    const copy = await a.store.get(hotStatisticsKey(namespace))
    expect(copy!.length).toBeLessThanOrEqual(maxValueBytes)
    expect(copy!.length).toBeGreaterThan(maxValueBytes - 1500) // filled, not just trimmed to nothing
    const hot = await a.farm.read()
    expect(hot.length).toBeGreaterThan(5)
    expect(hot.length).toBeLessThan(50)
    expect(find(hot, namespace, 'huge')).toBeUndefined()
    // The best-scored entries are the ones kept.
    expect(hot[0]!.key).toBe(`${namespace}:q:q199`)
    expect(hot.map((query) => query.key)).toEqual(
      Array.from({ length: hot.length }, (_, i) => `${namespace}:q:q${199 - i}`),
    )

    // With short SQL, the capacity is the bound.
    const b = openProcess(uniqueNamespace(), { capacity: 50 })
    for (let i = 0; i < 200; i++) b.record(`s${i}`, 1 + i, 'miss', 10)
    await b.farm.push()
    expect(await b.farm.read()).toHaveLength(50)
  })

  it('retries counts a failed push could not deliver, and pushes what is left on stop()', async () => {
    const namespace = uniqueNamespace()
    const a = openProcess(namespace)
    a.record('k', 3, 'miss', 1)
    const broken = openProcess(namespace)
    await broken.store.close()
    broken.record('k', 2, 'hit')
    await expect(broken.farm.push()).rejects.toThrow()
    await a.farm.push()
    expect(find(await a.farm.read(), namespace, 'k')!.requests).toBeCloseTo(3, 3)

    a.farm.start()
    a.farm.start() // idempotent
    a.record('k', 7, 'hit')
    await a.farm.stop()
    expect(find(await a.farm.read(), namespace, 'k')!.requests).toBeCloseTo(10, 3)
    expect(a.errors).toEqual([])
  })

  it('pushes on its own every intervalMs', async () => {
    const namespace = uniqueNamespace()
    const store = new MemcachedStore({ servers: cluster.servers })
    stores.add(store)
    const local = new QueryStatistics({ halfLifeMs: HALF_LIFE_MS })
    const farm = new FarmStatistics({ store, namespace, local, intervalMs: 50 })
    local.record(`${namespace}:q:k`, () => ({ key: `${namespace}:q:k`, sql: 'select 1', parameters: [], tables: [], tags: [], ttl: 5 }), 'hit')
    farm.start()
    const deadline = Date.now() + 5000
    while ((await farm.read()).length === 0) {
      if (Date.now() > deadline) throw new Error('no background push within 5 s')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await farm.stop()
  })

  it('treats garbage under its key as no document', async () => {
    const namespace = uniqueNamespace()
    const a = openProcess(namespace)
    await a.store.setReplicas(hotStatisticsKey(namespace), Buffer.from('{"version":9}'), 60, 1024)
    expect(await a.farm.read()).toEqual([])
    expect(String(a.errors[0])).toMatch(/version must be 1, got 9/)
    a.record('k', 1, 'hit')
    await a.farm.push()
    expect(await a.farm.read()).toHaveLength(1)
  })

  it('validates its options', () => {
    const store = new MemcachedStore({ servers: cluster.servers })
    stores.add(store)
    const local = new QueryStatistics()
    expect(() => new FarmStatistics({ store, namespace: 'a b', local })).toThrow(/namespace must be/)
    expect(() => new FarmStatistics({ store, namespace: 'ok', local, capacity: 0 })).toThrow('capacity must be a positive integer, got 0')
    expect(() => new FarmStatistics({ store, namespace: 'ok', local, intervalMs: -5 })).toThrow(
      'intervalMs must be a positive number of milliseconds, at most 2147483647, got -5',
    )
    expect(() => new FarmStatistics({ store, namespace: 'ok', local: {} as QueryStatistics })).toThrow('local must be a QueryStatistics')
  })
})
