import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { serializeManifest, type WarmupManifest } from '../../src/index.js'
import { createSchema, openPostgres, type TestDatabase } from '../harness/database.js'
import { closeClient, createClient, freshNamespace, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

let database: TestDatabase
let memcached: MemcachedCluster
const clients: Client[] = []
const photo = Buffer.from([7, 0, 255])
const born = new Date('1985-03-04T05:06:07.089Z')

beforeAll(async () => {
  ;[database, memcached] = await Promise.all([openPostgres(), startMemcached(3)])
  const setup = createClient(database, {})
  await createSchema(setup.db)
  await setup.db
    .insertInto('person')
    .values([
      { first_name: 'Ada', born, big: 9007199254740993n, photo, meta: { a: [1, null] } },
      { first_name: 'Grace', born: new Date('1906-12-09T00:00:00Z'), big: 2n, photo: null, meta: null },
    ])
    .execute()
  // A function that writes although its call reads like a select: only the read-only transaction stops it.
  await sql`create function sneaky_write() returns int language sql volatile as $$ insert into pet (owner_id, name) values (1, 'sneaky') returning 1 $$`.execute(setup.db)
  await closeClient(setup)
})

afterAll(async () => {
  await Promise.all(clients.map(closeClient))
  await memcached?.stopAll()
  await database?.close()
})

function client(namespace: string): Client {
  const made = createClient(database, { servers: memcached.servers, namespace, statistics: { shareEveryMs: false } })
  clients.push(made)
  return made
}

const queries = (c: Client) => [
  () => c.db.selectFrom('person').selectAll().where('born', '<', new Date('2000-01-01T00:00:00Z')).orderBy('id').cached({ tags: ['people'] }),
  () => c.db.selectFrom('person').select(['id', 'big']).where('big', '=', 9007199254740993n).cached(),
  () => c.db.selectFrom('person').select(['id', 'first_name', 'photo']).where('photo', '=', photo).cached({ ttl: 120 }),
]

describe('warm-up', () => {
  it('round-trips export → import → warmup on flushed memcached: every warmed query is then a hit with equal rows', async () => {
    const namespace = freshNamespace()
    const source = client(namespace)
    const expected: unknown[][] = []
    for (const query of queries(source)) {
      expected.push(await query().execute())
      await query().execute()
    }
    const manifest = await source.cache.exportWarmupManifest()
    expect(manifest.version).toBe(1)
    expect(manifest.entries).toHaveLength(3)
    const text = serializeManifest(manifest)

    await Promise.all(memcached.nodes.map((node) => node.flush()))
    const target = client(namespace)
    const imported = target.cache.importWarmupManifest(text)
    const progress: number[] = []
    const report = await target.cache.warmup(imported, { db: target.db, concurrency: 2, onProgress: (p) => progress.push(p.done) })
    expect(report).toMatchObject({ total: 3, warmed: 3, skipped: 0, failed: 0, aborted: 0 })
    expect(progress.sort()).toEqual([1, 2, 3])

    target.executions.reset()
    const rows = []
    for (const query of queries(target)) rows.push(await query().execute())
    expect(target.executions.count()).toBe(0)
    expect(target.cache.stats().hits).toBe(3)
    expect(rows).toEqual(expected)
    const ada = rows[0]![0] as unknown as { born: Date; big: bigint; photo: Buffer }
    expect(ada.born).toBeInstanceOf(Date)
    expect(ada.big).toBe(9007199254740993n)
    expect(Buffer.isBuffer(ada.photo)).toBe(true)
  })

  it('replays read-only: an entry whose function writes fails, and nothing is written', async () => {
    const namespace = freshNamespace()
    const c = client(namespace)
    const manifest: WarmupManifest = {
      version: 1,
      namespace,
      createdAt: new Date().toISOString(),
      entries: [
        { key: 'k1', sql: 'select sneaky_write() as n', parameters: [], tables: [], tags: [], ttl: 60, score: 10 },
        { key: 'k2', sql: 'select count(*) as n from pet', parameters: [], tables: [`${database.schema}.pet`], tags: [], ttl: 60, score: 5 },
      ],
    }
    const report = await c.cache.warmup(manifest, { db: c.db })
    expect(report).toMatchObject({ total: 2, warmed: 1, failed: 1 })
    expect(report.failures[0]!.error).toMatch(/read-only transaction/)
    const pets = await c.db.selectFrom('pet').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow()
    expect(Number(pets.n)).toBe(0)
  })

  it('refuses a manifest entry that is not a single SELECT before running anything', async () => {
    const c = client(freshNamespace())
    const bad = (sqlText: string) => ({
      version: 1,
      namespace: c.cache.namespace,
      createdAt: new Date().toISOString(),
      entries: [{ key: 'k', sql: sqlText, parameters: [], tables: [], tags: [], ttl: 60, score: 1 }],
    })
    await expect(c.cache.warmup(bad('delete from pet'), { db: c.db })).rejects.toThrow(/entries\[0\]/)
    await expect(c.cache.warmup(bad('select 1; delete from pet'), { db: c.db })).rejects.toThrow(/single/)
    expect(() => c.cache.importWarmupManifest({ version: 2 })).toThrow(/version 2 is not supported/)
    c.executions.reset()
    await expect(c.cache.warmup(bad('update pet set name = name'), { db: c.db })).rejects.toThrow()
    expect(c.executions.count()).toBe(0)
  })

  it('needs a Kysely instance wrapped by this cache', async () => {
    const c = client(freshNamespace())
    const other = client(freshNamespace())
    const manifest: WarmupManifest = {
      version: 1,
      namespace: c.cache.namespace,
      createdAt: new Date().toISOString(),
      entries: [{ key: 'k', sql: 'select 1 as one', parameters: [], tables: [], tags: [], ttl: 60, score: 1 }],
    }
    await expect(c.cache.warmup(manifest, { db: other.db })).rejects.toThrow(/wrapped by this cache/)
  })

  it('ranks hot queries by requests × database time', async () => {
    const c = client(freshNamespace())
    const cheap = () => c.db.selectFrom('person').select('id').where('id', '=', 1).cached()
    const expensive = () =>
      // 0.6 s: 30 requests of the cheap query outrank one of these only if each took over 20 ms, which a loaded CI machine cannot push it to.
      c.db.selectFrom('person').select(['id', sql<string>`pg_sleep(0.6)::text`.as('slept')]).where('id', '=', 2).cached({ ttl: 1 })
    await expensive().execute()
    for (let i = 0; i < 30; i++) await cheap().execute()
    const [first, second] = c.cache.hotQueries({ limit: 2 })
    expect(first!.sql).toContain('pg_sleep')
    expect(second!.sql).not.toContain('pg_sleep')
    expect(first!.score).toBeGreaterThan(second!.score)
  })
})
