/**
 * Expiry without stampedes, against real memcached and PostgreSQL: early refresh
 * (XFetch), stale-while-revalidate and TTL jitter. Three clients stand for three
 * processes of a farm. Database work is counted by the database itself (the
 * expensive query's sequence), never by the library's counters alone.
 */
import diagnostics_channel from 'node:diagnostics_channel'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { QueryCacheOptions } from '../../src/index.js'
import { queryKey } from '../../src/keys.js'
import { scopeOf, type TestDatabase } from '../harness/database.js'
import { executionsSoFar, expensiveQuery } from '../harness/expensive-query.js'
import { closeFarm, createClient, freshNamespace, openFarm, type Client } from '../harness/farm.js'
import type { MemcachedCluster } from '../harness/memcached.js'
import { waitFor } from '../harness/wait.js'

let database: TestDatabase
let memcached: MemcachedCluster
const clients: Client[] = []

beforeAll(async () => {
  ;({ database, memcached } = await openFarm(3))
})

afterAll(() => closeFarm({ database, memcached }, clients))

function farm(count: number, options: QueryCacheOptions): Client[] {
  const namespace = freshNamespace()
  return Array.from({ length: count }, () => {
    const made = createClient(database, { servers: memcached.servers, namespace, ttlJitter: 0, nearCache: false, ...options })
    clients.push(made)
    return made
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Every client reads the expensive query (50 ms) every 10 ms for `ms`; returns the database's executions. */
async function traffic(members: Client[], ms: number, ttl: number, swr = 0): Promise<number> {
  // Stored once before the traffic: what is measured is expiry, not a cold start.
  await expensiveQuery(members[0]!.db, 0.05).cached({ ttl, swr }).execute()
  const before = await executionsSoFar(database.schema)
  const until = Date.now() + ms
  await Promise.all(
    members.map(async (member) => {
      while (Date.now() < until) {
        await expensiveQuery(member.db, 0.05).cached({ ttl, swr }).execute()
        await sleep(10)
      }
    }),
  )
  // A refresh drawn at the very end may still be running: let it finish before counting.
  await sleep(200)
  return (await executionsSoFar(database.schema)) - before
}

describe('early refresh', () => {
  it('refreshes a hot result once per expiry for the whole farm, where without it every process recomputes', async () => {
    // 4.5 s of traffic on a 1 s TTL: the first computation and about four expiries.
    const withRefresh = await traffic(farm(3, {}), 4500, 1)
    const without = await traffic(farm(3, { earlyRefresh: false }), 4500, 1)
    // With near copies in every process, and with swr: still one refresh per expiry for the farm
    // (a process whose copy went stale takes the entry another refreshed, it does not refresh again).
    const withNear = await traffic(farm(3, { nearCache: {} }), 4500, 1)
    const withSwr = await traffic(farm(3, { nearCache: {} }), 4500, 1, 30)
    console.log(
      `database executions, 3 processes, 4.5 s on a 1 s TTL: early refresh ${withRefresh}, without ${without}, ` +
        `with near copies ${withNear}, with near copies and swr ${withSwr}`,
    )
    // One process of three per expiry (the lock), before it expires: 4–5 on a quiet machine. A loaded
    // CI machine delays a refresh past an expiry now and then (7 seen once); every process per expiry is 12–15.
    expect(withNear).toBeLessThanOrEqual(8)
    expect(withSwr).toBeLessThanOrEqual(8)
    expect(withRefresh).toBeLessThanOrEqual(8)
    // Without: every process misses at every expiry (safe mode is for degraded mode only).
    expect(without).toBeGreaterThanOrEqual(1.5 * withRefresh)
  }, 30_000)

  it('serves the read that drew a refresh the current rows, and counts the refresh', async () => {
    const [one] = farm(1, { earlyRefresh: { beta: 1e6 } })
    const read = () => expensiveQuery(one!.db, 0.4).cached({ ttl: 5 }).execute()
    await read()
    const before = await executionsSoFar(database.schema)
    const started = performance.now()
    // β this large draws a refresh on the first hit (odds 1 - e^(-5 s / (β × 0.4 s)), all but certain);
    // the hit itself does not wait for the 400 ms query.
    await read()
    expect(performance.now() - started).toBeLessThan(300)
    // The refresh runs in the background: however slow a loaded machine is, it runs once.
    await waitFor('the background refresh', 10_000, async () => ((await executionsSoFar(database.schema)) > before ? true : undefined))
    await sleep(300)
    expect((await executionsSoFar(database.schema)) - before).toBe(1)
    expect(one!.cache.stats().earlyRefreshes).toBe(1)
  })
})

describe('stale-while-revalidate', () => {
  const read = (c: Client) => c.db.selectFrom('person').select('first_name').where('id', '=', 2).cached({ ttl: 1, swr: 30 })

  it('serves a result past its TTL at once and refreshes it in the background', async () => {
    const [c] = farm(1, { earlyRefresh: false })
    const expensive = () => expensiveQuery(c!.db, 0.4).cached({ ttl: 1, swr: 30 }).execute()
    await expensive()
    await sleep(1300)
    const before = await executionsSoFar(database.schema)
    // Tracing tools see which hit was served stale.
    const published: Array<{ outcome: string; stale?: boolean }> = []
    const listen = (message: unknown) => published.push(message as { outcome: string; stale?: boolean })
    diagnostics_channel.subscribe('kysely-memcache:query', listen)
    const started = performance.now()
    await expensive().finally(() => diagnostics_channel.unsubscribe('kysely-memcache:query', listen))
    expect(performance.now() - started).toBeLessThan(300) // the query takes 400 ms: it was not waited for
    expect(c!.cache.stats().staleServed).toBe(1)
    expect(published.filter((m) => m.outcome === 'hit' && m.stale === true)).toHaveLength(1)
    await sleep(900)
    expect((await executionsSoFar(database.schema)) - before).toBe(1)
    // Refreshed: fresh again, no more stale serving.
    await expensive()
    expect(c!.cache.stats().staleServed).toBe(1)
  })

  it('works the same on the embedded store', async () => {
    const embedded = createClient(database, { namespace: freshNamespace(), earlyRefresh: false, ttlJitter: 0 })
    clients.push(embedded)
    const expensive = () => expensiveQuery(embedded.db, 0.4).cached({ ttl: 1, swr: 30 }).execute()
    await expensive()
    await sleep(1300)
    const before = await executionsSoFar(database.schema)
    const started = performance.now()
    await expensive()
    expect(performance.now() - started).toBeLessThan(300)
    expect(embedded.cache.stats().staleServed).toBe(1)
    await sleep(900)
    expect((await executionsSoFar(database.schema)) - before).toBe(1)
  })

  it('never serves a result a write invalidated, swr or not', async () => {
    const [writer, reader] = farm(2, { earlyRefresh: false })
    await writer!.db.updateTable('person').set({ first_name: 'before' }).where('id', '=', 2).execute()
    expect((await read(reader!).executeTakeFirstOrThrow()).first_name).toBe('before')
    await sleep(1200) // past the TTL, inside swr
    await writer!.db.updateTable('person').set({ first_name: 'after' }).where('id', '=', 2).execute()
    expect((await read(reader!).executeTakeFirstOrThrow()).first_name).toBe('after')
    expect(reader!.cache.stats().staleServed).toBe(0)
    await writer!.db.updateTable('person').set({ first_name: 'other' }).where('id', '=', 2).execute()
  })

  it('rejects a bad swr by name', () => {
    const [c] = farm(1, {})
    expect(() => c!.db.selectFrom('person').selectAll().cached({ swr: -1 })).toThrow(/swr must be a finite number of seconds/)
  })
})

describe('TTL jitter', () => {
  it('spreads the TTLs of results stored together by about ±10 %', async () => {
    const [c] = farm(1, { ttlJitter: 0.1 })
    const scope = await scopeOf(database)
    const queries = Array.from({ length: 40 }, (_, i) => c!.db.selectFrom('person').select('id').where('id', '<', 1000 + i))
    for (const query of queries) await query.cached({ ttl: 100 }).execute()
    const ttls: number[] = []
    for (const query of queries) {
      const { sql: text, parameters } = query.compile()
      const key = queryKey(c!.cache.namespace, text, parameters, [], scope)
      for (const node of memcached.nodes) {
        const ttl = await node.ttl(key)
        if (ttl !== undefined) ttls.push(ttl)
      }
    }
    expect(ttls).toHaveLength(40)
    expect(Math.min(...ttls)).toBeGreaterThanOrEqual(89)
    expect(Math.max(...ttls)).toBeLessThanOrEqual(111)
    expect(new Set(ttls).size).toBeGreaterThan(8)
  })

  it('rejects a jitter beyond one half', () => {
    expect(() => farm(1, { ttlJitter: 0.6 })).toThrow('ttlJitter must be a number from 0 to 0.5, got 0.6')
  })
})
