import { PGlite } from '@electric-sql/pglite'
import {
  PGliteDialect,
  PostgresDialect,
  sql,
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Generated,
  Kysely,
} from 'kysely'
import pg from 'pg'
import { detectScope } from '../../src/kysely/scope.js'

/** Found only in the key-scope queries of src/kysely/scope.ts. */
const SCOPE_QUERY_MARK = "current_setting('search_path') as search_path"

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export interface PersonTable {
  id: Generated<number>
  first_name: string
  born: Date | null
  balance: string | null
  big: bigint | null
  photo: Buffer | Uint8Array | null
  meta: unknown
  nickname: string | null
}
export interface PetTable {
  id: Generated<number>
  owner_id: number
  name: string
}
export interface DB {
  person: PersonTable
  pet: PetTable
}

/**
 * Counts the statements that reach the database, below the cache: the test's own
 * view of database work, independent of the library's counters.
 */
export class ExecutionCounter {
  readonly statements: string[] = []
  /** Connections taken from the inner driver (pool checkouts). */
  acquisitions = 0
  /** Key-scope queries (src/kysely/scope.ts), not in `statements`. */
  scopeQueries = 0

  /** Executions whose SQL contains `fragment`. */
  count(fragment = ''): number {
    return this.statements.filter((s) => s.includes(fragment)).length
  }

  reset(): void {
    this.statements.length = 0
    this.acquisitions = 0
    this.scopeQueries = 0
  }

  /** Wraps a dialect so every statement executed on its connections is recorded. */
  wrap(dialect: Dialect): Dialect {
    return beforeEachStatement(
      dialect,
      (compiled) => {
        // The key-scope query runs once per physical connection: counted apart, so tests of
        // the cache's own work need not allow for it (test/kysely/scope.test.ts checks it).
        if (compiled.sql.includes(SCOPE_QUERY_MARK)) this.scopeQueries++
        else this.statements.push(compiled.sql)
      },
      () => this.acquisitions++,
    )
  }
}

/**
 * `dialect` whose connections call `before` ahead of each statement they run (and
 * `after` once it answered), and `acquired` on each checkout. Patches the real
 * connection in place, as Kysely's own logger does: drivers keep private state on
 * it, so it must stay the very object the driver handed out.
 */
export function beforeEachStatement(
  dialect: Dialect,
  before: (compiled: CompiledQuery) => void,
  acquired: () => void = () => {},
  after: (compiled: CompiledQuery) => Promise<void> = async () => {},
): Dialect {
  const patched = new WeakSet<DatabaseConnection>()
  return {
    createAdapter: () => dialect.createAdapter(),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createDriver: () => {
      const driver: Driver = dialect.createDriver()
      const acquire = driver.acquireConnection.bind(driver)
      driver.acquireConnection = async (options) => {
        const connection = await acquire(options)
        acquired()
        if (!patched.has(connection)) {
          patched.add(connection)
          const execute = connection.executeQuery.bind(connection)
          connection.executeQuery = async <R>(compiled: CompiledQuery, opts?: Parameters<typeof execute>[1]) => {
            before(compiled)
            const result = await execute<R>(compiled, opts)
            await after(compiled)
            return result
          }
        }
        return connection
      }
      return driver
    },
  }
}

export interface TestDatabase {
  readonly name: 'postgres' | 'pglite'
  /** A fresh dialect for one more Kysely instance (another "process" of the farm). */
  dialect(): Dialect
  /** The schema holding this test file's tables (default schema of unqualified names). */
  readonly schema: string
  close(): Promise<void>
}

/** A private schema on the shared PostgreSQL, so parallel test files never meet. */
export async function openPostgres(): Promise<TestDatabase> {
  const schema = `kmc_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const admin = new pg.Client({ connectionString: DATABASE_URL })
  try {
    await admin.connect()
  } catch (error) {
    throw new Error(
      `cannot reach PostgreSQL at ${DATABASE_URL} (set DATABASE_URL): ${(error as Error).message}`,
    )
  }
  await admin.query(`create schema ${schema}`)
  await admin.end()
  const pools: pg.Pool[] = []
  return {
    name: 'postgres',
    schema,
    dialect: () => {
      const pool = new pg.Pool({
        connectionString: DATABASE_URL,
        max: 10,
        options: `-c search_path=${schema}`,
        // int8 as bigint, as applications that care about exact ids configure pg.
        types: { getTypeParser: ((oid: number, format?: 'text' | 'binary') => oid === 20 ? BigInt : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser },
      })
      pools.push(pool)
      return new PostgresDialect({ pool })
    },
    close: async () => {
      const cleanup = new pg.Client({ connectionString: DATABASE_URL })
      await cleanup.connect()
      await cleanup.query(`drop schema ${schema} cascade`)
      await cleanup.end()
      await Promise.all(pools.map((pool) => pool.end().catch(() => {})))
    },
  }
}

/** An embedded PGlite database; every dialect shares the one instance. */
export async function openPglite(): Promise<TestDatabase> {
  const pglite = new PGlite()
  await pglite.waitReady
  return {
    name: 'pglite',
    schema: 'public',
    dialect: () => {
      // Every client shares the one instance, so one client's destroy() must not close it.
      const dialect = new PGliteDialect({ pglite })
      return {
        createAdapter: () => dialect.createAdapter(),
        createQueryCompiler: () => dialect.createQueryCompiler(),
        createIntrospector: (db) => dialect.createIntrospector(db),
        createDriver: () => Object.assign(dialect.createDriver(), { destroy: async () => {} }),
      }
    },
    close: () => pglite.close(),
  }
}

export async function createSchema(db: Kysely<DB>): Promise<void> {
  await db.schema
    .createTable('person')
    .addColumn('id', 'serial', (c) => c.primaryKey())
    .addColumn('first_name', 'text', (c) => c.notNull())
    .addColumn('born', 'timestamptz')
    .addColumn('balance', 'numeric')
    .addColumn('big', 'bigint')
    .addColumn('photo', 'bytea')
    .addColumn('meta', 'jsonb')
    .addColumn('nickname', 'text')
    .execute()
  await db.schema
    .createTable('pet')
    .addColumn('id', 'serial', (c) => c.primaryKey())
    .addColumn('owner_id', 'integer', (c) => c.notNull().references('person.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .execute()
  await sql`create sequence probe_seq`.execute(db)
  // The expensive query counts its executions with these: the cache never caches a
  // query calling nextval() itself, and does not look inside a function of ours.
  await sql`create function probe_next() returns bigint volatile language sql as $$select nextval('probe_seq')$$`.execute(db)
  await sql`create function probe_current() returns bigint volatile language sql as $$select currval('probe_seq')$$`.execute(db)
}

/** The key scope a wrapped dialect of `database` learns (see src/kysely/scope.ts), for tests that derive keys. */
export async function scopeOf(database: TestDatabase): Promise<string> {
  const db = new Kysely<DB>({ dialect: database.dialect() })
  try {
    return (await detectScope({ executeQuery: <R>(compiled: CompiledQuery) => db.executeQuery<R>(compiled) })).id
  } finally {
    await db.destroy()
  }
}
