import { CamelCasePlugin, sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, expectTypeOf, it } from 'vitest'
import { cached, declareWrites, MemcachedStore } from '../../src/index.js'
import { tableGenerationKey } from '../../src/keys.js'
import { createSchema, openPglite, openPostgres, type TestDatabase } from '../harness/database.js'
import { closeClient, createClient, freshNamespace, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

const photo = Buffer.from([0, 1, 2, 254, 255])
const born = new Date('1990-05-17T08:30:00.123Z')

describe.each([
  { name: 'postgres', open: openPostgres },
  { name: 'pglite', open: openPglite },
])('query cache on $name with memcached', ({ open }) => {
  let database: TestDatabase
  let memcached: MemcachedCluster
  let clients: Client[] = []
  let a: Client
  let b: Client

  const client = (options: Parameters<typeof createClient>[1], plugins?: Parameters<typeof createClient>[2]) => {
    const made = createClient(database, { servers: memcached.servers, ...options }, plugins)
    clients.push(made)
    return made
  }

  beforeAll(async () => {
    ;[database, memcached] = await Promise.all([open(), startMemcached(3)])
    const setup = createClient(database, {})
    await createSchema(setup.db)
    await setup.db
      .insertInto('person')
      .values([
        { first_name: 'Ada', born, balance: '1234.50', big: 9007199254740993n, photo, meta: { tags: ['x', null], n: 1 }, nickname: null },
        { first_name: 'Grace', born: null, balance: null, big: null, photo: null, meta: null, nickname: 'amazing' },
      ])
      .execute()
    await setup.db.insertInto('pet').values({ owner_id: 1, name: 'Rex' }).execute()
    await closeClient(setup)
  })

  afterAll(async () => {
    await Promise.all(clients.map(closeClient))
    await memcached?.stopAll()
    await database?.close()
  })

  beforeEach(() => {
    const namespace = freshNamespace()
    a = client({ namespace })
    b = client({ namespace })
  })

  const people = (c: Client) => c.db.selectFrom('person').selectAll().orderBy('id').cached()

  it('serves a hit with rows equal to the database rows, types included, without a pool connection', async () => {
    const first = await people(a).execute()
    expect(a.executions.count('from "person"')).toBe(1)
    a.executions.reset()

    const second = await people(a).execute()
    expect(a.executions.count()).toBe(0)
    expect(a.executions.acquisitions).toBe(0)
    expect(second).toEqual(first)
    const ada = second[0]!
    expect(ada.born).toBeInstanceOf(Date)
    expect(ada.born!.getTime()).toBe(born.getTime())
    expect(ada.balance).toBe('1234.50')
    expect(ada.meta).toEqual({ tags: ['x', null], n: 1 })
    expect(Buffer.from(ada.photo!)).toEqual(photo)
    expect(Object.getPrototypeOf(ada.photo)).toBe(Object.getPrototypeOf(first[0]!.photo))
    expect(typeof ada.big).toBe(typeof first[0]!.big)
    expect(ada.big).toEqual(first[0]!.big)
    expect(second[1]!.nickname).toBe('amazing')
    expect(second[1]!.born).toBeNull()
  })

  it('serves a hit to another client of the farm', async () => {
    await people(a).execute()
    const rows = await people(b).execute()
    expect(b.executions.count()).toBe(0)
    expect(rows.map((r) => r.first_name)).toEqual(['Ada', 'Grace'])
  })

  it('applies result plugins such as CamelCasePlugin on hits too', async () => {
    const namespace = freshNamespace()
    const camel = client({ namespace }, [new CamelCasePlugin()])
    const query = () => camel.db.selectFrom('person').select(['id', 'firstName' as never]).orderBy('id').cached()
    const miss = (await query().execute()) as unknown as Array<Record<string, unknown>>
    const hit = (await query().execute()) as unknown as Array<Record<string, unknown>>
    expect(camel.executions.count('"first_name"')).toBe(1)
    expect(hit).toEqual(miss)
    expect(hit[0]).toHaveProperty('firstName', 'Ada')
  })

  it('keeps result types for execute, executeTakeFirst and executeTakeFirstOrThrow, with .cached() or $call(cached())', async () => {
    const one = await a.db.selectFrom('person').select('first_name').where('id', '=', 1).cached({ ttl: 30 }).executeTakeFirst()
    const sure = await a.db.selectFrom('person').select('first_name').where('id', '=', 1).$call(cached({ ttl: 30 })).executeTakeFirstOrThrow()
    expectTypeOf(one).toEqualTypeOf<{ first_name: string } | undefined>()
    expectTypeOf(sure).toEqualTypeOf<{ first_name: string }>()
    expect(one).toEqual({ first_name: 'Ada' })
    expect(sure).toEqual({ first_name: 'Ada' })
    // Same SQL, parameters and tags: the second form hits the first form's entry.
    expect(a.executions.count('from "person"')).toBe(1)
  })

  it('does not cache the same builder when it runs without .cached()', async () => {
    const base = a.db.selectFrom('person').selectAll().where('id', '=', 2)
    await base.cached().execute()
    await base.execute()
    await base.execute()
    await base.cached().execute()
    expect(a.executions.count('from "person"')).toBe(3)
  })

  it('invalidates a cached read in every client when any client writes the table', async () => {
    await people(a).execute()
    await people(b).execute()
    expect(b.executions.count()).toBe(0)

    await b.db.updateTable('person').set({ nickname: 'countess' }).where('id', '=', 1).execute()
    const afterWrite = await people(a).execute()
    expect(afterWrite[0]!.nickname).toBe('countess')
    expect(a.executions.count('from "person"')).toBe(2)

    await people(b).execute()
    expect(b.executions.count('select')).toBe(0)
    await b.db.updateTable('person').set({ nickname: null }).where('id', '=', 1).execute()
  })

  it('invalidates reads that join or subquery a written table, and leaves unrelated reads cached', async () => {
    const owners = () =>
      a.db
        .selectFrom('person')
        .innerJoin('pet', 'pet.owner_id', 'person.id')
        .select(['person.first_name', 'pet.name'])
        .cached()
    const withPets = () =>
      a.db
        .selectFrom('person')
        .select('first_name')
        .where('id', 'in', (qb) => qb.selectFrom('pet').select('owner_id'))
        .cached()
    const onlyPeople = () => a.db.selectFrom('person').select('id').cached()
    await Promise.all([owners().execute(), withPets().execute(), onlyPeople().execute()])
    a.executions.reset()

    await b.db.insertInto('pet').values({ owner_id: 2, name: 'Tom' }).execute()
    const [joined, sub] = await Promise.all([owners().execute(), withPets().execute(), onlyPeople().execute()])
    expect(joined).toHaveLength(2)
    expect(sub.map((r) => r.first_name).sort()).toEqual(['Ada', 'Grace'])
    expect(a.executions.count('"pet"')).toBe(2)
    expect(a.executions.count()).toBe(2)
    await b.db.deleteFrom('pet').where('name', '=', 'Tom').execute()
  })

  it('treats person and schema.person as one table', async () => {
    await people(a).execute()
    await b.db
      .withSchema(database.schema)
      .updateTable('person')
      .set({ balance: '1.00' })
      .where('id', '=', 2)
      .execute()
    const rows = await people(a).execute()
    expect(rows[1]!.balance).toBe('1.00')
    expect(a.executions.count('from "person"')).toBe(2)
  })

  it('invalidates through a write inside a CTE, and through returning', async () => {
    await people(a).execute()
    await b.db
      .with('changed', (db) => db.updateTable('person').set({ nickname: 'cte' }).where('id', '=', 2).returning('id'))
      .selectFrom('changed')
      .selectAll()
      .execute()
    expect((await people(a).execute())[1]!.nickname).toBe('cte')

    await b.db.updateTable('person').set({ nickname: 'amazing' }).where('id', '=', 2).returning('id').execute()
    expect((await people(a).execute())[1]!.nickname).toBe('amazing')
    expect(a.executions.count('from "person"')).toBe(3)
  })

  it('invalidates on commit of db.transaction(), and reads inside it go to the database and store nothing', async () => {
    await people(a).execute()
    await b.db.transaction().execute(async (trx) => {
      await trx.updateTable('person').set({ nickname: 'trx' }).where('id', '=', 2).execute()
      const inside = await trx.selectFrom('person').selectAll().orderBy('id').cached().execute()
      expect(inside[1]!.nickname).toBe('trx')
      // Not invalidated yet: other clients still see the committed state from the cache.
      const outside = await people(a).execute()
      expect(outside[1]!.nickname).toBe('amazing')
    })
    expect(b.cache.stats().bypassed).toBe(1)
    expect(b.cache.stats().stores).toBe(0)
    expect((await people(a).execute())[1]!.nickname).toBe('trx')
    expect(a.executions.count('from "person"')).toBe(2)
    await b.db.updateTable('person').set({ nickname: 'amazing' }).where('id', '=', 2).execute()
  })

  it('keeps the cache when a transaction rolls back, with db.transaction() and db.startTransaction()', async () => {
    await people(a).execute()
    await expect(
      b.db.transaction().execute(async (trx) => {
        await trx.updateTable('person').set({ nickname: 'never' }).execute()
        throw new Error('roll back')
      }),
    ).rejects.toThrow('roll back')
    const controlled = await b.db.startTransaction().execute()
    await controlled.updateTable('person').set({ nickname: 'never' }).execute()
    await controlled.rollback().execute()

    const rows = await people(a).execute()
    expect(rows[1]!.nickname).toBe('amazing')
    expect(a.executions.count('from "person"')).toBe(1)

    const committed = await b.db.startTransaction().execute()
    await committed.updateTable('person').set({ nickname: 'ctl' }).where('id', '=', 2).execute()
    await committed.commit().execute()
    expect((await people(a).execute())[1]!.nickname).toBe('ctl')
    await b.db.updateTable('person').set({ nickname: 'amazing' }).where('id', '=', 2).execute()
  })

  it('never caches raw SQL; a raw write invalidates the namespace unless it declares its tables', async () => {
    const pets = () => a.db.selectFrom('pet').selectAll().cached()
    await Promise.all([people(a).execute(), pets().execute()])
    await sql`select * from person`.execute(a.db)
    await sql`select * from person`.execute(a.db)
    expect(a.executions.count('select * from person')).toBe(2)

    await sql`update person set nickname = nickname`.withPlugin(declareWrites(['person'])).execute(b.db)
    await Promise.all([people(a).execute(), pets().execute()])
    expect(a.executions.count('from "person"')).toBe(2)
    expect(a.executions.count('from "pet"')).toBe(1)

    await sql`update pet set name = name`.execute(b.db)
    await Promise.all([people(a).execute(), pets().execute()])
    expect(a.executions.count('from "person"')).toBe(3)
    expect(a.executions.count('from "pet"')).toBe(2)
  })

  it('runs one database query for concurrent identical misses in one process', async () => {
    // The generations exist (another query made them): every miss reads the same ones.
    await a.db.selectFrom('person').select('id').cached().execute()
    a.executions.reset()
    const rows = await Promise.all(Array.from({ length: 20 }, () => people(a).execute()))
    expect(a.executions.count('from "person"')).toBe(1)
    for (const r of rows) expect(r).toEqual(rows[0])
    // Each caller gets its own rows, so one caller's mutation cannot leak to another.
    expect(rows[1]).not.toBe(rows[2])
  })

  it('serves a hit without waiting behind a slow query, even on a single-connection dialect', async () => {
    await people(a).execute()
    const slow = sql`select pg_sleep(0.5)`.execute(a.db)
    await new Promise((resolve) => setTimeout(resolve, 50))
    const started = performance.now()
    await people(a).execute()
    expect(performance.now() - started).toBeLessThan(200)
    await slow
  })

  it('does not serve a result computed by a query that raced a committed write', async () => {
    // The reader reads the generations, then its query sleeps while the writer commits.
    const slow = () =>
      a.db
        .selectFrom('person')
        .select(['nickname', sql<string>`pg_sleep(0.3)::text`.as('slept')])
        .where('id', '=', 2)
        .cached()
    const reading = slow().execute()
    await new Promise((resolve) => setTimeout(resolve, 100))
    await b.db.updateTable('person').set({ nickname: 'raced' }).where('id', '=', 2).execute()
    await reading
    const after = await slow().execute()
    expect(after[0]!.nickname).toBe('raced')
    expect(a.executions.count('pg_sleep')).toBe(2)
    await b.db.updateTable('person').set({ nickname: 'amazing' }).where('id', '=', 2).execute()
  })

  it('serves entries while a majority of a generation\'s homes hold it, and never once a majority lost it', async () => {
    await people(a).execute()
    const generationKey = tableGenerationKey(a.cache.namespace, `${database.schema}.person`)
    const before = (await a.cache.store.get(generationKey))!.toString()
    // Each node's copy, read through a store of that node alone (values are framed: raw text would not compare).
    const copyOn = async (node: MemcachedCluster['nodes'][number]): Promise<string | undefined> => {
      const single = new MemcachedStore({ servers: [node.address] })
      try {
        return (await single.get(generationKey))?.toString()
      } finally {
        await single.close()
      }
    }
    const evict = (node: MemcachedCluster['nodes'][number]) => node.command(`delete ${generationKey}\r\n`, /^(DELETED|NOT_FOUND)\r\n$/)

    // One copy evicted: the other two still agree, the entry still hits.
    await evict(memcached.nodes[0]!)
    await people(b).execute()
    expect(b.executions.count()).toBe(0)

    // A second copy gone: no majority holds it, so a fresh, never-used generation
    // replaces it and the old entry is not served (a copy could be older than a bump).
    await evict(memcached.nodes[1]!)
    await people(b).execute()
    expect(b.executions.count('from "person"')).toBe(1)
    const copies = await Promise.all(memcached.nodes.map(copyOn))
    // The fresh token went where the copies were missing; the old one stays in a minority.
    expect(copies.filter((copy) => copy === before)).toHaveLength(1)
    expect(new Set(copies.filter((copy) => copy !== before)).size).toBe(1)
    // The other client serves what b stored under the fresh generation.
    a.executions.reset()
    await people(a).execute()
    expect(a.executions.count('from "person"')).toBe(0)
  })

  it('does not store a result over the item size limit, and still returns it', async () => {
    // The near cache would keep it in this process: the store's limit is what is under test.
    const small = client({ namespace: freshNamespace(), maxValueBytes: 200, nearCache: false })
    const first = await small.db.selectFrom('person').selectAll().cached().execute()
    const second = await small.db.selectFrom('person').selectAll().cached().execute()
    expect(second).toEqual(first)
    expect(small.executions.count('from "person"')).toBe(2)
    expect(small.cache.stats().oversize).toBe(2)
    expect(small.cache.stats().stores).toBe(0)
  })
})
