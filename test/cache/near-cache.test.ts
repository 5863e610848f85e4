/**
 * The near cache (L1) against real memcached nodes and PostgreSQL. Two clients
 * stand for two processes of a farm: each has its own cache, near copies and
 * pool. Database work is counted below the cache (ExecutionCounter), memcached's
 * work by its own `stats`, never by the library's counters alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sql } from 'kysely'
import type { QueryCacheOptions } from '../../src/index.js'
import { NearCache } from '../../src/cache/near-cache.js'
import { TIMELESS } from '../../src/cache/codec.js'
import type { TestDatabase } from '../harness/database.js'
import { closeFarm, createClient, freshNamespace, openFarm, type Client } from '../harness/farm.js'
import type { MemcachedCluster } from '../harness/memcached.js'

let database: TestDatabase
let memcached: MemcachedCluster
const clients: Client[] = []

beforeAll(async () => {
  ;({ database, memcached } = await openFarm(4))
})

afterAll(() => closeFarm({ database, memcached }, clients))

function client(namespace: string, options: QueryCacheOptions = {}): Client {
  const made = createClient(database, { servers: memcached.servers, namespace, retryAfterMs: 60_000, ...options })
  clients.push(made)
  return made
}

const readName = (c: Client, id = 1) =>
  c.db.selectFrom('person').select('first_name').where('id', '=', id).cached().executeTakeFirstOrThrow()

/** A result of some kilobytes, so fetching it shows in the bytes memcached sends. */
const readWide = (c: Client) =>
  c.db.selectFrom('person').select(['first_name', sql<string>`repeat(first_name, 2000)`.as('wide')]).where('id', '=', 1).cached().executeTakeFirstOrThrow()

/** Bytes memcached sent back for hits, summed over the nodes: a value fetch shows here, a generation read barely. */
async function bytesRead(): Promise<number> {
  let total = 0
  for (const node of memcached.nodes) {
    if (!node.running) continue
    total += Number((await node.stats()).bytes_written)
  }
  return total
}

describe('the near cache', () => {
  it('serves a repeated hit from memory after checking only the generations, and stops when another process writes', async () => {
    const namespace = freshNamespace()
    const reader = client(namespace)
    const writer = client(namespace)
    await writer.db.updateTable('person').set({ first_name: 'v0' }).where('id', '=', 1).execute()
    expect((await readWide(reader)).first_name).toBe('v0')
    const remote = await bytesRead()
    expect((await readWide(reader)).first_name).toBe('v0') // a remote hit: the entry (4 KB) and generations
    const remoteHit = (await bytesRead()) - remote
    reader.executions.reset()

    const before = await bytesRead()
    for (let i = 0; i < 20; i++) expect((await readWide(reader)).first_name).toBe('v0')
    const nearHit = ((await bytesRead()) - before) / 20
    expect(reader.executions.count('select')).toBe(0)
    expect(remoteHit).toBeGreaterThan(4000)
    // Two generations from three homes each, about a hundred bytes apiece, and no value.
    expect(nearHit).toBeLessThan(remoteHit / 4)

    await writer.db.updateTable('person').set({ first_name: 'v1' }).where('id', '=', 1).execute()
    expect((await readWide(reader)).first_name).toBe('v1')
    expect(reader.executions.count('select')).toBe(1)
  })

  it('takes a current entry another process stored when its own copy is out of date, without querying', async () => {
    const namespace = freshNamespace()
    const a = client(namespace)
    const b = client(namespace)
    expect((await readName(a, 2)).first_name).toBe('other')
    await b.db.updateTable('person').set({ first_name: 'other' }).where('id', '=', 2).execute()
    expect((await readName(b, 2)).first_name).toBe('other') // b computes and stores under the new generations
    a.executions.reset()
    expect((await readName(a, 2)).first_name).toBe('other')
    expect(a.executions.count('select')).toBe(0)
    expect(a.cache.stats().nearHits).toBe(0)
    expect((await readName(a, 2)).first_name).toBe('other')
    expect(a.cache.stats().nearHits).toBe(1)
  })

  it('with trustMs, serves without reading generations, but never hides the process its own write', async () => {
    const namespace = freshNamespace()
    const trusting = client(namespace, { nearCache: { trustMs: 60_000 } })
    const other = client(namespace)
    await trusting.db.updateTable('person').set({ first_name: 'v0' }).where('id', '=', 1).execute()
    expect((await readName(trusting)).first_name).toBe('v0')

    // Another process's write goes unseen within the window: what trustMs is documented to allow.
    await other.db.updateTable('person').set({ first_name: 'v1' }).where('id', '=', 1).execute()
    expect((await readName(trusting)).first_name).toBe('v0')

    // Its own write is seen at once.
    await trusting.db.updateTable('person').set({ first_name: 'v2' }).where('id', '=', 1).execute()
    expect((await readName(trusting)).first_name).toBe('v2')
  })

  it('keeps serving hot results while a node is dead, where their generations still have a majority', async () => {
    const namespace = freshNamespace()
    const c = client(namespace, { failureThreshold: 1 })
    // 40 keys over 4 nodes: some live on the node that dies (all miss it with odds of 1 in 10^5).
    const queries = Array.from({ length: 40 }, (_, i) => () =>
      c.db.selectFrom('person').select('first_name').where('id', '<', 100 + i).cached().execute())
    for (const query of queries) await query()
    c.executions.reset()
    await memcached.nodes[1]!.kill()
    try {
      for (let round = 0; round < 3; round++) for (const query of queries) await query()
      expect(c.executions.count('select')).toBe(0)
    } finally {
      await memcached.nodes[1]!.restart()
    }
  })

  it('never serves a copy past its TTL: it expires with the entry it was read from', async () => {
    const namespace = freshNamespace()
    const c = client(namespace)
    const read = () => c.db.selectFrom('person').select('first_name').where('id', '=', 2).cached({ ttl: 1 }).executeTakeFirstOrThrow()
    await read()
    await read()
    expect(c.cache.stats().nearHits).toBe(1)
    c.executions.reset()
    await new Promise((resolve) => setTimeout(resolve, 1100))
    await read()
    // Expired in memcached and near alike: the database answers.
    expect(c.executions.count('select')).toBe(1)
  })

  it("a copy read from another process's entry expires when that entry does, not a TTL later", async () => {
    const namespace = freshNamespace()
    const writer = client(namespace)
    const reader = client(namespace)
    const read = (c: Client) => c.db.selectFrom('person').select('first_name').where('id', '=', 2).cached({ ttl: 2 }).executeTakeFirstOrThrow()
    await read(writer)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    await read(reader) // a remote hit, 1 s into the entry's 2 s
    await read(reader)
    const near = reader.cache.stats().nearHits
    expect(near).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 1200))
    // memcached counts whole seconds and may still hold the entry; the copy must be gone.
    await read(reader)
    expect(reader.cache.stats().nearHits).toBe(near)
  })

  it('is off by default with the embedded store, on with memcached', async () => {
    const embedded = createClient(database, { namespace: freshNamespace() })
    clients.push(embedded)
    await readName(embedded)
    await readName(embedded)
    await readName(embedded)
    expect(embedded.cache.stats().nearHits).toBe(0)
    const shared = client(freshNamespace())
    await readName(shared)
    await readName(shared)
    expect(shared.cache.stats().nearHits).toBe(1)
  })

  it('rejects bad options by the name the caller wrote', () => {
    expect(() => client('x', { nearCache: { maxBytes: 10 } })).toThrow('nearCache.maxBytes must be an integer of at least 1024, got 10')
    expect(() => client('x', { nearCache: { trustMs: -1 } })).toThrow(/nearCache\.trustMs must be a positive number of milliseconds/)
    expect(() => client('x', { nearCache: { maxEntry: 5 } } as never)).toThrow('unknown option "maxEntry" for nearCache')
  })
})

describe('NearCache bounds', () => {
  it('stays within its byte bound and drops the readers of a written table only', () => {
    const near = new NearCache({ maxBytes: 64 * 1024, maxEntries: 1000, trustMs: 0 })
    const rows = Buffer.alloc(1000)
    for (let i = 0; i < 500; i++) {
      near.set(`k${i}`, { rows, generations: ['g'], generationKeys: [i % 2 === 0 ? 'even' : 'odd'], validatedAt: 0, times: TIMELESS })
      expect(near.bytes).toBeLessThanOrEqual(64 * 1024)
    }
    const held = near.size
    expect(held).toBeGreaterThan(20)
    const odd = Array.from({ length: 500 }, (_, i) => `k${i}`).filter((key, i) => i % 2 === 1 && near.get(key) !== undefined).length
    near.dropReadersOf(['even'])
    expect(near.size).toBe(odd)
    expect(near.get('k499')).toBeDefined()
    expect(near.get('k498')).toBeUndefined()
  })
})
