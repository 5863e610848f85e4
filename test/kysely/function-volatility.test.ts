import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { cached } from '../../src/index.js'
import {
  BARE_KEYWORDS,
  HARMLESS_VOLATILE_FUNCTIONS,
  SIDE_EFFECT_FUNCTIONS,
  sqlVolatility,
  VOLATILE_FUNCTIONS,
  type Volatility,
} from '../../src/kysely/function-volatility.js'
import { createSchema, DATABASE_URL, openPostgres, type TestDatabase } from '../harness/database.js'
import { executionsSoFar, expensiveQuery, resetExecutions } from '../harness/expensive-query.js'
import { closeClient, createClient, freshNamespace, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

/** A name an entry covers: the entry itself, or a name under its `prefix*`. */
const sampleName = (entry: string) => (entry.endsWith('*') ? `${entry.slice(0, -1)}x` : entry)

describe('the function lists', () => {
  it('class each name once', () => {
    const all = [...SIDE_EFFECT_FUNCTIONS, ...VOLATILE_FUNCTIONS, ...HARMLESS_VOLATILE_FUNCTIONS]
    expect(new Set(all).size).toBe(all.length)
    expect(all.filter((name) => name !== name.toLowerCase())).toEqual([])
    const prefixes = all.filter((name) => name.endsWith('*')).map((name) => name.slice(0, -1))
    const covered = all.filter((name) => prefixes.some((prefix) => name !== `${prefix}*` && sampleName(name).startsWith(prefix)))
    expect(covered).toEqual([])
  })

  it.for(SIDE_EFFECT_FUNCTIONS)('class a call of %s as a side effect', (entry) => {
    expect(sqlVolatility(`${sampleName(entry)}(1)`)).toBe('side-effect')
    expect(sqlVolatility(`pg_catalog.${sampleName(entry).toUpperCase()} (1)`)).toBe('side-effect')
  })

  it.for(VOLATILE_FUNCTIONS)('class a call of %s as volatile', (entry) => {
    expect(sqlVolatility(`${sampleName(entry)}(1)`)).toBe('volatile')
    expect(sqlVolatility(`"${sampleName(entry)}"()`)).toBe('volatile')
  })

  it.for(BARE_KEYWORDS)('class the bare keyword %s as volatile, but not a column of that name', (keyword) => {
    expect(VOLATILE_FUNCTIONS).toContain(keyword)
    expect(sqlVolatility(`select ${keyword.toUpperCase()} as at`)).toBe('volatile')
    expect(sqlVolatility(`select t.${keyword}, "${keyword}" from t`)).toBe('stable')
  })

  it.for(HARMLESS_VOLATILE_FUNCTIONS)('keep %s cacheable', (name) => {
    expect(sqlVolatility(`${name}(1)`)).toBe('stable')
  })
})

describe('.cached({ volatile })', () => {
  it('takes a boolean only, naming the option and the value', () => {
    expect(() => cached({ volatile: 'yes' as never })).toThrow(new TypeError('volatile must be a boolean, got "yes"'))
    expect(() => cached({ volatile: 1 as never })).toThrow(new TypeError('volatile must be a boolean, got 1'))
    expect(() => cached({ volatile: false })).not.toThrow()
  })
})

describe('sqlVolatility', () => {
  it('finds calls by name, with or without a schema, in any case unless quoted', () => {
    expect(sqlVolatility('select nextval($1)')).toBe('side-effect')
    expect(sqlVolatility('select PG_CATALOG.NextVal ($1)')).toBe('side-effect')
    expect(sqlVolatility('select "pg_catalog"."nextval"($1)')).toBe('side-effect')
    expect(sqlVolatility('select "NEXTVAL"($1)')).toBe('stable')
    expect(sqlVolatility('select nextval/* why */($1)')).toBe('side-effect')
    expect(sqlVolatility('select now() - interval \'1 day\'')).toBe('volatile')
    expect(sqlVolatility('current_timestamp(3)')).toBe('volatile')
  })

  it('reports the worst class found', () => {
    expect(sqlVolatility('select random(), setval($1, 1)')).toBe('side-effect')
    expect(sqlVolatility('select count(*), random() from t')).toBe('volatile')
    expect(sqlVolatility('select count(*), coalesce(a, b) from t')).toBe('stable')
  })

  it('skips string literals, escape strings, dollar quotes, comments and parameters', () => {
    expect(sqlVolatility("select 'nextval(1)', 'it''s nextval(1)'")).toBe('stable')
    expect(sqlVolatility("select E'\\' nextval(1)'")).toBe('stable')
    expect(sqlVolatility("select E'\\\\', now()")).toBe('volatile')
    expect(sqlVolatility('select $$ nextval(1) $$, $fn$ random() $fn$')).toBe('stable')
    expect(sqlVolatility('select 1 -- nextval(1)\n')).toBe('stable')
    expect(sqlVolatility('select 1 /* nextval(1) /* nested */ random() */')).toBe('stable')
    expect(sqlVolatility('select $1 || now()')).toBe('volatile')
  })

  it('does not take other identifiers for keywords or functions', () => {
    expect(sqlVolatility('select user_id, nextval_count, current_date_x, my_random(1) from t')).toBe('stable')
    expect(sqlVolatility('select "random"')).toBe('stable')
    expect(sqlVolatility('select 1e5, 12.5')).toBe('stable')
  })
})

describe('.cached() queries calling volatile or side-effect functions, on PostgreSQL with memcached', () => {
  let database: TestDatabase
  let memcached: MemcachedCluster
  let c: Client

  /** The sequence's value read by a connection of our own, outside any cache. */
  const sequenceValue = async (): Promise<number> => {
    const admin = new pg.Client({ connectionString: DATABASE_URL })
    await admin.connect()
    try {
      const { rows } = await admin.query<{ last_value: string; is_called: boolean }>(
        `select last_value, is_called from ${database.schema}.counter_seq`,
      )
      return rows[0]!.is_called ? Number(rows[0]!.last_value) : 0
    } finally {
      await admin.end()
    }
  }

  beforeAll(async () => {
    ;[database, memcached] = await Promise.all([openPostgres(), startMemcached(1)])
    const setup = createClient(database, {})
    await createSchema(setup.db)
    await sql`create sequence counter_seq`.execute(setup.db)
    await setup.db.insertInto('person').values({ first_name: 'Ada' }).execute()
    await closeClient(setup)
  })

  afterAll(async () => {
    await memcached?.stopAll()
    await database?.close()
  })

  beforeEach(async () => {
    c = createClient(database, { servers: memcached.servers, namespace: freshNamespace() })
    await sql`alter sequence counter_seq restart`.execute(c.db)
    c.executions.reset()
  })

  // Hundreds of tests: a pool left open per test would exhaust PostgreSQL's connections.
  afterEach(() => closeClient(c))

  it('runs a .cached() nextval() on the database every time: the sequence advances on each call', async () => {
    const next = () => c.db.selectNoFrom((eb) => eb.fn<bigint>('nextval', [eb.val('counter_seq')]).as('n')).cached()
    const first = await next().executeTakeFirstOrThrow()
    const second = await next().executeTakeFirstOrThrow()
    expect([Number(first.n), Number(second.n)]).toEqual([1, 2])
    expect(c.executions.count('nextval')).toBe(2)
    expect(await sequenceValue()).toBe(2)
  })

  it('runs nextval() written in a raw fragment, in a where-clause subquery, every time, even with volatile: true', async () => {
    const query = () =>
      c.db
        .selectFrom('person')
        .select('first_name')
        .where('id', '<', (eb) => eb.selectFrom('person as p').select(sql<number>`NEXTVAL('counter_seq') + 100`.as('n')).limit(1))
        .cached({ volatile: true })
    await query().execute()
    await query().execute()
    await query().execute()
    expect(c.executions.count('NEXTVAL')).toBe(3)
    expect(await sequenceValue()).toBe(3)
    expect(c.cache.stats().uncacheable).toBe(3)
  })

  it('runs pg_catalog.setval() every time', async () => {
    const reset = (to: number) =>
      c.db.selectNoFrom((eb) => eb.fn<bigint>('pg_catalog.setval', [eb.val('counter_seq'), eb.val(to)]).as('v')).cached()
    await reset(10).execute()
    await sql`select nextval('counter_seq')`.execute(c.db)
    await reset(10).execute()
    expect(c.executions.count('setval')).toBe(2)
    expect(await sequenceValue()).toBe(10)
  })

  it('does not cache random() by default, and caches it with volatile: true', async () => {
    const roll = (options?: { volatile: boolean }) => c.db.selectNoFrom((eb) => eb.fn<number>('random').as('r')).cached(options)
    const a = await roll().executeTakeFirstOrThrow()
    const b = await roll().executeTakeFirstOrThrow()
    expect(c.executions.count('random()')).toBe(2)
    expect(a.r).not.toBe(b.r)

    c.executions.reset()
    const frozen = await roll({ volatile: true }).executeTakeFirstOrThrow()
    const again = await roll({ volatile: true }).executeTakeFirstOrThrow()
    expect(c.executions.count('random()')).toBe(1)
    expect(again.r).toBe(frozen.r)
  })

  it('does not cache now() or current_timestamp in a builder query by default; volatile: true freezes them', async () => {
    const stamped = (options?: { volatile: boolean }) =>
      c.db
        .selectFrom('person')
        .select(['first_name', sql<Date>`now()`.as('at')])
        .where(sql<boolean>`born is null or born < current_timestamp`)
        .cached(options)
    const first = await stamped().executeTakeFirstOrThrow()
    await new Promise((resolve) => setTimeout(resolve, 5))
    const second = await stamped().executeTakeFirstOrThrow()
    expect(c.executions.count('now()')).toBe(2)
    expect(second.at.getTime()).toBeGreaterThan(first.at.getTime())

    c.executions.reset()
    const frozen = await stamped({ volatile: true }).executeTakeFirstOrThrow()
    await new Promise((resolve) => setTimeout(resolve, 5))
    const again = await stamped({ volatile: true }).executeTakeFirstOrThrow()
    expect(c.executions.count('now()')).toBe(1)
    expect(again.at.getTime()).toBe(frozen.at.getTime())
  })

  it('still caches a query whose only call PostgreSQL marks volatile is pg_sleep()', async () => {
    const slow = () => c.db.selectFrom('person').select(['first_name', sql<string>`pg_sleep(0.01)::text`.as('slept')]).cached()
    await slow().execute()
    await slow().execute()
    expect(c.executions.count('pg_sleep')).toBe(1)
  })

  it('does not see nextval() inside a function of ours: the harness probe is cached and the sequence advances once', async () => {
    await resetExecutions(database.schema)
    await expensiveQuery(c.db, 0).cached().execute()
    await expensiveQuery(c.db, 0).cached().execute()
    expect(c.executions.count('probe_next()')).toBe(1)
    expect(await executionsSoFar(database.schema)).toBe(1)
  })

  it('still caches a query that mentions nextval( only inside a string literal', async () => {
    const query = () =>
      c.db.selectFrom('person').select(['first_name', sql<string>`'nextval(''counter_seq'')'`.as('text')]).cached()
    await query().execute()
    const row = await query().executeTakeFirstOrThrow()
    expect(row.text).toBe("nextval('counter_seq')")
    expect(c.executions.count('from "person"')).toBe(1)
    expect(await sequenceValue()).toBe(0)
  })

  describe('every entry of the lists, called in a real query', () => {
    /** Argument types of one callable overload (the fewest arguments) per visible function. */
    let signatures: Map<string, string[]>

    beforeAll(async () => {
      const admin = new pg.Client({ connectionString: DATABASE_URL })
      await admin.connect()
      try {
        // Extensions holding listed functions, in this file's schema (dropped with it), where installable.
        for (const extension of ['dblink', 'uuid-ossp', 'pgcrypto', 'pg_prewarm', 'pg_stat_statements']) {
          await admin.query(`create extension if not exists "${extension}" with schema ${database.schema}`).catch(() => {})
        }
        const { rows } = await admin.query<{ name: string; args: string[] }>(
          `select p.proname as name,
                  array(select format_type(a.t, null) from unnest(p.proargtypes::oid[]) with ordinality a(t, n)
                        where a.n <= p.pronargs - (p.provariadic <> 0)::int order by a.n) as args
             from pg_proc p join pg_type r on r.oid = p.prorettype
            where p.pronamespace in ('pg_catalog'::regnamespace, $1::regnamespace) and p.prokind = 'f'
              and (r.typtype <> 'p' or r.typname in ('void', 'record'))
              and not exists (select from unnest(p.proargtypes::oid[]) with ordinality a(t, n) join pg_type t on t.oid = a.t
                               where t.typtype = 'p' and a.n <= p.pronargs - (p.provariadic <> 0)::int)
            order by p.proname, p.pronargs`,
          [database.schema],
        )
        signatures = new Map()
        for (const row of rows) if (!signatures.has(row.name)) signatures.set(row.name, row.args)
      } finally {
        await admin.end()
      }
    })

    /** The functions an entry covers that this PostgreSQL has. */
    const functionsOf = (entry: string) =>
      entry.endsWith('*')
        ? [...signatures.keys()].filter((name) => name.startsWith(entry.slice(0, -1)))
        : signatures.has(entry)
          ? [entry]
          : []

    /**
     * Runs `select name(null::type, ...) where false` twice as a `.cached()` query and
     * returns how many times it reached the database. `where false`: the query is
     * planned, and reaches the database, but never calls the function.
     */
    const runTwice = async (name: string, options?: { volatile: boolean }): Promise<number> => {
      c.executions.reset()
      const call = () =>
        c.db
          .selectNoFrom((eb) =>
            BARE_KEYWORDS.includes(name)
              ? sql.raw<unknown>(name).as('v')
              : eb.fn<unknown>(name, signatures.get(name)!.map((type) => sql`null::${sql.raw(type)}`)).as('v'),
          )
          .where(sql<boolean>`false`)
          .cached(options)
      await call().execute()
      await call().execute()
      return c.executions.count(name)
    }

    const expectations: Array<[readonly string[], Volatility, number, number]> = [
      // entries, class, executions of two runs by default, then of two with volatile: true
      [SIDE_EFFECT_FUNCTIONS, 'side-effect', 2, 2],
      [VOLATILE_FUNCTIONS.filter((name) => !BARE_KEYWORDS.includes(name)), 'volatile', 2, 1],
      // Same key either way: the second pair hits what the first stored.
      [HARMLESS_VOLATILE_FUNCTIONS, 'stable', 1, 0],
    ]
    for (const [entries, volatility, plain, optedIn] of expectations) {
      it.for(entries)(`runs a .cached() call of %s ${plain === 2 ? 'every time' : 'once'} (${volatility})`, async (entry, { skip }) => {
        const names = functionsOf(entry)
        if (names.length === 0) skip(`${entry} is not in this PostgreSQL`)
        for (const name of names) {
          expect([name, await runTwice(name)]).toEqual([name, plain])
          expect([name, await runTwice(name, { volatile: true })]).toEqual([name, optedIn])
        }
      })
    }

    it.for(BARE_KEYWORDS)('runs a .cached() select of the keyword %s every time, once with volatile: true', async (keyword) => {
      expect(await runTwice(keyword)).toBe(2)
      expect(await runTwice(keyword, { volatile: true })).toBe(1)
    })
  })
})
