/**
 * `wrapDialect(dialect, { cacheAll })` on real PostgreSQL and memcached: every
 * select outside a transaction is cached unless it cannot be, `.cached(false)`
 * opts out and `.cached({ … })` overrides. Statements are counted below the cache.
 * (Streams bypass the cache whatever the marks: test/kysely/stream.test.ts.)
 */
import { Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createQueryCache, type QueryCache } from '../../src/index.js'
import { createSchema, ExecutionCounter, openPostgres, type DB, type TestDatabase } from '../harness/database.js'
import { freshNamespace } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

let database: TestDatabase
let memcached: MemcachedCluster
let cache: QueryCache
let db: Kysely<DB>
const executions = new ExecutionCounter()

beforeAll(async () => {
  ;[database, memcached] = await Promise.all([openPostgres(), startMemcached(1)])
  cache = createQueryCache({ servers: memcached.servers, namespace: freshNamespace(), defaultSchema: database.schema })
  db = new Kysely<DB>({ dialect: cache.wrapDialect(executions.wrap(database.dialect()), { cacheAll: { ttl: 30 } }) })
  await createSchema(db)
  await db.insertInto('person').values([{ first_name: 'Ada' }, { first_name: 'Grace' }]).execute()
})

afterAll(async () => {
  await db?.destroy()
  await cache?.close()
  await memcached?.stopAll()
  await database?.close()
})

/** Runs `query` three times; how many of them reached the database. */
async function databaseRuns(query: () => Promise<unknown>): Promise<number> {
  executions.reset()
  for (let i = 0; i < 3; i++) await query()
  return executions.statements.length
}

describe('cacheAll', () => {
  it('caches a select that says nothing, and a write to its table invalidates it', async () => {
    const names = () => db.selectFrom('person').select('first_name').orderBy('id').execute()
    expect(await databaseRuns(names)).toBe(1)
    await db.updateTable('person').set({ first_name: 'Ada L.' }).where('id', '=', 1).execute()
    executions.reset()
    expect((await names())[0]!.first_name).toBe('Ada L.')
    expect(executions.count('select')).toBe(1)
  })

  it('leaves a query that says .cached(false) uncached', async () => {
    expect(await databaseRuns(() => db.selectFrom('person').select('id').where('id', '=', 2).cached(false).execute())).toBe(3)
  })

  it("lets a query's own .cached({ … }) override it", async () => {
    const tagged = () => db.selectFrom('person').select('id').where('id', '=', 1).cached({ tags: ['people'] }).execute()
    expect(await databaseRuns(tagged)).toBe(1)
    await cache.invalidate({ tags: ['people'] })
    expect(await databaseRuns(tagged)).toBe(1)
  })

  it('runs what cannot be cached as it is: volatile functions, raw SQL, transactions, row locks', async () => {
    expect(await databaseRuns(() => db.selectFrom('person').select(sql<number>`random()`.as('r')).execute())).toBe(3)
    expect(await databaseRuns(() => sql`select first_name from person`.execute(db))).toBe(3)
    expect(
      await databaseRuns(() => db.transaction().execute((trx) => trx.selectFrom('person').select('id').where('id', '=', 2).execute())),
    ).toBe(3 * 3) // begin, the select, commit
    expect(await databaseRuns(() => db.selectFrom('person').select('id').where('id', '=', 1).forUpdate().execute())).toBe(3)
    const stats = cache.stats()
    expect(stats.uncacheable).toBeGreaterThanOrEqual(3)
  })

  it('rejects bad options by name', () => {
    expect(() => cache.wrapDialect(database.dialect(), { cacheAll: { ttl: -1 } })).toThrow(/ttl must be a finite number of seconds/)
    expect(() => cache.wrapDialect(database.dialect(), { cacheAll: { tll: 5 } as never })).toThrow('unknown option "tll" for cacheAll')
    expect(() => db.selectFrom('person').selectAll().cached({ tll: 5 } as never)).toThrow('unknown option "tll" for .cached()')
  })
})
