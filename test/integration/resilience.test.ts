import { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createQueryCache, MemcachedStore, MemoryStore, type Store } from '../../src/index.js'
import { queryKey } from '../../src/keys.js'
import { createSchema, scopeOf, openPostgres, type DB, type TestDatabase } from '../harness/database.js'
import { closeClient, createClient, freshNamespace, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

let database: TestDatabase
const clients: Client[] = []
/** The key scope every client's wrapped dialect learns. */
let scope: string

beforeAll(async () => {
  database = await openPostgres()
  const setup = createClient(database, {})
  await createSchema(setup.db)
  await setup.db
    .insertInto('person')
    .values(Array.from({ length: 50 }, (_, i) => ({ first_name: `p${i}`, meta: { i } })))
    .execute()
  await closeClient(setup)
  scope = await scopeOf(database)
})

afterAll(async () => {
  await Promise.all(clients.map(closeClient))
  await database?.close()
})

function client(options: Parameters<typeof createClient>[1]): Client {
  const made = createClient(database, options)
  clients.push(made)
  return made
}

const byTag = (c: Client, id: number) =>
  c.db.selectFrom('person').select(['id', 'first_name']).where('id', '=', id).cached({ tags: ['hot'] })

/** Many distinct keys, so every node of the ring owns some of them. */
const byId = (c: Client, id: number) => c.db.selectFrom('person').select(['id', 'first_name']).where('id', '=', id).cached()

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now()
  const value = await work()
  return { value, ms: performance.now() - start }
}

describe('when memcached nodes fail', () => {
  let memcached: MemcachedCluster

  beforeAll(async () => {
    memcached = await startMemcached(3)
  })
  afterAll(async () => {
    await memcached?.stopAll()
  })

  it('loses only the killed node\'s share of entries on a kill -9, wherever the generations lived', async () => {
    // A slow reply on a loaded machine must not take a node out: only the kill should. Without
    // near copies, which would keep every result a hit (test/cache/near-cache.test.ts): the store's part is under test.
    const c = client({
      servers: memcached.servers, namespace: freshNamespace(), failureThreshold: 1, retryAfterMs: 60_000, timeoutMs: 2000, nearCache: false,
    })
    const store = c.cache.store as MemcachedStore
    const ids = Array.from({ length: 60 }, (_, i) => (i % 50) + 1)
    for (const id of ids) await byId(c, id).execute()
    const victim = memcached.nodes[0]!
    const owned = new Set(
      ids.filter((id) => {
        const { sql, parameters } = byId(c, id).compile()
        return store.nodeFor(queryKey(c.cache.namespace, sql, parameters, [], scope)) === victim.address
      }),
    )
    expect(owned.size).toBeGreaterThan(0)
    c.executions.reset()

    await victim.kill()
    for (let id = 1; id <= 50; id++) {
      const row = await byId(c, id).executeTakeFirstOrThrow()
      expect(row).toEqual({ id, first_name: `p${id - 1}` })
    }
    // Its share is recomputed (plus the lookups that failed before it was marked down);
    // everything else stays a hit, even if a generation's first copy was on the victim.
    const recomputed = c.executions.count('from "person"')
    expect(recomputed).toBeGreaterThanOrEqual(owned.size)
    expect(recomputed).toBeLessThanOrEqual(owned.size + 2)

    // The query whose lookup failed before the node was marked down could not store its result.
    c.executions.reset()
    for (let id = 1; id <= 50; id++) await byId(c, id).execute()
    expect(c.executions.count()).toBeLessThanOrEqual(1)
    c.executions.reset()
    for (let id = 1; id <= 50; id++) await byId(c, id).execute()
    expect(c.executions.count()).toBe(0)
    await victim.restart()
  })

  it('without a monitor, is degraded while a node is out of its ring and for the settle period after it rejoins', async () => {
    const events: string[] = []
    const c = client({
      servers: memcached.servers,
      namespace: freshNamespace(),
      failureThreshold: 1,
      timeoutMs: 2000,
      retryAfterMs: 200,
      settleMs: 800,
      onEvent: (event) => events.push(event.type === 'mode' ? `mode:${event.to}` : event.type),
    })
    const victim = memcached.nodes[2]!
    await victim.kill()
    for (let id = 1; id <= 20 && c.cache.mode === 'normal'; id++) await byId(c, id).execute()
    expect(c.cache.mode).toBe('degraded')
    await victim.restart()
    const deadline = Date.now() + 5000
    while (!events.includes('node-up') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    const rejoined = Date.now()
    expect(events).toContain('node-up')
    // Back in the ring, flushed and empty: still degraded until the settle period passes.
    expect(c.cache.mode).toBe('degraded')
    while (c.cache.mode === 'degraded' && Date.now() - rejoined < 5000) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(c.cache.mode).toBe('normal')
    // `rejoined` is when the poll above saw node-up, up to 20 ms after it happened.
    expect(Date.now() - rejoined).toBeGreaterThanOrEqual(800 - 25)
    expect(events.indexOf('node-down')).toBeLessThan(events.indexOf('mode:degraded'))
  })

  it('keeps hot results as hits when their node dies: they have a copy on the next node', async () => {
    // A slow reply on a loaded machine must not take a node out: only the kill should. Without
    // near copies, which would keep every result a hit (test/cache/near-cache.test.ts): the store's part is under test.
    const c = client({
      servers: memcached.servers, namespace: freshNamespace(), failureThreshold: 1, retryAfterMs: 60_000, timeoutMs: 2000, nearCache: false,
    })
    const store = c.cache.store as MemcachedStore
    const victim = memcached.nodes[1]!
    // Shapes whose result lives on the victim.
    const ids = Array.from({ length: 50 }, (_, i) => i + 1).filter((id) => {
      const { sql, parameters } = byTag(c, id).compile()
      return store.nodeFor(queryKey(c.cache.namespace, sql, parameters, ['hot'], scope)) === victim.address
    })
    expect(ids.length).toBeGreaterThan(2)
    // Requested twice, the shape is hot; the miss after an invalidation stores it on two nodes.
    for (const id of ids) await byTag(c, id).execute()
    for (const id of ids) await byTag(c, id).execute()
    await c.cache.invalidate({ tags: ['hot'] })
    for (const id of ids) await byTag(c, id).execute()
    c.executions.reset()

    await victim.kill()
    try {
      // One failed read takes the node off the ring (failureThreshold 1).
      const { sql, parameters } = byTag(c, ids[0]!).compile()
      await store.get(queryKey(c.cache.namespace, sql, parameters, ['hot'], scope)).catch(() => undefined)
      expect(store.nodeStates().find((node) => node.id === victim.address)?.up).toBe(false)
      for (const id of ids) expect(await byTag(c, id).executeTakeFirstOrThrow()).toEqual({ id, first_name: `p${id - 1}` })
      expect(c.executions.count()).toBe(0)
    } finally {
      await victim.restart()
    }
  })

  it('never makes a query wait longer than the cache timeout while a node hangs (SIGSTOP)', async () => {
    const timeoutMs = 200
    // Without near copies: a near hit reads only generations, which a majority answers at once, so it would never wait.
    const c = client({ servers: memcached.servers, namespace: freshNamespace(), timeoutMs, failureThreshold: 1000, nearCache: false })
    for (let id = 1; id <= 30; id++) await byId(c, id).execute()

    await memcached.nodes[1]!.pause()
    try {
      const durations = await Promise.all(
        Array.from({ length: 30 }, (_, i) => timed(() => byId(c, i + 1).executeTakeFirstOrThrow())),
      )
      for (const { value, ms } of durations) {
        expect(value.first_name).toMatch(/^p\d+$/)
        // One cache timeout plus a database round trip and scheduling slack.
        expect(ms).toBeLessThan(timeoutMs + 250)
      }
      expect(Math.max(...durations.map((d) => d.ms))).toBeGreaterThanOrEqual(timeoutMs - 20)
    } finally {
      await memcached.nodes[1]!.resume()
    }
  })

  it('answers every query from the database when all of memcached is down, counting errors', async () => {
    const c = client({ servers: memcached.servers, namespace: freshNamespace(), timeoutMs: 150 })
    await Promise.all(memcached.nodes.map((node) => node.kill()))
    try {
      for (let round = 0; round < 3; round++) {
        const rows = await c.db.selectFrom('person').select('id').orderBy('id').cached().execute()
        expect(rows).toHaveLength(50)
      }
      await c.db.updateTable('person').set({ nickname: 'down' }).where('id', '=', 1).execute()
      expect(c.executions.count('from "person"')).toBe(3)
      expect(c.cache.stats().hits).toBe(0)
        expect(await c.cache.invalidate({ tables: ['person'] })).toBe(false)
    } finally {
      await Promise.all(memcached.nodes.map((node) => node.restart()))
    }
  })
})

describe('the embedded store', () => {
  it('caches and invalidates with the same semantics when no servers are given', async () => {
    const namespace = freshNamespace()
    const store = new MemoryStore()
    const a = client({ store, namespace })
    const b = client({ store, namespace })
    await byId(a, 1).execute()
    await byId(b, 1).execute()
    expect(b.executions.count()).toBe(0)
    await b.db.updateTable('person').set({ first_name: 'p0' }).where('id', '=', 1).execute()
    await byId(a, 1).execute()
    expect(a.executions.count('from "person"')).toBe(2)

    const embedded = client({ namespace })
    await byId(embedded, 2).execute()
    await byId(embedded, 2).execute()
    expect(embedded.executions.count('from "person"')).toBe(1)
    expect(embedded.cache.store).toBeInstanceOf(MemoryStore)
  })

  it('fetches the generations in parallel with the value: a hit costs one round trip of latency', async () => {
    // A real store with injected latency: no real part can show round trips this clearly.
    const latencyMs = 40
    const delayed = withLatency(new MemoryStore(), latencyMs)
    const c = client({ store: delayed, namespace: freshNamespace() })
    const query = () =>
      c.db.selectFrom('person').innerJoin('pet', 'pet.owner_id', 'person.id').select('person.id').cached({ tags: ['t'] })
    await query().execute()
    const { ms } = await timed(() => query().execute())
    expect(c.cache.stats().hits).toBe(1)
    // value + namespace + 2 tables + 1 tag = 5 reads: serially they would take 200 ms.
    expect(ms).toBeLessThan(latencyMs * 2)
  })
})

describe('bad input', () => {
  it('names the option and the bad value', () => {
    expect(() => createQueryCache({ servers: [''] })).toThrow(TypeError)
    expect(() => createQueryCache({ servers: ['localhost'] })).toThrow(/servers\[0\].*"localhost"/)
    expect(() => createQueryCache({ servers: ['a:1', 'b:99999'] })).toThrow(/servers\[1\]/)
    expect(() => createQueryCache({ defaultTtl: -5 })).toThrow(new RangeError('defaultTtl must be a finite number of seconds between 0 and 2592000 (30 days), got -5'))
    expect(() => createQueryCache({ defaultTtl: Number.POSITIVE_INFINITY })).toThrow(RangeError)
    expect(() => createQueryCache({ defaultTtl: 2_592_001 })).toThrow(/30 days/)
    expect(() => createQueryCache({ namespace: 'with space' })).toThrow(/namespace/)
    expect(() => createQueryCache({ servers: ['a:1'], store: new MemoryStore() })).toThrow(/either servers or store/)
    expect(() => createQueryCache({ timeOut: 5 } as never)).toThrow(/unknown option "timeOut"/)

    const db = new Kysely<DB>({ dialect: createQueryCache().wrapDialect(database.dialect()) })
    const query = db.selectFrom('person').selectAll()
    expect(() => query.cached({ ttl: -1 })).toThrow(/ttl must be a finite number of seconds.*got -1/)
    expect(() => query.cached({ ttl: Number.NaN })).toThrow(RangeError)
    expect(() => query.cached({ tags: [1 as never] })).toThrow(new TypeError('tags[0] must be a non-empty string, got 1'))
    expect(() => query.cached({ tags: 'person' as never })).toThrow(/tags must be an array/)
  })

  it('runs a .cached() query on an unwrapped dialect normally and warns once', async () => {
    const warnings: Error[] = []
    const onWarning = (warning: Error) => warnings.push(warning)
    process.on('warning', onWarning)
    const db = new Kysely<DB>({ dialect: database.dialect() })
    try {
      const rows = await db.selectFrom('person').select('id').where('id', '=', 3).cached().execute()
      await db.selectFrom('person').select('id').where('id', '=', 4).cached().execute()
      expect(rows).toEqual([{ id: 3 }])
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings.filter((w) => (w as { code?: string }).code === 'KYSELY_MEMCACHE_UNWRAPPED')).toHaveLength(1)
    } finally {
      process.off('warning', onWarning)
      await db.destroy()
    }
  })
})

function withLatency(store: Store, ms: number): Store {
  const later = <T>(work: () => Promise<T>) => new Promise<T>((resolve, reject) => setTimeout(() => work().then(resolve, reject), ms))
  return {
    maxValueBytes: store.maxValueBytes,
    get: (key) => later(() => store.get(key)),
    set: (key, value, ttl) => later(() => store.set(key, value, ttl)),
    add: (key, value, ttl) => later(() => store.add(key, value, ttl)),
    getReplicas: (key, count) => later(() => store.getReplicas(key, count)),
    setReplicas: (key, value, ttl, count) => later(() => store.setReplicas(key, value, ttl, count)),
    readHomes: (key, count) => [later(() => Promise.all(store.readHomes(key, count))).then((all) => all[0])],
    writeHomes: (key, value, ttl, count) => [later(() => Promise.all(store.writeHomes(key, value, ttl, count))).then(() => {})],
    addHomes: (key, value, ttl, count) => [later(() => Promise.all(store.addHomes(key, value, ttl, count))).then((all) => all[0]!)],
    delete: (key) => later(() => store.delete(key)),
    increment: (key, amount, initial) => later(() => store.increment(key, amount, initial)),
    close: () => store.close(),
  }
}
