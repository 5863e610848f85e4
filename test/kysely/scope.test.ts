import { CompiledQuery, Kysely, PostgresDialect, sql, type DatabaseConnection, type Dialect } from 'kysely'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createQueryCache, type QueryCache } from '../../src/index.js'
import { createSchema, DATABASE_URL, ExecutionCounter, openPglite, type DB, type TestDatabase } from '../harness/database.js'
import { closeClient, createClient, freshNamespace, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

/** A fragment of the query that learns a connection's scope, to count how often it reaches the database. */

interface Tenant {
  readonly db: Kysely<DB>
  readonly cache: QueryCache
  readonly executions: ExecutionCounter
}

const unique = `kmc_scope_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
const schemaA = `${unique}_a`
const schemaB = `${unique}_b`
const databases = [`${unique}_d1`, `${unique}_d2`] as const

function urlOf(database: string): string {
  const url = new URL(DATABASE_URL)
  url.pathname = `/${database}`
  return url.toString()
}

async function admin<T>(work: (client: pg.Client) => Promise<T>, database?: string): Promise<T> {
  const client = new pg.Client({ connectionString: database === undefined ? DATABASE_URL : urlOf(database) })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

describe('key scope on postgres', () => {
  let memcached: MemcachedCluster
  const pools: pg.Pool[] = []
  const tenants: Tenant[] = []
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => {
    warnings.push(warning)
  }

  function dialect(options: {
    searchPath: string
    database?: string
    max?: number
    onCreateConnection?: (connection: DatabaseConnection) => Promise<void>
    onReserveConnection?: (connection: DatabaseConnection) => Promise<void>
  }): Dialect {
    const pool = new pg.Pool({
      connectionString: options.database === undefined ? DATABASE_URL : urlOf(options.database),
      max: options.max ?? 4,
      options: `-c search_path=${options.searchPath}`,
    })
    pools.push(pool)
    const { onCreateConnection, onReserveConnection } = options
    return new PostgresDialect({
      pool,
      ...(onCreateConnection === undefined ? {} : { onCreateConnection }),
      ...(onReserveConnection === undefined ? {} : { onReserveConnection }),
    })
  }

  function tenant(namespace: string, inner: Dialect, wrapOptions?: { scope?: string; searchPath?: string[] }): Tenant {
    const cache = createQueryCache({ servers: memcached.servers, namespace })
    const executions = new ExecutionCounter()
    const wrap = cache.wrapDialect as (dialect: Dialect, options?: object) => Dialect
    const db = new Kysely<DB>({ dialect: wrapOptions === undefined ? wrap(executions.wrap(inner)) : wrap(executions.wrap(inner), wrapOptions) })
    const made = { db, cache, executions }
    tenants.push(made)
    return made
  }

  const names = async (t: Tenant) =>
    (await t.db.selectFrom('person').select('first_name').orderBy('id').cached().execute()).map((row) => row.first_name)

  beforeAll(async () => {
    memcached = await startMemcached(2)
    await admin(async (client) => {
      for (const [schema, rows] of [[schemaA, ['Ada', 'Alan']], [schemaB, ['Barbara', 'Bob']]] as const) {
        await client.query(`create schema ${schema}`)
        await client.query(`create table ${schema}.person (id serial primary key, first_name text not null)`)
        await client.query(`insert into ${schema}.person (first_name) values ($1), ($2)`, [...rows])
      }
      for (const database of databases) await client.query(`create database ${database}`)
    })
    for (const [database, rows] of [[databases[0], ['Dora', 'Dan']], [databases[1], ['Erin', 'Ed']]] as const) {
      await admin(async (client) => {
        await client.query('create table public.person (id serial primary key, first_name text not null)')
        await client.query('insert into public.person (first_name) values ($1), ($2)', [...rows])
      }, database)
    }
    process.on('warning', onWarning)
  })

  afterEach(async () => {
    warnings.length = 0
    // Tests rename rows; put them back.
    await admin(async (client) => {
      await client.query(`update ${schemaA}.person set first_name = case id when 1 then 'Ada' else 'Alan' end`)
      await client.query(`update ${schemaB}.person set first_name = case id when 1 then 'Barbara' else 'Bob' end`)
    })
  })

  afterAll(async () => {
    process.off('warning', onWarning)
    await Promise.all(tenants.map(async (t) => {
      await t.db.destroy()
      await t.cache.close()
    }))
    await Promise.all(pools.map((pool) => pool.end().catch(() => {})))
    await admin(async (client) => {
      await client.query(`drop schema if exists ${schemaA} cascade`)
      await client.query(`drop schema if exists ${schemaB} cascade`)
      for (const database of databases) await client.query(`drop database if exists ${database}`)
    })
    await memcached?.stopAll()
  })

  it('gives two pools with different search_paths, sharing a namespace, each its own rows', async () => {
    const namespace = freshNamespace()
    const a = tenant(namespace, dialect({ searchPath: schemaA }))
    const b = tenant(namespace, dialect({ searchPath: schemaB }))
    expect(await names(a)).toEqual(['Ada', 'Alan'])
    expect(await names(b)).toEqual(['Barbara', 'Bob'])
    expect(b.executions.count('from "person"')).toBe(1)
    // Each is still cached for its own scope.
    a.executions.reset()
    b.executions.reset()
    expect(await names(a)).toEqual(['Ada', 'Alan'])
    expect(await names(b)).toEqual(['Barbara', 'Bob'])
    expect(a.executions.count()).toBe(0)
    expect(b.executions.count()).toBe(0)
  })

  it('never serves the rows of one database to a pool on another, sharing a namespace', async () => {
    const namespace = freshNamespace()
    const one = tenant(namespace, dialect({ searchPath: 'public', database: databases[0] }))
    const two = tenant(namespace, dialect({ searchPath: 'public', database: databases[1] }))
    expect(await names(one)).toEqual(['Dora', 'Dan'])
    expect(await names(two)).toEqual(['Erin', 'Ed'])
    expect(two.executions.count('from "person"')).toBe(1)
  })

  it("invalidates tenant A's cached read on A's write, and not B's read of its own person table", async () => {
    const namespace = freshNamespace()
    const a = tenant(namespace, dialect({ searchPath: schemaA }))
    const b = tenant(namespace, dialect({ searchPath: schemaB }))
    expect(await names(a)).toEqual(['Ada', 'Alan'])
    expect(await names(b)).toEqual(['Barbara', 'Bob'])
    await a.db.updateTable('person').set({ first_name: 'Ada L.' }).where('id', '=', 1).execute()
    a.executions.reset()
    b.executions.reset()
    expect(await names(a)).toEqual(['Ada L.', 'Alan'])
    expect(a.executions.count('from "person"')).toBe(1)
    // The search paths share no schema: A's person cannot be B's, so B's entry stays.
    expect(await names(b)).toEqual(['Barbara', 'Bob'])
    expect(b.executions.count()).toBe(0)
  })

  it("invalidates B's read too when both search paths hold a shared schema the table could be in", async () => {
    const namespace = freshNamespace()
    const a = tenant(namespace, dialect({ searchPath: `${schemaA},public` }))
    const b = tenant(namespace, dialect({ searchPath: `${schemaB},public` }))
    expect(await names(a)).toEqual(['Ada', 'Alan'])
    expect(await names(b)).toEqual(['Barbara', 'Bob'])
    await a.db.updateTable('person').set({ first_name: 'Ada L.' }).where('id', '=', 1).execute()
    b.executions.reset()
    expect(await names(b)).toEqual(['Barbara', 'Bob'])
    expect(b.executions.count('from "person"')).toBe(1)
  })

  it("reaches a tenant's unqualified read from a schema-qualified write through another dialect, and back", async () => {
    const namespace = freshNamespace()
    const a = tenant(namespace, dialect({ searchPath: schemaA }))
    const operator = tenant(namespace, dialect({ searchPath: 'public' }))
    const qualified = () =>
      operator.db.withSchema(schemaA).selectFrom('person').select('first_name').orderBy('id').cached().execute()
    expect(await names(a)).toEqual(['Ada', 'Alan'])
    expect((await qualified()).map((row) => row.first_name)).toEqual(['Ada', 'Alan'])

    await operator.db.withSchema(schemaA).updateTable('person').set({ first_name: 'Ada L.' }).where('id', '=', 1).execute()
    expect(await names(a)).toEqual(['Ada L.', 'Alan'])

    await a.db.updateTable('person').set({ first_name: 'Alan T.' }).where('id', '=', 2).execute()
    expect((await qualified()).map((row) => row.first_name)).toEqual(['Ada L.', 'Alan T.'])
  })

  it('keys by an explicit scope without asking the database, sharing entries between dialects of one scope', async () => {
    const namespace = freshNamespace()
    const a1 = tenant(namespace, dialect({ searchPath: schemaA }), { scope: 'tenant-a', searchPath: [schemaA] })
    const a2 = tenant(namespace, dialect({ searchPath: schemaA }), { scope: 'tenant-a', searchPath: [schemaA] })
    const b = tenant(namespace, dialect({ searchPath: schemaB }), { scope: 'tenant-b', searchPath: [schemaB] })
    expect(await names(a1)).toEqual(['Ada', 'Alan'])
    expect(await names(a2)).toEqual(['Ada', 'Alan'])
    expect(a2.executions.count()).toBe(0)
    expect(a2.executions.acquisitions).toBe(0)
    expect(await names(b)).toEqual(['Barbara', 'Bob'])
    expect(a1.executions.scopeQueries + b.executions.scopeQueries).toBe(0)

    // Its declared search path tells which table an unqualified name is.
    const operator = tenant(namespace, dialect({ searchPath: 'public' }))
    await operator.db.withSchema(schemaB).updateTable('person').set({ first_name: 'Barbara L.' }).where('id', '=', 1).execute()
    expect(await names(b)).toEqual(['Barbara L.', 'Bob'])
    expect(await names(a2)).toEqual(['Ada', 'Alan'])
  })

  it('rejects wrapDialect scope options that are not what they should be, naming the option and value', () => {
    const cache = createQueryCache({ namespace: freshNamespace() })
    const inner = dialect({ searchPath: 'public' })
    const wrap = cache.wrapDialect as (dialect: Dialect, options?: unknown) => Dialect
    expect(() => wrap(inner, { scope: '' })).toThrow(/scope must be a non-empty string.*got ""/)
    expect(() => wrap(inner, { scope: 42 })).toThrow(/scope must be a non-empty string.*got 42/)
    expect(() => wrap(inner, { scope: 'a', searchPath: 'x' })).toThrow(/searchPath must be an array of non-empty strings, got "x"/)
    expect(() => wrap(inner, { scope: 'a', searchPath: ['x', ''] })).toThrow(/searchPath\[1\] must be a non-empty string, got ""/)
    expect(() => wrap(inner, { searchPath: ['x'] })).toThrow(/searchPath applies with an explicit scope only/)
    expect(() => wrap(inner, { scpoe: 'a' })).toThrow(/unknown option "scpoe" for wrapDialect/)
    expect(() => wrap(inner, 'tenant-a')).toThrow(/wrapDialect options must be an object, got "tenant-a"/)
  })

  it('learns the scope once per physical connection, not per statement', async () => {
    const a = tenant(freshNamespace(), dialect({ searchPath: schemaA, max: 1 }))
    for (let id = 1; id <= 2; id++) {
      await a.db.selectFrom('person').selectAll().where('id', '=', id).cached().execute()
      await a.db.selectFrom('person').selectAll().where('id', '=', id).execute()
      await a.db.updateTable('person').set({ first_name: sql`first_name` }).where('id', '=', id).execute()
    }
    expect(a.executions.acquisitions).toBeGreaterThan(3)
    expect(a.executions.scopeQueries).toBe(1)
  })

  it('does not store from a connection whose search_path differs from the learned scope, and warns once', async () => {
    let created = 0
    const a = tenant(
      freshNamespace(),
      dialect({
        searchPath: schemaA,
        max: 2,
        // The pool's second connection lands in tenant B's schema.
        onCreateConnection: async (connection) => {
          if (created++ > 0) await connection.executeQuery(CompiledQuery.raw(`set search_path to ${schemaB}`))
        },
      }),
    )
    expect(await names(a)).toEqual(['Ada', 'Alan'])
    const byId = () => a.db.selectFrom('person').select('first_name').where('id', '=', 1).cached().execute()
    await a.db.connection().execute(async (held) => {
      // Holds the first connection, so the reads below take the second.
      await sql`select 1`.execute(held)
      expect(await byId()).toEqual([{ first_name: 'Barbara' }])
      expect(await byId()).toEqual([{ first_name: 'Barbara' }])
    })
    expect(created).toBe(2)
    expect(a.executions.count('where "id" =')).toBe(2)
    const mismatch = warnings.filter((w) => (w as Error & { code?: string }).code === 'KYSELY_MEMCACHE_SCOPE_MISMATCH')
    expect(mismatch).toHaveLength(1)
    expect(mismatch[0]!.message).toContain(schemaB)
  })

  it('does not store from a connection the pool switches to another search_path on a later checkout', async () => {
    let checkouts = 0
    const a = tenant(
      freshNamespace(),
      dialect({
        searchPath: 'public',
        max: 1,
        // Per-request tenant switching: A, then B, then A again on the one connection.
        onReserveConnection: async (connection) => {
          const schema = checkouts++ % 2 === 0 ? schemaA : schemaB
          await connection.executeQuery(CompiledQuery.raw(`set search_path to ${schema}`))
        },
      }),
    )
    expect(await names(a)).toEqual(['Ada', 'Alan'])
    const byId = () => a.db.selectFrom('person').select('first_name').where('id', '=', 2).cached().execute()
    expect(await byId()).toEqual([{ first_name: 'Bob' }])
    // Tenant B's row must not come back as tenant A's.
    expect(await byId()).toEqual([{ first_name: 'Alan' }])
    expect(a.executions.count('where "id" =')).toBe(2)
  })

  it.each([
    { how: 'set search_path', statement: (schema: string) => sql.raw(`set search_path to ${schema}`) },
    { how: 'set_config', statement: (schema: string) => sql`select set_config('search_path', ${schema}, false)` },
  ])('neither serves nor stores on a connection after a raw $how', async ({ statement }) => {
    const a = tenant(freshNamespace(), dialect({ searchPath: schemaA, max: 1 }))
    expect(await names(a)).toEqual(['Ada', 'Alan'])
    const byId = (db: Kysely<DB>) => db.selectFrom('person').select('first_name').where('id', '=', 2).cached().execute()
    await a.db.connection().execute(async (held) => {
      await statement(schemaB).execute(held)
      // A's cached entry is not this session's truth any more.
      expect(await names({ ...a, db: held })).toEqual(['Barbara', 'Bob'])
      expect(await byId(held)).toEqual([{ first_name: 'Bob' }])
    })
    // The pool's one connection keeps tenant B's search_path: nothing read on it is stored.
    expect(await byId(a.db)).toEqual([{ first_name: 'Bob' }])
    expect(await byId(a.db)).toEqual([{ first_name: 'Bob' }])
    expect(a.executions.count('where "id" =')).toBe(3)
    const changed = warnings.filter((w) => (w as Error & { code?: string }).code === 'KYSELY_MEMCACHE_SCOPE_CHANGED')
    expect(changed).toHaveLength(1)
  })
})

describe('key scope on pglite', () => {
  let memcached: MemcachedCluster
  const databases: TestDatabase[] = []
  const clients: Client[] = []

  beforeAll(async () => {
    memcached = await startMemcached(1)
    for (const name of ['Ada', 'Erin']) {
      const database = await openPglite()
      databases.push(database)
      const setup = createClient(database, {})
      await createSchema(setup.db)
      await setup.db.insertInto('person').values({ first_name: name }).execute()
      await closeClient(setup)
    }
  })

  afterAll(async () => {
    await Promise.all(clients.map(closeClient))
    await Promise.all(databases.map((database) => database.close()))
    await memcached?.stopAll()
  })

  it('keeps two PGlite databases sharing a namespace apart, and hits connection-free once the scope is learned', async () => {
    const namespace = freshNamespace()
    const [one, two] = databases.map((database) => createClient(database, { servers: memcached.servers, namespace })) as [Client, Client]
    clients.push(one, two)
    const first = (c: Client) => c.db.selectFrom('person').select('first_name').cached().executeTakeFirstOrThrow()
    expect(await first(one)).toEqual({ first_name: 'Ada' })
    expect(await first(two)).toEqual({ first_name: 'Erin' })
    expect(two.executions.count('from "person"')).toBe(1)
    one.executions.reset()
    expect(await first(one)).toEqual({ first_name: 'Ada' })
    expect(one.executions.acquisitions).toBe(0)
  })
})
