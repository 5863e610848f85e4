/**
 * The read path in-process, for fuzzing what it does with a hostile entry: a cache on
 * the embedded store, and a Kysely whose driver is a stand-in database that answers
 * every query with the same rows and counts what it ran. One cached query; tests
 * write bytes under its key, run it, and see where its rows came from.
 */
import {
  CompiledQuery,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type QueryResult,
} from 'kysely'
import { Codec, type DecodedEntry } from '../../src/cache/codec.js'
import { createQueryCache, type QueryCache } from '../../src/index.js'
import { queryKey } from '../../src/keys.js'
import { detectScope } from '../../src/kysely/scope.js'
import { MemoryStore } from '../../src/store/memory-store.js'

interface Person {
  id: number
  first_name: string
  born: Date
  big: bigint
}

/** What the stand-in database returns for the query (a fresh copy each time). */
export function databaseRows(): Person[] {
  return [
    { id: 1, first_name: 'v0', born: new Date(Date.UTC(1990, 4, 17)), big: 9007199254740993n },
    { id: 2, first_name: 'other', born: new Date(0), big: -1n },
  ]
}

const SCOPE_ROW = { database: 'fuzz', user: 'fuzz', search_path: 'public', cluster: null }

class StandInConnection implements DatabaseConnection {
  constructor(private readonly counter: { executions: number }) {}

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    // The key-scope query of src/kysely/scope.ts.
    if (compiled.sql.includes("current_setting('search_path')")) return { rows: [SCOPE_ROW as R] }
    this.counter.executions++
    return { rows: databaseRows() as R[] }
  }

  // Never yields: nothing here streams.
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('the stand-in database does not stream')
  }
}

function standInDialect(counter: { executions: number }): Dialect {
  const connection = new StandInConnection(counter)
  const driver: Driver = {
    init: async () => {},
    acquireConnection: async () => connection,
    beginTransaction: async () => {},
    commitTransaction: async () => {},
    rollbackTransaction: async () => {},
    releaseConnection: async () => {},
    destroy: async () => {},
  }
  return {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => driver,
    createQueryCompiler: () => new PostgresQueryCompiler(),
    createIntrospector: (db) => new PostgresIntrospector(db),
  }
}

export interface ReadPathFixture {
  readonly cache: QueryCache
  readonly store: MemoryStore
  readonly codec: Codec
  /** The cached query's key and the generations its entry was stored under. */
  readonly key: string
  readonly generations: readonly string[]
  /** The entry the cache itself stored. */
  readonly stored: Buffer
  readonly counter: { executions: number }
  readonly errors: unknown[]
  run(): Promise<unknown[]>
  close(): Promise<void>
}

export async function openReadPathFixture(): Promise<ReadPathFixture> {
  const store = new MemoryStore()
  const errors: unknown[] = []
  const cache = createQueryCache({ store, namespace: 'fuzz', nearCache: false, earlyRefresh: false, ttlJitter: 0, onError: (error) => errors.push(error) })
  const counter = { executions: 0 }
  const db = new Kysely<{ person: Person }>({ dialect: cache.wrapDialect(standInDialect(counter)) })
  const query = () => db.selectFrom('person').select(['id', 'first_name', 'born', 'big']).where('id', '<', 10).cached({ ttl: 600 })
  const compiled = query().compile()
  const scope = await detectScope(new StandInConnection({ executions: 0 }))
  const key = queryKey('fuzz', compiled.sql, compiled.parameters, [], scope.id)
  await query().execute()
  const stored = await store.get(key)
  if (stored === undefined) throw new Error(`the read-path fixture found no entry under ${key}`)
  const codec = new Codec()
  const entry = codec.decodeEntry(stored) as DecodedEntry
  return {
    cache,
    store,
    codec,
    key,
    generations: entry.generations,
    stored,
    counter,
    errors,
    run: () => query().execute(),
    close: async () => {
      await db.destroy()
      await cache.close()
    },
  }
}

/** Lazily opened, shared by every run of a property (and across properties). */
let shared: Promise<ReadPathFixture> | undefined
export function readPathFixture(): Promise<ReadPathFixture> {
  shared ??= openReadPathFixture()
  return shared
}

export async function closeReadPathFixture(): Promise<void> {
  const fixture = shared
  shared = undefined
  await (await fixture)?.close()
}
