/**
 * Design rule 11: a wrapped dialect keeps every promise Kysely makes. Each scenario
 * runs on the plain dialect and on the wrapped one, and the two must agree.
 */
import { Kysely, PostgresDialect, sql, type Dialect } from 'kysely'
import pg from 'pg'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createQueryCache, type QueryCache } from '../../src/index.js'
import { createSchema, DATABASE_URL, openPglite, openPostgres, type DB, type TestDatabase } from '../harness/database.js'
import { freshNamespace } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

type Wrapping = 'unwrapped' | 'wrapped'

describe.each([
  { name: 'postgres', open: openPostgres },
  { name: 'pglite', open: openPglite },
])('a wrapped dialect on $name', ({ name, open }) => {
  let database: TestDatabase
  let memcached: MemcachedCluster
  let cache: QueryCache
  let plain: Kysely<DB>
  const instances: Kysely<DB>[] = []
  const cacheErrors: unknown[] = []
  let runs = 0

  beforeAll(async () => {
    ;[database, memcached] = await Promise.all([open(), startMemcached(1)])
    plain = new Kysely<DB>({ dialect: database.dialect() })
    await createSchema(plain)
    cache = createQueryCache({
      servers: memcached.servers,
      namespace: freshNamespace(),
      defaultSchema: database.schema,
      onError: (error) => cacheErrors.push(error),
    })
  })

  afterAll(async () => {
    await Promise.all([...instances, plain].map((db) => db?.destroy()))
    await cache?.close()
    await memcached?.stopAll()
    await database?.close()
  })

  /** A Kysely on `dialect`, wrapped or not, recording the SQL of every 'query' log event. */
  function kysely(wrapping: Wrapping, dialect: Dialect = database.dialect()): { db: Kysely<DB>; log: string[] } {
    const log: string[] = []
    const db = new Kysely<DB>({
      dialect: wrapping === 'wrapped' ? cache.wrapDialect(dialect) : dialect,
      log: (event) => {
        if (event.level === 'query') log.push(event.query.sql)
      },
    })
    instances.push(db)
    return { db, log }
  }

  /** Runs `scenario` unwrapped then wrapped, each with its own name prefix; returns both logs. */
  async function both(
    scenario: (db: Kysely<DB>, prefix: string) => Promise<unknown>,
  ): Promise<Record<Wrapping, { log: string[]; result: unknown }>> {
    const out = {} as Record<Wrapping, { log: string[]; result: unknown }>
    for (const wrapping of ['unwrapped', 'wrapped'] as const) {
      const { db, log } = kysely(wrapping)
      const result = await scenario(db, `r${runs++}-`)
      out[wrapping] = { log, result }
    }
    return out
  }

  /** The cached read of one run's rows: a hit on the wrapped dialect when nothing was written since. */
  const names = (db: Kysely<DB>, prefix: string) =>
    db.selectFrom('person').select('first_name').where('first_name', 'like', `${prefix}%`).orderBy('id').cached({ ttl: 60 }).execute()
  const strip = (rows: { first_name: string }[], prefix: string) => rows.map((r) => r.first_name.slice(prefix.length))
  // PGlite's driver begins and ends transactions without executeQuery, so Kysely logs none of it:
  // there only the savepoint statements can differ.
  const logsTransactions = name === 'postgres'
  const onPostgres = it.runIf(logsTransactions)

  describe('logs the same statements', () => {
    onPostgres('for transaction() with commit, invalidating on commit', async () => {
      const runs = await both(async (db, p) => {
        const before = strip(await names(db, p), p)
        await db.transaction().execute(async (trx) => {
          await trx.insertInto('person').values({ first_name: `${p}a` }).execute()
          await names(trx, p)
        })
        return { before, after: strip(await names(db, p), p), again: strip(await names(db, p), p) }
      })
      expect(runs.wrapped.log).toEqual(runs.unwrapped.log)
      expect(runs.wrapped.result).toEqual(runs.unwrapped.result)
      expect(runs.unwrapped.result).toEqual({ before: [], after: ['a'], again: ['a'] })
      expect(runs.unwrapped.log).toEqual(expect.arrayContaining(['begin', 'commit']))
    })

    onPostgres('for transaction() rolled back by a throwing callback, invalidating nothing', async () => {
      const runs = await both(async (db, p) => {
        await db.insertInto('person').values({ first_name: `${p}kept` }).execute()
        const before = strip(await names(db, p), p)
        const error = await db
          .transaction()
          .execute(async (trx) => {
            await trx.insertInto('person').values({ first_name: `${p}undone` }).execute()
            throw new Error('undo')
          })
          .catch((e: unknown) => e)
        return { before, error: (error as Error).message, after: strip(await names(db, p), p) }
      })
      expect(runs.wrapped.log).toEqual(runs.unwrapped.log)
      expect(runs.wrapped.result).toEqual(runs.unwrapped.result)
      expect(runs.unwrapped.result).toEqual({ before: ['kept'], error: 'undo', after: ['kept'] })
      expect(runs.unwrapped.log).toEqual(expect.arrayContaining(['begin', 'rollback']))
    })

    onPostgres('for transaction().setIsolationLevel() and setAccessMode()', async () => {
      const runs = await both(async (db, p) => {
        await db
          .transaction()
          .setIsolationLevel('serializable')
          .execute((trx) => trx.insertInto('person').values({ first_name: `${p}s` }).execute())
        const read = await db
          .transaction()
          .setIsolationLevel('repeatable read')
          .setAccessMode('read only')
          .execute((trx) => names(trx, p))
        return strip(read, p)
      })
      expect(runs.wrapped.log).toEqual(runs.unwrapped.log)
      expect(runs.unwrapped.result).toEqual(['s'])
      expect(runs.wrapped.result).toEqual(['s'])
      expect(runs.unwrapped.log).toEqual(
        expect.arrayContaining([
          'start transaction isolation level serializable',
          'start transaction isolation level repeatable read read only',
        ]),
      )
    })

    onPostgres('for startTransaction() with commit() and rollback()', async () => {
      const runs = await both(async (db, p) => {
        await names(db, p)
        const committed = await db.startTransaction().execute()
        await committed.insertInto('person').values({ first_name: `${p}c` }).execute()
        await committed.commit().execute()
        const afterCommit = strip(await names(db, p), p)
        const rolledBack = await db.startTransaction().execute()
        await rolledBack.insertInto('person').values({ first_name: `${p}r` }).execute()
        await rolledBack.rollback().execute()
        return { afterCommit, afterRollback: strip(await names(db, p), p) }
      })
      expect(runs.wrapped.log).toEqual(runs.unwrapped.log)
      expect(runs.wrapped.result).toEqual(runs.unwrapped.result)
      expect(runs.unwrapped.result).toEqual({ afterCommit: ['c'], afterRollback: ['c'] })
      expect(runs.unwrapped.log).toEqual(expect.arrayContaining(['begin', 'commit', 'rollback']))
    })

    it('for savepoint(), rollbackToSavepoint() and releaseSavepoint(), then commit or rollback', async () => {
      const runs = await both(async (db, p) => {
        await names(db, p)
        const undone = await db.startTransaction().execute()
        await undone.insertInto('person').values({ first_name: `${p}x` }).execute()
        const sp0 = await undone.savepoint('sp0').execute()
        await sp0.insertInto('person').values({ first_name: `${p}y` }).execute()
        await sp0.rollback().execute()
        const trx = await db.startTransaction().execute()
        await trx.insertInto('person').values({ first_name: `${p}a` }).execute()
        const sp1 = await trx.savepoint('sp1').execute()
        await sp1.insertInto('person').values({ first_name: `${p}b` }).execute()
        const back = await sp1.rollbackToSavepoint('sp1').execute()
        const sp2 = await back.savepoint('sp2').execute()
        await sp2.insertInto('person').values({ first_name: `${p}c` }).execute()
        const released = await sp2.releaseSavepoint('sp2').execute()
        await released.commit().execute()
        return strip(await names(db, p), p)
      })
      expect(runs.wrapped.log).toEqual(runs.unwrapped.log)
      expect(runs.unwrapped.result).toEqual(['a', 'c'])
      expect(runs.wrapped.result).toEqual(['a', 'c'])
      expect(runs.unwrapped.log).toEqual(
        expect.arrayContaining(['savepoint "sp0"', 'savepoint "sp1"', 'rollback to "sp1"', 'savepoint "sp2"', 'release "sp2"']),
      )
    })
  })

  /** A dialect with exactly one connection: PGlite's own, or a pg pool of one. */
  const singleConnection = (): Dialect =>
    name === 'postgres'
      ? new PostgresDialect({
          pool: new pg.Pool({ connectionString: DATABASE_URL, max: 1, options: `-c search_path=${database.schema}` }),
        })
      : database.dialect()

  it('never writes an insert aborted while waiting for the connection, wrapped or not', async () => {
    for (const wrapping of ['unwrapped', 'wrapped'] as const) {
      const { db, log } = kysely(wrapping, singleConnection())
      const marker = `aborted-${wrapping}-${runs++}`
      // The only connection is busy until the commit below.
      const holder = await db.startTransaction().execute()
      await holder.selectFrom('person').select('id').limit(1).execute()

      const signal = AbortSignal.timeout(50)
      const aborted = db.insertInto('person').values({ first_name: marker }).execute({ signal }).catch((e: unknown) => e)
      // Waiting alongside the aborted insert: it must still get the connection once the holder lets go.
      const queued = db.selectFrom('person').select('id').where('first_name', '=', 'nobody').execute()
      const error = await aborted
      expect(error).toBe(signal.reason)
      expect((error as Error).name).toBe('TimeoutError')

      await sleep(50)
      await holder.commit().execute()
      await queued
      // Queued behind every earlier waiter: once it ran, the aborted insert would have too.
      await sql`select 1`.execute(db)
      const rows = await plain.selectFrom('person').select('id').where('first_name', '=', marker).execute()
      expect({ wrapping, rows }).toEqual({ wrapping, rows: [] })
      expect(log.filter((s) => s.startsWith('insert'))).toEqual([])
    }
  })

  it('runs a statement that shares its connection with an aborted one, wrapped or not', async () => {
    const outcome = async (wrapping: Wrapping) => {
      const { db } = kysely(wrapping, singleConnection())
      const marker = `aborted-${runs++}`
      const holder = await db.startTransaction().execute()
      await holder.selectFrom('person').select('id').limit(1).execute()
      const signal = AbortSignal.timeout(50)
      // Wrapped, both wait for the one real connection together: the abort must not take the read down.
      const shared = db.connection().execute((conn) =>
        Promise.allSettled([
          conn.insertInto('person').values({ first_name: marker }).execute({ signal }),
          conn.selectFrom('person').select('first_name').where('first_name', '=', 'nobody').execute(),
        ]),
      )
      await sleep(100)
      await holder.commit().execute()
      const [insert, read] = await shared
      await sql`select 1`.execute(db)
      const rows = await plain.selectFrom('person').select('id').where('first_name', '=', marker).execute()
      return {
        insert: insert.status === 'rejected' && insert.reason === signal.reason ? 'aborted' : insert.status,
        read: read.status === 'fulfilled' ? read.value : String(read.reason),
        rows,
      }
    }
    const unwrapped = await outcome('unwrapped')
    expect(unwrapped).toEqual({ insert: 'aborted', read: [], rows: [] })
    expect(await outcome('wrapped')).toEqual(unwrapped)
  })

  it('gives a read that joined another caller\'s query the rows when that caller aborts', async () => {
    const { db } = kysely('wrapped', singleConnection())
    // The dialect has learned its key scope: the reads below need no connection until they miss.
    await db.selectFrom('person').select('id').limit(1).execute()
    const holder = await db.startTransaction().execute()
    await holder.selectFrom('person').select('id').limit(1).execute()
    // A key nobody has cached: both callers miss, the second joins the first one's query.
    const read = () => db.selectFrom('person').select('first_name').where('first_name', '=', `joined-${runs++}`).cached()
    const query = read()
    const signal = AbortSignal.timeout(50)
    const leader = query.execute({ signal }).catch((e: unknown) => e)
    const follower = query.execute()
    expect(await leader).toBe(signal.reason)
    await holder.commit().execute()
    expect(await follower).toEqual([])
  })

  it('gives an aborted insert the same error and the same log as the plain dialect', async () => {
    const outcome = async (wrapping: Wrapping) => {
      const { db, log } = kysely(wrapping, singleConnection())
      const holder = await db.startTransaction().execute()
      await holder.selectFrom('person').select('id').limit(1).execute()
      const signal = AbortSignal.timeout(50)
      const error = (await db
        .insertInto('person')
        .values({ first_name: `aborted-${runs++}` })
        .execute({ signal })
        .catch((e: unknown) => e)) as Error
      await holder.commit().execute()
      await sql`select 1`.execute(db)
      return { error: { name: error.name, message: error.message, isReason: error === signal.reason }, log }
    }
    const unwrapped = await outcome('unwrapped')
    const wrapped = await outcome('wrapped')
    expect(wrapped).toEqual(unwrapped)
  })
})
