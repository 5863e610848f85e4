/**
 * examples/web-farm/cache-outcome.ts: the web farm's `x-cache` header and the
 * drill's hit / stale / miss latencies rest on it. Each request's outcome must come
 * from its own queries only, however many requests are in flight at once.
 */
import { Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createQueryCache, type QueryCache } from '../../src/index.js'
import { trackCacheOutcome, type CacheOutcome } from '../../examples/web-farm/cache-outcome.js'
import { createSchema, openPglite, type DB, type TestDatabase } from '../harness/database.js'

let database: TestDatabase
let cache: QueryCache
let db: Kysely<DB>

beforeAll(async () => {
  database = await openPglite()
  const plain = new Kysely<DB>({ dialect: database.dialect() })
  await createSchema(plain)
  await plain.insertInto('person').values([{ first_name: 'Ada' }, { first_name: 'Grace' }]).execute()
  await plain.destroy()
  // No early refresh and no jitter: the entry expires exactly at its TTL.
  cache = createQueryCache({ namespace: 'cache-outcome', earlyRefresh: false, ttlJitter: 0 })
  db = new Kysely<DB>({ dialect: cache.wrapDialect(database.dialect()) })
})

afterAll(async () => {
  await db?.destroy()
  await cache?.close()
  await database?.close()
})

const person = (id: number, ttl = 30, swr = 0) => db.selectFrom('person').select('first_name').where('id', '=', id).cached({ ttl, swr }).execute()

async function outcomeOf(run: () => Promise<unknown>): Promise<CacheOutcome> {
  const tracked = trackCacheOutcome(run)
  await tracked.result
  return tracked.outcome()
}

describe('trackCacheOutcome', () => {
  it('tells a miss, a hit, a stale answer (swr) and a request without cached queries apart', async () => {
    expect(await outcomeOf(() => person(1, 1, 30))).toBe('miss')
    expect(await outcomeOf(() => person(1, 1, 30))).toBe('hit')
    await new Promise((resolve) => setTimeout(resolve, 1200))
    expect(await outcomeOf(() => person(1, 1, 30))).toBe('stale')
    expect(await outcomeOf(() => sql`select 1`.execute(db))).toBe('none')
  })

  it('keeps concurrent requests apart, and a request with a hit and a miss is a miss', async () => {
    await person(2)
    const [hit, miss, both] = await Promise.all([
      outcomeOf(async () => {
        await new Promise((resolve) => setTimeout(resolve, 5))
        return person(2)
      }),
      outcomeOf(() => db.selectFrom('person').select('id').where('first_name', '=', 'Grace').cached({ ttl: 30 }).execute()),
      outcomeOf(() => Promise.all([person(2), db.selectFrom('pet').selectAll().cached({ ttl: 30 }).execute()])),
    ])
    expect(hit).toBe('hit')
    expect(miss).toBe('miss')
    expect(both).toBe('miss')
  })

  it('ignores what a request published after it answered', async () => {
    const tracked = trackCacheOutcome(async () => {
      void new Promise((resolve) => setTimeout(resolve, 20)).then(() => db.selectFrom('pet').select('id').where('id', '=', 7).cached({ ttl: 30 }).execute())
    })
    await tracked.result
    expect(tracked.outcome()).toBe('none')
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(tracked.outcome()).toBe('none')
  })
})
