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
import type { AbortableOperationOptions, CacheEngine, QueryRunner, WriteSet } from '../cache/engine.js'
import type { CacheSettings } from './cached.js'
import { ScopeTracker, type KeyScope } from './scope.js'
import type { WrapConfig } from './wrap-options.js'

/**
 * A Dialect that behaves like `inner` but serves `.cached()` queries from the
 * cache. Plugins cannot skip execution, so the cache sits here, below Kysely's
 * result plugins: a hit returns the raw result and CamelCasePlugin & co. still run.
 */
export function createCachingDialect(inner: Dialect, engine: CacheEngine, config: WrapConfig): Dialect {
  return {
    // Kysely serialises every query of a single-connection dialect (PGlite, SQLite),
    // hits included. Claim multiple connections and serialise only real database use.
    createAdapter: () => Object.create(inner.createAdapter(), { supportsMultipleConnections: { value: true } }),
    createDriver: () =>
      new CachingDriver(
        inner.createDriver(),
        engine,
        inner.createAdapter().supportsMultipleConnections === false,
        new ScopeTracker(config.scope),
        config.cacheAll,
      ),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createIntrospector: (db) => inner.createIntrospector(db),
  }
}

type SavepointMethod = (connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) => Promise<void>

class CachingDriver implements Driver {
  readonly #inner: Driver
  readonly #engine: CacheEngine
  readonly #mutex: Mutex | undefined
  readonly #scope: ScopeTracker
  readonly #cacheAll: CacheSettings | undefined
  savepoint?: SavepointMethod
  rollbackToSavepoint?: SavepointMethod
  releaseSavepoint?: SavepointMethod

  constructor(inner: Driver, engine: CacheEngine, singleConnection: boolean, scope: ScopeTracker, cacheAll: CacheSettings | undefined) {
    this.#inner = inner
    this.#engine = engine
    this.#mutex = singleConnection ? new Mutex() : undefined
    this.#scope = scope
    this.#cacheAll = cacheAll
    // Kysely checks for these optional methods, so offer exactly those the inner driver has.
    for (const method of ['savepoint', 'rollbackToSavepoint', 'releaseSavepoint'] as const) {
      const forward = inner[method]
      if (forward !== undefined) {
        this[method] = async (connection, name, compile) =>
          forward.call(inner, await asCaching(connection).controlConnection(), name, compile)
      }
    }
  }

  init(options?: AbortableOperationOptions): Promise<void> {
    return this.#inner.init(options)
  }

  /** Hands out a lazy connection: a cache hit never takes one from the pool. */
  async acquireConnection(): Promise<DatabaseConnection> {
    return new CachingConnection(this.#inner, this.#engine, this.#mutex, this.#scope, this.#cacheAll)
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const caching = asCaching(connection)
    await this.#inner.beginTransaction(await caching.controlConnection(), settings)
    caching.beginTransaction()
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const caching = asCaching(connection)
    // If the commit throws, Kysely rolls back next, which drops the pending writes.
    await this.#inner.commitTransaction(await caching.controlConnection())
    await this.#engine.commit(caching.endTransaction())
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const caching = asCaching(connection)
    caching.endTransaction()
    await this.#inner.rollbackTransaction(await caching.controlConnection())
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

/** A pending or done take of a real connection, and the signal of the statement that started it. */
interface Acquisition {
  readonly promise: Promise<DatabaseConnection>
  readonly signal: AbortSignal | undefined
}

/**
 * Takes a real connection from the inner driver only when a statement needs the
 * database. Every inner-driver call receives that real connection (or a view of
 * it, see `controlConnection`): drivers such as pg's keep private state on it.
 */
class CachingConnection implements DatabaseConnection, QueryRunner {
  readonly #driver: Driver
  readonly #engine: CacheEngine
  readonly #mutex: Mutex | undefined
  readonly #scope: ScopeTracker
  readonly cacheAll: CacheSettings | undefined
  #acquisition: Acquisition | undefined
  #collectSessionInfo = false
  #transactionWrites: WriteSet | undefined
  /** Statements of the inner driver's transaction methods, and the real connection each goes to. */
  readonly #control = new WeakMap<CompiledQuery, DatabaseConnection>()

  constructor(driver: Driver, engine: CacheEngine, mutex: Mutex | undefined, scope: ScopeTracker, cacheAll: CacheSettings | undefined) {
    this.#driver = driver
    this.#engine = engine
    this.#mutex = mutex
    this.#scope = scope
    this.cacheAll = cacheAll
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

  /**
   * The real connection as the inner driver's transaction and savepoint methods
   * must see it. Kysely logs what runs through `executeQuery` of the connection
   * it was handed (this one), so their statements are sent through it, skipping
   * the cache; everything else is the real connection's own, bound to it, since
   * drivers call private methods on it (pg on a failed rollback, PGlite for
   * begin and commit).
   */
  async controlConnection(): Promise<DatabaseConnection> {
    const inner = await this.#connect(undefined)
    return new Proxy(inner, {
      get: (target, property) => {
        if (property === 'executeQuery') {
          return (compiled: CompiledQuery, options?: AbortableOperationOptions) => {
            this.#control.set(compiled, target)
            return this.executeQuery(compiled, options)
          }
        }
        const value: unknown = Reflect.get(target, property, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
  }

  /**
   * The real connection for a statement with `options`, taken if not yet. A caller
   * whose signal aborts stops waiting at once; see `#acquire` for the connection.
   */
  async #connect(options: AbortableOperationOptions): Promise<DatabaseConnection> {
    const signal = options?.signal
    for (;;) {
      const acquisition = (this.#acquisition ??= this.#start(options))
      try {
        return await untilAborted(acquisition.promise, signal)
      } catch (error) {
        // Another statement's abort ended the take this one was waiting on: take anew.
        if (acquisition.signal?.aborted === true && acquisition.signal !== signal && signal?.aborted !== true) {
          if (this.#acquisition === acquisition) this.#acquisition = undefined
          continue
        }
        throw error
      }
    }
  }

  #start(options: AbortableOperationOptions): Acquisition {
    const acquisition: Acquisition = { promise: this.#acquire(options), signal: options?.signal }
    // A failed or abandoned take holds nothing: the next statement on this connection tries again.
    acquisition.promise.catch(() => {
      if (this.#acquisition === acquisition) this.#acquisition = undefined
    })
    return acquisition
  }

  /**
   * Kysely's RuntimeDriver makes the pool wait abortable; here it is ours. Pools
   * such as pg's cannot withdraw a request, so a connection that arrives after the
   * abort goes straight back: the aborted statement was never sent.
   */
  async #acquire(options: AbortableOperationOptions): Promise<DatabaseConnection> {
    const signal = options?.signal
    await this.#mutex?.lock(signal)
    let connection: DatabaseConnection
    try {
      signal?.throwIfAborted()
      connection = await this.#driver.acquireConnection(options)
    } catch (error) {
      this.#mutex?.unlock()
      throw error
    }
    try {
      signal?.throwIfAborted()
      if (this.#collectSessionInfo) {
        await connection.collectSessionInfo?.()
      }
      // Once per physical connection, before any statement (and any transaction) on it.
      await this.#scope.check(connection)
      return connection
    } catch (error) {
      try {
        await this.#driver.releaseConnection(connection)
      } finally {
        this.#mutex?.unlock()
      }
      throw error
    }
  }

  executeQuery<R>(compiled: CompiledQuery, options?: AbortableOperationOptions): Promise<QueryResult<R>> {
    const control = this.#control.get(compiled)
    if (control !== undefined) {
      this.#control.delete(compiled)
      return control.executeQuery<R>(compiled, options)
    }
    return this.#engine.execute(this, compiled, options) as Promise<QueryResult<R>>
  }

  async run(compiled: CompiledQuery, options?: AbortableOperationOptions): Promise<QueryResult<unknown>> {
    const inner = await this.#connect(options)
    // Its caller may have been told "aborted" since (the cache lookup, the wait): then never send it.
    options?.signal?.throwIfAborted()
    return inner.executeQuery(compiled, options)
  }

  async keyScope(options?: AbortableOperationOptions): Promise<KeyScope | undefined> {
    const held = await this.#acquired()
    if (held !== undefined) return this.#scope.keyScopeFor(held)
    const known = this.#scope.known ?? (await this.#scope.learning)
    if (known !== undefined) return known
    // Not learned yet: the first cached read takes a connection to learn it, the others wait for that.
    const connecting = this.#connect(options)
    this.#scope.learnFrom(connecting)
    return this.#scope.keyScopeFor(await connecting)
  }

  detached(): CachingConnection {
    return new CachingConnection(this.#driver, this.#engine, this.#mutex, this.#scope, this.cacheAll)
  }

  async storable(): Promise<boolean> {
    const held = await this.#acquired()
    return held !== undefined && this.#scope.inScope(held)
  }

  async resolveWrites(writes: WriteSet): Promise<WriteSet> {
    return this.#scope.resolveWrites(await this.#acquired(), writes)
  }

  /** Streams bypass the cache. */
  async *streamQuery<R>(
    compiled: CompiledQuery,
    chunkSize: number,
    options?: AbortableOperationOptions,
  ): AsyncIterableIterator<QueryResult<R>> {
    this.#engine.noteStream(compiled)
    const inner = await this.#connect(options)
    options?.signal?.throwIfAborted()
    yield* inner.streamQuery<R>(compiled, chunkSize, options)
  }

  async collectSessionInfo(): Promise<void> {
    // Deferred to acquisition: asking now would take a pool connection for a hit.
    if (this.#acquisition === undefined) {
      this.#collectSessionInfo = true
      return
    }
    await (await this.#acquisition.promise).collectSessionInfo?.()
  }

  async cancelQuery(control: ControlConnectionProvider): Promise<void> {
    await (await this.#acquired())?.cancelQuery?.(control)
  }

  async killSession(control: ControlConnectionProvider): Promise<void> {
    await (await this.#acquired())?.killSession?.(control)
  }

  async release(options?: AbortableOperationOptions): Promise<void> {
    const inner = await this.#acquired()
    this.#acquisition = undefined
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
    return this.#acquisition?.promise.catch(() => undefined)
  }
}

/** `promise`, or a rejection with the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => reject(signal.reason)
    if (signal.aborted) {
      abort()
      return
    }
    signal.addEventListener('abort', abort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort))
  })
}

/** One holder at a time, first come first served: the single connection of PGlite and the like. */
class Mutex {
  #held = false
  readonly #waiting: Array<() => void> = []

  /** A waiter whose signal aborts leaves the queue and rejects with the signal's reason. */
  async lock(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    if (!this.#held) {
      this.#held = true
      return
    }
    await new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener('abort', abort)
        resolve()
      }
      const abort = (): void => {
        const index = this.#waiting.indexOf(grant)
        if (index !== -1) {
          this.#waiting.splice(index, 1)
          reject(signal?.reason)
        }
      }
      this.#waiting.push(grant)
      signal?.addEventListener('abort', abort, { once: true })
    })
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
