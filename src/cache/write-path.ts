import type { CompiledQuery } from 'kysely'
import { declaredWritesOf } from '../kysely/cached.js'
import { classifyRawStatement } from '../kysely/raw-statement.js'
import { analyzeStatement, normalizeTableName } from '../kysely/statement.js'
import type { CacheCounters } from './counters.js'
import type { QueryRunner, WriteSet } from './query-runner.js'
import type { Generations } from './generations.js'
import { InvalidationFailedError } from './invalidation-failed-error.js'
import type { NearCache } from './near-cache.js'

/** What the write path needs from the engine. */
export interface WritePathConfig {
  readonly defaultSchema: string
  readonly generations: Generations
  readonly counters: CacheCounters
  /** Counts and reports a cache failure. */
  readonly failed: (error: unknown) => void
  /** This process's copies of recent results, dropped here when it writes what they read. */
  readonly near: NearCache | undefined
}

/** Tables, tags or the whole namespace to invalidate. */
export interface InvalidationTarget {
  readonly tables?: readonly string[]
  readonly tags?: readonly string[]
  readonly namespace?: boolean
}

/**
 * The invalidation path: which tables a statement writes (raw transaction
 * statements included), what a transaction wrote, and the generation bumps
 * once it is committed.
 *
 * ```ts
 * const writes = writePath.writesOf(runner, compiled)
 * const result = await runner.run(compiled)
 * if (writes !== undefined) await writePath.afterWrite(runner, writes)
 * ```
 */
export class WritePath {
  readonly #config: WritePathConfig
  /** Bumped by every write this process makes, so a read never joins a flight that began before it. */
  #epoch = 0

  constructor(config: WritePathConfig) {
    this.#config = config
  }

  /** How many writes this process has made; part of a flight's key. */
  get epoch(): number {
    return this.#epoch
  }

  /** What a statement writes, handling transaction statements sent as raw SQL; `undefined` when it writes nothing. */
  writesOf(runner: QueryRunner, compiled: CompiledQuery): WriteSet | undefined {
    const node = compiled.query
    if (node.kind === 'SelectQueryNode' && node.with === undefined) {
      return undefined
    }
    if (node.kind === 'RawNode') {
      return this.#rawWrites(runner, compiled)
    }
    // Memoised per node by the walk itself: a reused builder is analysed once.
    const info = analyzeStatement(node, this.#config.defaultSchema)
    if (info.kind === 'write') {
      return { namespace: false, tables: new Set(info.writes) }
    }
    // Schema statements (create, alter, drop, …) and raw CTE bodies may change what any cached query returns.
    return info.hiddenWrites ? { namespace: true, tables: new Set(info.writes) } : undefined
  }

  /** Applies a statement's writes now, or adds them to the transaction's. */
  async afterWrite(runner: QueryRunner, statementWrites: WriteSet): Promise<void> {
    // The tables as the database resolved them for this connection, while it is held.
    const writes = await runner.resolveWrites(statementWrites)
    const pending = runner.transactionWrites
    if (pending === undefined) {
      await this.commit(writes)
      return
    }
    pending.namespace ||= writes.namespace
    for (const table of writes.tables) pending.tables.add(table)
  }

  /** Applies what a committed transaction wrote. */
  async commit(writes: WriteSet | undefined): Promise<void> {
    if (writes !== undefined && (writes.namespace || writes.tables.size > 0)) {
      await this.invalidate({ tables: [...writes.tables], namespace: writes.namespace })
    }
  }

  /** Bumps generations; resolves `false` (and counts an error) when the store could not record it. */
  async invalidate(target: InvalidationTarget): Promise<boolean> {
    this.#epoch++
    const tables = target.tables?.map((table) => normalizeTableName(table, this.#config.defaultSchema))
    // Whatever the tier records, this process never serves its own copy of what it just wrote.
    const near = this.#config.near
    if (target.namespace) {
      near?.clear()
    } else {
      near?.dropReadersOf(this.#config.generations.keysFor(tables ?? [], target.tags ?? []).slice(1))
    }
    try {
      await this.#config.generations.bump({ ...target, tables })
      this.#config.counters.invalidated()
      return true
    } catch (error) {
      this.#config.failed(
        new InvalidationFailedError({ tables: tables ?? [], tags: target.tags ?? [], namespace: target.namespace ?? false }, { cause: error }),
      )
      return false
    }
  }

  #rawWrites(runner: QueryRunner, compiled: CompiledQuery): WriteSet | undefined {
    const declared = declaredWritesOf(compiled.query)
    if (declared !== undefined) {
      return {
        namespace: false,
        tables: new Set(declared.map((table) => normalizeTableName(table, this.#config.defaultSchema))),
      }
    }
    switch (classifyRawStatement(compiled.sql)) {
      case 'write':
        return { namespace: true, tables: new Set() }
      case 'begin':
        runner.beginTransaction()
        return undefined
      case 'commit':
        // Applied once the commit has succeeded, after the statement ran.
        return runner.endTransaction() ?? undefined
      case 'rollback':
        runner.endTransaction()
        return undefined
      default:
        return undefined
    }
  }
}
