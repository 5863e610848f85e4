import type {
  CompiledQuery,
  ControlConnectionProvider,
  DatabaseConnection,
  Dialect,
  Driver,
  QueryCompiler,
  QueryResult,
  TransactionSettings,
} from 'kysely'
import type { AbortableOperationOptions, CacheEngine, QueryRunner, WriteSet } from './cache-engine.js'

/**
 * A Dialect that behaves like `inner` but serves `.cached()` queries from the
 * cache. Plugins cannot skip execution, so the cache sits here, below Kysely's
 * result plugins: a hit returns the raw result and CamelCasePlugin & co. still run.
 */
export function createCachingDialect(inner: Dialect, engine: CacheEngine): Dialect {
  return {
    // Kysely serialises every query of a single-connection dialect (PGlite, SQLite),
    // hits included. Claim multiple connections and serialise only real database use.
    createAdapter: () => Object.create(inner.createAdapter(), { supportsMultipleConnections: { value: true } }),
    createDriver: () =>
      new CachingDriver(inner.createDriver(), engine, inner.createAdapter().supportsMultipleConnections === false),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createIntrospector: (db) => inner.createIntrospector(db),
  }
}

type SavepointMethod = (connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) => Promise<void>

class CachingDriver implements Driver {
  readonly #inner: Driver
  readonly #engine: CacheEngine
  readonly #mutex: Mutex | undefined
  savepoint?: SavepointMethod
  rollbackToSavepoint?: SavepointMethod
  releaseSavepoint?: SavepointMethod

  constructor(inner: Driver, engine: CacheEngine, singleConnection: boolean) {
    this.#inner = inner
    this.#engine = engine
    this.#mutex = singleConnection ? new Mutex() : undefined
    // Kysely checks for these optional methods, so offer exactly those the inner driver has.
    for (const method of ['savepoint', 'rollbackToSavepoint', 'releaseSavepoint'] as const) {
      const forward = inner[method]
      if (forward !== undefined) {
        this[method] = async (connection, name, compile) =>
          forward.call(inner, await asCaching(connection).innerConnection(), name, compile)
      }
    }
  }

  init(options?: AbortableOperationOptions): Promise<void> {
    return this.#inner.init(options)
  }

  /** Hands out a lazy connection: a cache hit never takes one from the pool. */
  async acquireConnection(): Promise<DatabaseConnection> {
    return new CachingConnection(this.#inner, this.#engine, this.#mutex)
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const caching = asCaching(connection)
    await this.#inner.beginTransaction(await caching.innerConnection(), settings)
    caching.beginTransaction()
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const caching = asCaching(connection)
    // If the commit throws, Kysely rolls back next, which drops the pending writes.
    await this.#inner.commitTransaction(await caching.innerConnection())
    await this.#engine.commit(caching.endTransaction())
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const caching = asCaching(connection)
    caching.endTransaction()
    await this.#inner.rollbackTransaction(await caching.innerConnection())
  }

  async releaseConnection(connection: DatabaseConnection, options?: AbortableOperationOptions): Promise<void> {
    await asCaching(connection).release(options)
  }

  destroy(options?: AbortableOperationOptions): Promise<void> {
    return this.#inner.destroy(options)
  }
}

function asCaching(connection: DatabaseConnection): CachingConnection {
  if (!(connection instanceof CachingConnection)) {
    throw new TypeError('kysely-memcache: the driver was given a connection it did not create')
  }
  return connection
}

/**
 * Takes a real connection from the inner driver only when a statement needs the
 * database. Every inner-driver call receives that real connection: drivers such
 * as pg's keep private state on it.
 */
class CachingConnection implements DatabaseConnection, QueryRunner {
  readonly #driver: Driver
  readonly #engine: CacheEngine
  readonly #mutex: Mutex | undefined
  #inner: Promise<DatabaseConnection> | undefined
  #collectSessionInfo = false
  #transactionWrites: WriteSet | undefined

  constructor(driver: Driver, engine: CacheEngine, mutex: Mutex | undefined) {
    this.#driver = driver
    this.#engine = engine
    this.#mutex = mutex
  }

  get transactionWrites(): WriteSet | undefined {
    return this.#transactionWrites
  }

  beginTransaction(): void {
    this.#transactionWrites = { namespace: false, tables: new Set() }
  }

  endTransaction(): WriteSet | undefined {
    const writes = this.#transactionWrites
    this.#transactionWrites = undefined
    return writes
  }

  innerConnection(): Promise<DatabaseConnection> {
    this.#inner ??= this.#acquire()
    return this.#inner
  }

  async #acquire(): Promise<DatabaseConnection> {
    await this.#mutex?.lock()
    try {
      const connection = await this.#driver.acquireConnection()
      if (this.#collectSessionInfo) {
        await connection.collectSessionInfo?.()
      }
      return connection
    } catch (error) {
      this.#mutex?.unlock()
      throw error
    }
  }

  executeQuery<R>(compiled: CompiledQuery, options?: AbortableOperationOptions): Promise<QueryResult<R>> {
    return this.#engine.execute(this, compiled, options) as Promise<QueryResult<R>>
  }

  async run(compiled: CompiledQuery, options?: AbortableOperationOptions): Promise<QueryResult<unknown>> {
    return (await this.innerConnection()).executeQuery(compiled, options)
  }

  /** Streams bypass the cache. */
  async *streamQuery<R>(
    compiled: CompiledQuery,
    chunkSize: number,
    options?: AbortableOperationOptions,
  ): AsyncIterableIterator<QueryResult<R>> {
    const inner = await this.innerConnection()
    yield* inner.streamQuery<R>(compiled, chunkSize, options)
  }

  async collectSessionInfo(): Promise<void> {
    // Deferred to acquisition: asking now would take a pool connection for a hit.
    if (this.#inner === undefined) {
      this.#collectSessionInfo = true
      return
    }
    await (await this.#inner).collectSessionInfo?.()
  }

  async cancelQuery(control: ControlConnectionProvider): Promise<void> {
    await (await this.#acquired())?.cancelQuery?.(control)
  }

  async killSession(control: ControlConnectionProvider): Promise<void> {
    await (await this.#acquired())?.killSession?.(control)
  }

  async release(options?: AbortableOperationOptions): Promise<void> {
    const inner = await this.#acquired()
    this.#inner = undefined
    this.#transactionWrites = undefined
    if (inner !== undefined) {
      try {
        await this.#driver.releaseConnection(inner, options)
      } finally {
        this.#mutex?.unlock()
      }
    }
  }

  /** The real connection if one was taken (and could be), else `undefined`. */
  async #acquired(): Promise<DatabaseConnection | undefined> {
    return this.#inner?.catch(() => undefined)
  }
}

/** One holder at a time, first come first served: the single connection of PGlite and the like. */
class Mutex {
  #held = false
  readonly #waiting: Array<() => void> = []

  async lock(): Promise<void> {
    if (!this.#held) {
      this.#held = true
      return
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve))
  }

  unlock(): void {
    const next = this.#waiting.shift()
    if (next === undefined) {
      this.#held = false
    } else {
      next()
    }
  }
}
