import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import Cursor from 'pg-cursor'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createQueryCache } from '../../src/index.js'
import { createSchema, DATABASE_URL, openPostgres, type DB, type TestDatabase } from '../harness/database.js'
import { freshNamespace } from '../harness/farm.js'

let database: TestDatabase
let pool: pg.Pool

beforeAll(async () => {
  database = await openPostgres()
  pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2, options: `-c search_path=${database.schema}` })
  const setup = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
  await createSchema(setup)
  await setup.insertInto('person').values([{ first_name: 'Ada' }, { first_name: 'Grace' }]).execute()
})

afterAll(async () => {
  await pool?.end()
  await database?.close()
})

it('streams a .cached() query from the database every time, counted as bypassed, with no "not wrapped" warning', async () => {
  const warnings: Error[] = []
  const onWarning = (warning: Error) => warnings.push(warning)
  process.on('warning', onWarning)
  const cache = createQueryCache({ defaultSchema: database.schema, namespace: freshNamespace() })
  const db = new Kysely<DB>({ dialect: cache.wrapDialect(new PostgresDialect({ pool, cursor: Cursor })) })
  try {
    const streamed = async () => {
      const names: string[] = []
      for await (const row of db.selectFrom('person').select('first_name').orderBy('id').cached().stream(1)) names.push(row.first_name)
      return names
    }
    expect(await streamed()).toEqual(['Ada', 'Grace'])
    // Changed behind the cache's back (no invalidation): only a stream from the database sees it.
    await pool.query(`update ${database.schema}.person set first_name = 'Grace H.' where first_name = 'Grace'`)
    expect(await streamed()).toEqual(['Ada', 'Grace H.'])
    expect(cache.stats().bypassed).toBe(2)
    await new Promise((resolve) => setImmediate(resolve))
    expect(warnings.filter((w) => (w as { code?: string }).code === 'KYSELY_MEMCACHE_UNWRAPPED')).toEqual([])
  } finally {
    process.off('warning', onWarning)
    await cache.close()
  }
})
