import type { Dialect } from 'kysely'
import { Kysely } from 'kysely'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createQueryCache, InvalidationFailedError, type MemcachedStore, type QueryCache } from '../../src/index.js'
import { beforeEachStatement, createSchema, openPostgres, type DB, type TestDatabase } from '../harness/database.js'
import { freshNamespace } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

/**
 * The stale read of issue 8, reproduced in one process: a read that starts after
 * a write returned must not join a flight whose query took its snapshot before
 * that write, when the reader cannot prove (by generations a majority holds)
 * that no write came in between.
 */
describe('read-your-writes across caches that see different nodes', () => {
  let database: TestDatabase
  let memcached: MemcachedCluster
  const open: Array<{ db: Kysely<DB>; cache: QueryCache }> = []

  beforeAll(async () => {
    ;[database, memcached] = await Promise.all([openPostgres(), startMemcached(3)])
    const { db } = client({ servers: memcached.servers, namespace: 'setup' })
    await createSchema(db)
    await db.insertInto('person').values({ first_name: 'v0' }).execute()
  })

  afterEach(async () => {
    await memcached.nodes[0]!.resume()
  })

  afterAll(async () => {
    for (const { db, cache } of open) {
      await db.destroy()
      await cache.close()
    }
    await memcached?.stopAll()
    await database?.close()
  })

  /** A client whose selects answer `delayMs` after the database did: its snapshot is older than its answer. */
  function client(options: Parameters<typeof createQueryCache>[0], delayMs = 0) {
    const errors: unknown[] = []
    const cache = createQueryCache({ defaultSchema: database.schema, retryAfterMs: 60_000, onError: (error) => errors.push(error), ...options })
    const db = new Kysely<DB>({ dialect: cache.wrapDialect(delayedSelects(database.dialect(), delayMs)) })
    open.push({ db, cache })
    return { db, cache, errors }
  }

  const read = (db: Kysely<DB>) => db.selectFrom('person').select('first_name').where('id', '=', 1).cached().executeTakeFirstOrThrow()

  it.each([
    {
      name: 'every home is off the reader ring (it saw the nodes die; they came straight back)',
      fault: (reader: QueryCache) => (reader.store as MemcachedStore).holdDown(new Set(memcached.servers), 'probe'),
    },
    {
      name: 'one node hangs (SIGSTOP) for every process',
      fault: () => memcached.nodes[0]!.pause(),
    },
  ])('a read after a write returned sees it when $name', async ({ fault }) => {
    const namespace = freshNamespace()
    const writer = client({ servers: memcached.servers, namespace, failureThreshold: 1000 })
    const reader = client({ servers: memcached.servers, namespace, failureThreshold: 1000 }, 800)
    await writer.db.updateTable('person').set({ first_name: 'v0' }).where('id', '=', 1).execute()
    await fault(reader.cache)

    const slow = read(reader.db)
    await new Promise((resolve) => setTimeout(resolve, 450))
    // The slow read's query has run (snapshot: v0) and is still on its way back.
    await writer.db.updateTable('person').set({ first_name: 'v1' }).where('id', '=', 1).execute()
    const after = read(reader.db)
    expect((await slow).first_name).toBe('v0')
    expect((await after).first_name).toBe('v1')
    // And the cache serves nothing older afterwards, in either process.
    expect((await read(reader.db)).first_name).toBe('v1')
    expect((await read(writer.db)).first_name).toBe('v1')
    // The write's invalidation was recorded: no exception applies.
    expect(writer.errors.filter((error) => error instanceof InvalidationFailedError)).toEqual([])
  })
})

/** Selects of `person` answer `delayMs` after the database did: their snapshot is older than their answer. */
function delayedSelects(dialect: Dialect, delayMs: number): Dialect {
  return beforeEachStatement(
    dialect,
    () => {},
    undefined,
    async (compiled) => {
      if (delayMs > 0 && /^select .* from "person"/i.test(compiled.sql)) await new Promise((resolve) => setTimeout(resolve, delayMs))
    },
  )
}
