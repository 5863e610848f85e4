import { PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { QueryCacheOptions } from '../../src/index.js'
import { createSchema, DATABASE_URL, openPostgres, type TestDatabase } from '../harness/database.js'
import { closeClient, createClient, freshNamespace, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'
import { Decimal, decimalType } from '../harness/decimal.js'

/** What an application's `numeric` parser returns instead of a string. */

/** A class holding a bigint: JSON cannot write it. */
class Money {
  constructor(readonly cents: bigint) {}
}

const moneyType = {
  name: 'Money',
  isApplicable: (value: unknown): value is Money => value instanceof Money,
  serialize: (value: Money) => value.cents.toString(),
  deserialize: (text: string) => new Money(BigInt(text)),
}

const NUMERIC = 1700
const INT8 = 20
const WARNING_CODE = 'KYSELY_MEMCACHE_UNCACHEABLE_TYPE'

/**
 * The test database seen through pools with their own type parsers (pg's per-pool
 * `types`), so the parsers never leak into other test files' pools.
 */
function withParsers(database: TestDatabase, parsers: Record<number, (text: string) => unknown>): TestDatabase {
  return {
    ...database,
    dialect: () => {
      const getTypeParser = (oid: number, format?: 'text' | 'binary') =>
        parsers[oid] ?? (oid === INT8 ? BigInt : pg.types.getTypeParser(oid, format))
      const pool = new pg.Pool({
        connectionString: DATABASE_URL,
        max: 4,
        options: `-c search_path=${database.schema}`,
        types: { getTypeParser: getTypeParser as typeof pg.types.getTypeParser },
      })
      // Kysely ends the pool on destroy().
      return new PostgresDialect({ pool })
    },
  }
}

describe('custom types from pg type parsers, on PostgreSQL with memcached', () => {
  let database: TestDatabase
  let decimals: TestDatabase
  let monies: TestDatabase
  let memcached: MemcachedCluster
  let clients: Client[] = []
  let warnings: Error[] = []
  const onWarning = (warning: Error) => warnings.push(warning)

  const client = (db: TestDatabase, options: QueryCacheOptions) => {
    const made = createClient(db, { servers: memcached.servers, ...options })
    clients.push(made)
    return made
  }
  const ours = async () => {
    await new Promise((resolve) => setImmediate(resolve))
    return warnings.filter((w) => (w as { code?: string }).code === WARNING_CODE)
  }
  /** Query result keys of `namespace` held by any node (memcached's own listing, not the library's). */
  const storedResults = async (namespace: string): Promise<string[]> => {
    const keys: string[] = []
    for (const node of memcached.nodes) {
      const dump = await node.command('lru_crawler metadump all\r\n', /END\r\n$/)
      for (const match of dump.matchAll(/^key=(\S+)/gm)) {
        const key = decodeURIComponent(match[1]!)
        if (key.startsWith(`${namespace}:q:`)) keys.push(key)
      }
    }
    return keys
  }

  beforeAll(async () => {
    ;[database, memcached] = await Promise.all([openPostgres(), startMemcached(3)])
    decimals = withParsers(database, { [NUMERIC]: (text) => new Decimal(text) })
    monies = withParsers(database, { [INT8]: (text) => new Money(BigInt(text)) })
    const setup = createClient(database, {})
    await createSchema(setup.db)
    await setup.db
      .insertInto('person')
      .values([
        { first_name: 'Ada', balance: '1234.50', big: 9007199254740993n, meta: { tags: ['x', null] } },
        { first_name: 'Grace', balance: null, big: null, meta: { constructor: 'x' } },
      ])
      .execute()
    await closeClient(setup)
    process.on('warning', onWarning)
  })

  afterAll(async () => {
    process.off('warning', onWarning)
    await Promise.all(clients.map(closeClient))
    await memcached?.stopAll()
    await database?.close()
  })

  beforeEach(() => {
    warnings = []
  })

  const balances = (c: Client) => c.db.selectFrom('person').select(['id', 'balance']).where('id', '=', 1).cached()
  const bigs = (c: Client) => c.db.selectFrom('person').select(['id', 'big']).where('id', '=', 1).cached()

  it('serves a registered class on a hit as the class the parser returned on the miss', async () => {
    const namespace = freshNamespace()
    const a = client(decimals, { namespace, types: [decimalType] })
    const b = client(decimals, { namespace, types: [decimalType] })

    const [miss] = await balances(a).execute()
    expect(miss!.balance).toBeInstanceOf(Decimal)
    expect(await storedResults(namespace)).toHaveLength(1)

    const [hit] = await balances(b).execute()
    expect(b.executions.count('from "person"')).toBe(0)
    expect(hit!.balance).toBeInstanceOf(Decimal)
    expect(String(hit!.balance)).toBe('1234.50')
    expect(a.errors).toEqual([])
    expect(b.errors).toEqual([])
    expect(await ours()).toEqual([])
  })

  it('does not store a result holding an unregistered class, and warns once naming the column and the class', async () => {
    const namespace = freshNamespace()
    const a = client(decimals, { namespace })

    for (let i = 0; i < 3; i++) {
      const [row] = await balances(a).execute()
      // Every call is a miss, so every call gets the parser's class.
      expect(row!.balance).toBeInstanceOf(Decimal)
    }
    expect(a.executions.count('from "person"')).toBe(3)
    expect(await storedResults(namespace)).toEqual([])
    const warned = await ours()
    expect(warned).toHaveLength(1)
    expect(warned[0]!.message).toMatch(/column "balance"/)
    expect(warned[0]!.message).toMatch(/Decimal/)
    expect(warned[0]!.message).toMatch(/types/)
    // Not a cache failure: nothing for onError.
    expect(a.errors).toEqual([])
    expect(a.cache.stats()).toMatchObject({ uncacheable: 3, stores: 0, errors: 0 })
  })

  it('warns once per cache, column and class', async () => {
    const one = client(decimals, { namespace: freshNamespace() })
    const other = client(decimals, { namespace: freshNamespace() })
    await balances(one).execute()
    await balances(one).execute()
    await one.db.selectFrom('person').select(['balance as amount']).cached().execute()
    await balances(other).execute()
    const warned = (await ours()).map((w) => w.message)
    expect(warned).toHaveLength(3)
    expect(warned.filter((m) => m.includes('column "balance"'))).toHaveLength(2)
    expect(warned.filter((m) => m.includes('column "amount"'))).toHaveLength(1)
  })

  it('does not store an unregistered class holding a bigint, without reporting it to onError on every call', async () => {
    const namespace = freshNamespace()
    const a = client(monies, { namespace })
    for (let i = 0; i < 3; i++) {
      const [row] = await bigs(a).execute()
      expect(row!.big).toBeInstanceOf(Money)
    }
    expect(a.executions.count('from "person"')).toBe(3)
    expect(await storedResults(namespace)).toEqual([])
    expect(a.errors).toEqual([])
    const warned = await ours()
    expect(warned).toHaveLength(1)
    expect(warned[0]!.message).toMatch(/column "big".*Money/)
  })

  it('round-trips a registered class holding a bigint', async () => {
    const namespace = freshNamespace()
    const a = client(monies, { namespace, types: [moneyType] })
    const [miss] = await bigs(a).execute()
    a.executions.reset()
    const [hit] = await bigs(a).execute()
    expect(a.executions.count('from "person"')).toBe(0)
    expect(hit!.big).toBeInstanceOf(Money)
    expect((hit!.big as unknown as Money).cents).toBe(9007199254740993n)
    expect(hit).toEqual(miss)
    expect(a.errors).toEqual([])
  })

  it('does not serve an entry written under another types list, and replaces it', async () => {
    const namespace = freshNamespace()
    const both = client(decimals, { namespace, types: [decimalType, moneyType] })
    const one = client(decimals, { namespace, types: [decimalType] })

    await balances(both).execute()
    expect(await storedResults(namespace)).toHaveLength(1)
    const [row] = await balances(one).execute()
    expect(one.executions.count('from "person"')).toBe(1)
    expect(row!.balance).toBeInstanceOf(Decimal)
    // The miss stored over the other configuration's entry: the next read is a hit.
    await balances(one).execute()
    expect(one.executions.count('from "person"')).toBe(1)
    expect(await storedResults(namespace)).toHaveLength(1)
  })

  it('does not serve a registered class to a cache whose pool has no parser for it (the parser was removed)', async () => {
    const namespace = freshNamespace()
    const withDecimal = client(decimals, { namespace, types: [decimalType] })
    const plain = client(database, { namespace })

    await balances(withDecimal).execute()
    const [row] = await balances(plain).execute()
    expect(plain.executions.count('from "person"')).toBe(1)
    expect(row!.balance).toBe('1234.50')
  })

  it('does not serve an entry of an earlier entry format (k1), and replaces it', async () => {
    const namespace = freshNamespace()
    // Without a near copy, so the second read goes to the stored entry.
    const a = client(database, { namespace, nearCache: false })
    await balances(a).execute()
    const [key] = await storedResults(namespace)
    const stored = (await a.cache.store.get(key!))!.toString('utf8')
    // The layout of release 0.1.0: `k1\n<generations>\n<rows>`, same generations and rows.
    const old = `k1${stored.slice(stored.indexOf('\n'))}`
    await a.cache.store.set(key!, Buffer.from(old, 'utf8'), 60)
    a.executions.reset()

    const [row] = await balances(a).execute()
    expect(a.executions.count('from "person"')).toBe(1)
    expect(row!.balance).toBe('1234.50')
    expect((await a.cache.store.get(key!))!.toString('utf8')).not.toMatch(/^k1\n/)
    await balances(a).execute()
    expect(a.executions.count('from "person"')).toBe(1)
  })

  it('stores JSON with keys superjson refused (a key "constructor"), and brings it back as it was', async () => {
    const namespace = freshNamespace()
    const a = client(database, { namespace })
    const metas = () => a.db.selectFrom('person').select(['id', 'meta']).where('id', '=', 2).cached()
    for (let i = 0; i < 2; i++) {
      const [row] = await metas().execute()
      expect(row!.meta).toEqual({ constructor: 'x' })
      expect(Object.getPrototypeOf(row!.meta)).toBe(Object.prototype)
    }
    expect(a.executions.count('from "person"')).toBe(1)
    expect(await storedResults(namespace)).toHaveLength(1)
    expect(a.errors).toEqual([])
    expect(await ours()).toEqual([])
  })
})
