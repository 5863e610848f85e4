/**
 * kysely-memcache quick start: `npm run demo`.
 *
 * With no environment it runs on embedded parts (PGlite and the in-process
 * store), so it needs no servers. Set either or both to use real ones:
 *
 *   MEMCACHED_SERVERS=127.0.0.1:11211,127.0.0.1:11212   memcached nodes
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test PostgreSQL
 *
 * The database execution counts are measured below the cache, by wrapping the
 * inner dialect's driver, not read from the library's own counters.
 */
import { PGlite } from '@electric-sql/pglite'
import {
  Kysely,
  PGliteDialect,
  PostgresDialect,
  sql,
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Generated,
} from 'kysely'
import pg from 'pg'
import { createQueryCache, declareWrites } from '../src/index.js'

interface DB {
  demo_order: {
    id: Generated<number>
    customer: string
    amount: string
  }
}

const servers = process.env.MEMCACHED_SERVERS?.split(',').map((s) => s.trim()).filter((s) => s !== '')
const databaseUrl = process.env.DATABASE_URL

/** Counts every statement the real database runs. */
let databaseStatements = 0

function countStatements(dialect: Dialect): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createDriver: () => {
      const driver = dialect.createDriver()
      const acquire = driver.acquireConnection.bind(driver)
      const patched = new WeakSet<DatabaseConnection>()
      // Patch the real connection in place: drivers keep private state on it.
      driver.acquireConnection = async (options) => {
        const connection = await acquire(options)
        if (!patched.has(connection)) {
          patched.add(connection)
          const execute = connection.executeQuery.bind(connection)
          connection.executeQuery = (compiled: CompiledQuery, opts) => {
            databaseStatements++
            return execute(compiled, opts)
          }
        }
        return connection
      }
      return driver
    },
  }
}

const inner: Dialect = databaseUrl
  ? new PostgresDialect({ pool: new pg.Pool({ connectionString: databaseUrl, max: 10 }) })
  : new PGliteDialect({ pglite: new PGlite() })

const cache = createQueryCache({ servers, namespace: 'quickstart', defaultTtl: 60 })
const db = new Kysely<DB>({ dialect: cache.wrapDialect(countStatements(inner)) })

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : word.endsWith('s') ? 'es' : 's'}`

/** Runs `work` and reports its time and how many statements reached the database. */
async function step<T>(label: string, work: () => Promise<T>): Promise<T> {
  const statementsBefore = databaseStatements
  const start = performance.now()
  const value = await work()
  const ms = (performance.now() - start).toFixed(2)
  const ran = databaseStatements - statementsBefore
  console.log(`${label.padEnd(44)} ${ms.padStart(8)} ms   database ran ${plural(ran, 'statement')}`)
  return value
}

// The expensive query: an aggregate over every order, per customer.
const revenue = () =>
  db
    .selectFrom('demo_order')
    .select((eb) => [
      'customer',
      eb.fn.countAll<string>().as('orders'),
      eb.fn.sum<string>('amount').as('total'),
      eb.fn.avg<string>('amount').as('average'),
    ])
    .groupBy('customer')
    .orderBy('customer')
    .cached({ ttl: 60, tags: ['revenue'] })

const totalOf = (rows: Array<{ customer: string; total: string }>, customer: string) =>
  rows.find((row) => row.customer === customer)?.total

try {
  console.log(`database: ${databaseUrl ? `PostgreSQL at ${databaseUrl}` : 'PGlite (embedded)'}`)
  console.log(`cache:    ${servers ? `memcached at ${servers.join(', ')}` : 'in-process store'}\n`)

  await db.schema.dropTable('demo_order').ifExists().execute()
  await db.schema
    .createTable('demo_order')
    .addColumn('id', 'serial', (col) => col.primaryKey())
    .addColumn('customer', 'text', (col) => col.notNull())
    .addColumn('amount', 'numeric(10, 2)', (col) => col.notNull())
    .execute()
  // Raw SQL is opaque to the cache: declareWrites says which table it writes.
  await sql`
    insert into demo_order (customer, amount)
    select (array['alice', 'bob', 'carol', 'dave'])[1 + g % 4], (g % 997) / 10.0
    from generate_series(1, 200000) g
  `.withPlugin(declareWrites(['demo_order'])).execute(db)
  console.log('created demo_order with 200000 rows\n')

  const first = await step('1. first read: miss', () => revenue().execute())
  console.log(`   alice's total: ${totalOf(first, 'alice')}`)
  await step('2. second read: hit', () => revenue().execute())

  // Order 4 is alice's (see the insert above).
  await step("3. update one of alice's orders (+100)", () =>
    db
      .updateTable('demo_order')
      .set((eb) => ({ amount: eb('amount', '+', '100') }))
      .where('id', '=', 4)
      .execute(),
  )
  const fresh = await step('4. next read: invalidated, so a miss', () => revenue().execute())
  console.log(`   alice's total: ${totalOf(fresh, 'alice')} (the new value)`)
  await step('5. read again: hit', () => revenue().execute())

  await cache.invalidate({ tags: ['revenue'] })
  const before = cache.stats()
  const rows = await step('6. invalidate, then 20 concurrent reads', () =>
    Promise.all(Array.from({ length: 20 }, () => revenue().execute())),
  )
  const after = cache.stats()
  const same = rows.every((r) => JSON.stringify(r) === JSON.stringify(rows[0]))
  console.log(
    `   ${plural(after.misses - before.misses, 'miss')} (${after.coalesced - before.coalesced} joined the first one's query), ` +
      `${plural(after.hits - before.hits, 'hit')}; all 20 got the same rows: ${same}`,
  )

  await db.schema.dropTable('demo_order').execute()
  console.log('\ncache.stats():', cache.stats())
} finally {
  await db.destroy()
  await cache.close()
}
