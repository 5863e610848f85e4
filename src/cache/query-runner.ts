import type { CompiledQuery, DatabaseConnection, QueryResult } from 'kysely'
import type { CacheSettings } from '../kysely/cached.js'
import type { KeyScope } from '../kysely/scope.js'
import type { WriteSet } from './write-set.js'

export type { WriteSet }

/** Kysely passes these (an abort signal) with each call; not exported by its index. */
export type AbortableOperationOptions = Parameters<DatabaseConnection['executeQuery']>[1]

/** What the engine needs from a connection: run on the real one, and its transaction state. */
export interface QueryRunner {
  run(compiled: CompiledQuery, options?: AbortableOperationOptions): Promise<QueryResult<unknown>>
  /** Writes seen since the transaction began; `undefined` outside a transaction. */
  readonly transactionWrites: WriteSet | undefined
  beginTransaction(): void
  /** Ends the transaction and hands back what it wrote. */
  endTransaction(): WriteSet | undefined
  /**
   * The scope keys are made in (learned from a first connection if need be);
   * `undefined` when the connection held has another scope: bypass the cache.
   */
  keyScope(options?: AbortableOperationOptions): Promise<KeyScope | undefined>
  /** Whether rows just read on the connection held belong to the key scope, so may be stored. */
  storable(): Promise<boolean>
  /** `writes` with unqualified tables resolved through the search_path of the connection held. */
  resolveWrites(writes: WriteSet): Promise<WriteSet>
  /** What the dialect caches unasked (`wrapDialect(d, { cacheAll })`), if anything. */
  readonly cacheAll: CacheSettings | undefined
  /** A runner of its own on the same driver, for work that outlives this statement (a background refresh). */
  detached(): DetachedRunner
}

/** A runner that holds its connection until released. */
export interface DetachedRunner extends QueryRunner {
  release(): Promise<void>
}
