import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createQueryCache, MemcachedStore, ORIGINAL_SAFE_MODE, writeModeOverride, type QueryCacheOptions } from '../../src/index.js'
import { lockKey, namespaceGenerationKey, queryKey, tableGenerationKey, tagGenerationKey } from '../../src/keys.js'
import { createSchema, scopeOf, openPostgres, type TestDatabase } from '../harness/database.js'
import { executionsSoFar, expensiveQuery, resetExecutions } from '../harness/expensive-query.js'
import { closeClient, createClient, freshNamespace, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

let database: TestDatabase
let memcached: MemcachedCluster
let clients: Client[] = []

beforeAll(async () => {
  ;[database, memcached] = await Promise.all([openPostgres(), startMemcached(3)])
  const setup = createClient(database, {})
  await createSchema(setup.db)
  await setup.db.insertInto('person').values({ first_name: 'Ada' }).execute()
  await closeClient(setup)
})

afterEach(async () => {
  await Promise.all(clients.map(closeClient))
  clients = []
})

afterAll(async () => {
  await memcached?.stopAll()
  await database?.close()
})

/** `count` clients of one farm (separate caches, pools and Kysely instances), forced degraded. */
async function degradedFarm(count: number, options: QueryCacheOptions = {}): Promise<Client[]> {
  const namespace = freshNamespace()
  const farm = Array.from({ length: count }, () =>
    createClient(database, { servers: memcached.servers, namespace, modeRefreshMs: 60_000, ...options }),
  )
  clients.push(...farm)
  await writeModeOverride(farm[0]!.cache.store, namespace, 'degraded', 60_000, 'test')
  for (const client of farm) expect(await client.cache.refreshMode()).toBe('degraded')
  // Processes that have served requests already know their key scope (learned on the first connection).
  await Promise.all(farm.map((client) => client.db.selectFrom('person').select('id').limit(1).execute()))
  return farm
}

describe('degraded mode', () => {
  it('runs a cold expensive query once for the whole farm, and once per process with safe mode off', async () => {
    for (const [safe, expected] of [[true, 1], [false, 4]] as const) {
      const farm = await degradedFarm(4, safe ? {} : { safeMode: false })
      const before = await executionsSoFar(database.schema)
      const rows = await Promise.all(
        farm.flatMap((client) => Array.from({ length: 25 }, () => expensiveQuery(client.db, 0.3).cached().executeTakeFirstOrThrow())),
      )
      expect((await executionsSoFar(database.schema)) - before).toBe(expected)
      expect(rows).toHaveLength(100)
      expect(new Set(rows.map((row) => row.execution)).size).toBe(expected)
      expect(rows.every((row) => row.first_name === 'Ada')).toBe(true)
      const stats = farm.map((client) => client.cache.stats())
      expect(stats.reduce((sum, s) => sum + s.lockAcquired, 0)).toBe(safe ? 1 : 0)
      if (safe) expect(stats.reduce((sum, s) => sum + s.lockWaitHits, 0)).toBe(3)
      await Promise.all(farm.map(closeClient))
      clients = []
    }
  })

  it('lets cheap queries opt out of the lock with .cached({ safe: false })', async () => {
    const farm = await degradedFarm(3)
    const before = await executionsSoFar(database.schema)
    await Promise.all(farm.map((client) => expensiveQuery(client.db, 0.1).cached({ safe: false }).execute()))
    expect((await executionsSoFar(database.schema)) - before).toBe(3)
    expect(farm.every((client) => client.cache.stats().lockAcquired === 0)).toBe(true)
  })

  it('gives the holder its error and sends the waiters to the database at once, not after the wait bound', async () => {
    await resetExecutions(database.schema)
    const maxWaitMs = 10_000
    const [holder, ...waiters] = await degradedFarm(4, { safeMode: { wait: { maxWaitMs } } })
    const failing = holder!.db
    const held = expensiveQuery(failing, 0.4, true).cached().execute()
    await new Promise((resolve) => setTimeout(resolve, 100))
    const started = performance.now()
    const waited = Promise.all(waiters.map((client) => expensiveQuery(client.db, 0.4, true).cached().executeTakeFirstOrThrow()))
    await expect(held).rejects.toThrow(/division by zero/)
    const rows = await waited
    const elapsed = performance.now() - started
    expect(rows.every((row) => row.first_name === 'Ada')).toBe(true)
    // The holder fails at ~0.4 s; the waiters notice within a wait step and run their own 0.4 s query.
    expect(elapsed).toBeLessThan(2000)
    expect(waiters.reduce((sum, client) => sum + client.cache.stats().lockAbandoned, 0)).toBe(3)
  })

  it('falls through to the database at the wait bound', async () => {
    const farm = await degradedFarm(3, { safeMode: { wait: { initialMs: 20, maxMs: 50, maxWaitMs: 200 } } })
    const before = await executionsSoFar(database.schema)
    const started = performance.now()
    const results = await Promise.all(
      farm.map(async (client, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 50))
        await expensiveQuery(client.db, 1).cached().execute()
        return performance.now() - started
      }),
    )
    expect((await executionsSoFar(database.schema)) - before).toBe(3)
    expect(farm.reduce((sum, client) => sum + client.cache.stats().lockTimeouts, 0)).toBe(2)
    // Nobody waited for the 1 s holder: they gave up at ~200 ms and ran their own 1 s query.
    expect(Math.max(...results)).toBeLessThan(1800)
  })

  it('queries the database straight away when the lock cannot be read or written', async () => {
    const timeoutMs = 200
    const [client] = await degradedFarm(1, { timeoutMs, failureThreshold: 1000 })
    const store = client!.cache.store as MemcachedStore
    const namespace = client!.cache.namespace
    // A tag that puts the lock on a node not holding the value: the generations have
    // three homes on three nodes, so a majority of them still answers without it.
    const scope = await scopeOf(database)
    const placed = Array.from({ length: 500 }, (_, i) => `probe-${i}`)
      .map((tag) => {
        const query = expensiveQuery(client!.db, 0.05).cached({ tags: [tag] })
        const { sql, parameters } = query.compile()
        const key = queryKey(namespace, sql, parameters, [tag], scope)
        const others = [key]
        const warm = expensiveQuery(client!.db, 0.01).cached({ tags: [tag] })
        return { query, warm, lockNode: store.nodeFor(lockKey(key)), otherNodes: new Set(others.map((k) => store.nodeFor(k))) }
      })
      .find(({ lockNode, otherNodes }) => !otherNodes.has(lockNode))
    expect(placed).toBeDefined()
    // Another query with the same tables and tag creates the generations while all nodes answer.
    await placed!.warm.execute()
    const node = memcached.nodes.find((n) => n.address === placed!.lockNode)!
    const before = client!.cache.stats()
    await node.pause()
    try {
      const started = performance.now()
      const rows = await placed!.query.execute()
      expect(rows).toHaveLength(1)
      // One cache timeout on the lock, then the query: not a wait for anyone.
      expect(performance.now() - started).toBeLessThan(timeoutMs + 500)
      const after = client!.cache.stats()
      expect(after.lockUnavailable - before.lockUnavailable).toBe(1)
      expect(after.lockAcquired - before.lockAcquired).toBe(0)
    } finally {
      await node.resume()
    }
  })
})

describe('normal mode', () => {
  it('costs no memcached operation more than the cache without safe mode, per hit and per miss', async () => {
    const counts = async (options: QueryCacheOptions) => {
      const client = createClient(database, { servers: memcached.servers, namespace: freshNamespace(), modeRefreshMs: 60_000, statistics: false, ...options })
      clients.push(client)
      await client.cache.refreshMode()
      expect(client.cache.mode).toBe('normal')
      const before = await operations()
      await expensiveQuery(client.db, 0).cached().execute()
      const miss = (await operations()) - before
      await expensiveQuery(client.db, 0).cached().execute()
      return { miss, hit: (await operations()) - before - miss }
    }
    const withSafeMode = await counts({})
    const without = await counts({ safeMode: false })
    expect(withSafeMode).toEqual(without)
    // A near hit: the namespace and table generations, each from the two homes read first (they agree).
    expect(withSafeMode.hit).toBe(2 * 2)
  })
})

/** Every command the nodes executed so far, by their own counters (`stats` itself is not counted). */
async function operations(): Promise<number> {
  let total = 0
  for (const node of memcached.nodes) {
    const stats = await node.stats()
    for (const name of ['cmd_get', 'cmd_set', 'cmd_touch', 'incr_hits', 'incr_misses', 'decr_hits', 'decr_misses', 'delete_hits', 'delete_misses']) {
      total += Number(stats[name] ?? 0)
    }
  }
  return total
}

describe('safe mode options', () => {
  it('rejects bad settings with errors naming them, and accepts the original 5 s × 6 preset', () => {
    expect(() => createQueryCache({ safeMode: { lockTtl: 0 } })).toThrow(/safeMode.lockTtl must be a whole number of seconds/)
    expect(() => createQueryCache({ safeMode: { wait: { initialMs: -1 } } })).toThrow(/safeMode.wait.initialMs must be a positive number of milliseconds, at most 2147483647, got -1/)
    expect(() => createQueryCache({ safeMode: { wait: { initialMs: 100, maxMs: 10 } } })).toThrow(/maxMs must be at least/)
    expect(() => createQueryCache({ safeMode: 'on' as never })).toThrow(TypeError)
    expect(() => createQueryCache({ modeRefreshMs: 0 })).toThrow(/modeRefreshMs/)
    expect(() => createQueryCache({ modeRefreshMs: 2 ** 31 })).toThrow(/at most 2147483647/)
    expect(() => createQueryCache({ safeMode: { lockTTL: 5 } as never })).toThrow(/unknown option "lockTTL" for safeMode/)
    expect(() => createQueryCache({ safeMode: { wait: { maxWait: 5 } } as never })).toThrow(/unknown option "maxWait" for safeMode.wait/)
    expect(() => createQueryCache({ safeMode: { lockTtl: 1 } })).toThrow(/from 2 to/)
    expect(ORIGINAL_SAFE_MODE.wait).toEqual({ initialMs: 5000, maxMs: 5000, maxWaitMs: 30_000, jitter: false })
    expect(() => createQueryCache({ safeMode: ORIGINAL_SAFE_MODE }).close()).not.toThrow()
  })
})
