import {
  CompiledQuery,
  createSelectQueryBuilder,
  type KyselyPlugin,
  type OperationNode,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryId,
  type QueryResult,
  type RootOperationNode,
  type SelectQueryBuilder,
  type UnknownRow,
} from 'kysely'
import { describe, rejectUnknown, requireOptionsObject, tagList, ttlSeconds } from '../util/validate.js'
import type { WarmupEntry } from '../warmup/manifest.js'

/** Per-query cache options, given to `.cached()` or `cached()`. */
export interface CachedOptions {
  /** Seconds the result may be served; defaults to the cache's `defaultTtl`. `0` = until invalidated or evicted. */
  readonly ttl?: number
  /** Extra invalidation handles: `cache.invalidate({ tags })` drops every result carrying one of them. */
  readonly tags?: readonly string[]
  /**
   * `false` skips the farm-wide `safe-` lock in degraded mode (each process then
   * queries on a miss, still once per process): for cheap queries not worth a wait.
   */
  readonly safe?: boolean
  /**
   * `true` caches the query even though it calls a volatile function (`now()`,
   * `random()`, `current_timestamp`, …), freezing its value for the TTL. Functions
   * with side effects (`nextval()`, advisory locks, …) are never cached.
   */
  readonly volatile?: boolean
  /**
   * Stale-while-revalidate: seconds past its TTL a result may still be served while
   * one process of the farm refreshes it in the background. Staleness by time only:
   * a result a write invalidated is never served. Default 0.
   */
  readonly swr?: number
}

/** The cache settings of one query, checked. */
export type CacheSettings = Omit<CacheMark, 'source'>

/**
 * `options` checked under the names the caller wrote (`what` names where they were given).
 *
 * ```ts
 * resolveCacheSettings({ ttl: 30, swr: 60 }, '.cached()') // { ttl: 30, tags: [], safe: true, volatile: false, swr: 60 }
 * ```
 */
export function resolveCacheSettings(options: CachedOptions, what: string): CacheSettings {
  requireOptionsObject(options, what)
  rejectUnknown(options, CACHED_OPTIONS, what)
  if (options.safe !== undefined && typeof options.safe !== 'boolean') {
    throw new TypeError(`safe must be a boolean, got ${describe(options.safe)}`)
  }
  if (options.volatile !== undefined && typeof options.volatile !== 'boolean') {
    throw new TypeError(`volatile must be a boolean, got ${describe(options.volatile)}`)
  }
  return {
    ttl: options.ttl === undefined ? undefined : ttlSeconds(options.ttl, 'ttl'),
    tags: options.tags === undefined ? [] : [...new Set(tagList(options.tags, 'tags'))].sort(),
    safe: options.safe ?? true,
    volatile: options.volatile ?? false,
    swr: options.swr === undefined ? 0 : ttlSeconds(options.swr, 'swr'),
  }
}

const CACHED_OPTIONS = ['ttl', 'tags', 'safe', 'volatile', 'swr']

/** What `.cached()` attached to one compiled query node. */
export interface CacheMark {
  readonly ttl: number | undefined
  /** Sorted and de-duplicated, so the same set of tags always derives the same key. */
  readonly tags: readonly string[]
  readonly safe: boolean
  /** Cache it even if it calls volatile functions. */
  readonly volatile: boolean
  /** Seconds it may be served stale (by time) while refreshed in the background. */
  readonly swr: number
  /** The builder's own node, shared by every execution: the place to memoise analysis. */
  readonly source: RootOperationNode
}

const marks = new WeakMap<OperationNode, CacheMark>()
const handledQueryIds = new WeakSet<QueryId>()
let warnedUnwrapped = false

/** The mark `.cached()` put on the node a query was compiled from, if any. */
export function markOf(node: OperationNode): CacheMark | undefined {
  return marks.get(node)
}

/** Called by the wrapped driver, so the marker knows the query reached a cache. */
export function noteHandled(queryId: QueryId): void {
  handledQueryIds.add(queryId)
}

const optedOut = new WeakSet<OperationNode>()

/** Whether the query said `.cached(false)`: never cached, whatever the dialect's `cacheAll` says. */
export function isOptedOut(node: OperationNode): boolean {
  return optedOut.has(node)
}

class CachedMarkerPlugin implements KyselyPlugin {
  readonly #settings: CacheSettings | false

  constructor(options: CachedOptions | false) {
    this.#settings = options === false ? false : resolveCacheSettings(options, '.cached()')
  }

  transformQuery({ node }: PluginTransformQueryArgs): RootOperationNode {
    // A fresh node per execution: the builder's node is shared with its clones and
    // with the same builder run without `.cached()`, so it must never carry the mark.
    const marked = Object.freeze({ ...node })
    if (this.#settings === false) optedOut.add(marked)
    else marks.set(marked, { ...this.#settings, source: node })
    return marked
  }

  async transformResult({ queryId, result }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (!warnedUnwrapped && this.#settings !== false && !handledQueryIds.has(queryId)) {
      warnedUnwrapped = true
      process.emitWarning(
        '.cached() query reached no cache and ran uncached: its Kysely dialect is not wrapped with cache.wrapDialect(), or a plugin added after .cached() rebuilt the query (add plugins before .cached()).',
        { code: 'KYSELY_MEMCACHE_UNWRAPPED' },
      )
    }
    return result
  }
}

/**
 * Marks a select query as cacheable, for use with `$call`:
 *
 * ```ts
 * await db.selectFrom('person').selectAll().$call(cached({ ttl: 30 })).execute()
 * ```
 */
export function cached(options: CachedOptions | false = {}) {
  const plugin = new CachedMarkerPlugin(options)
  return <DB, TB extends keyof DB, O>(qb: SelectQueryBuilder<DB, TB, O>): SelectQueryBuilder<DB, TB, O> =>
    qb.withPlugin(plugin)
}

declare module 'kysely' {
  interface SelectQueryBuilder<DB, TB extends keyof DB, O> {
    /**
     * Serves this query from the cache when a fresh result is there, and stores the
     * result when not. Writes through the same wrapped dialect invalidate it.
     * `.cached(false)` keeps it out of the cache even under the dialect's `cacheAll`.
     *
     * ```ts
     * const person = await db.selectFrom('person').selectAll()
     *   .where('id', '=', 1)
     *   .cached({ ttl: 30, tags: ['person:1'] })
     *   .executeTakeFirst()
     * ```
     */
    cached(options?: CachedOptions | false): SelectQueryBuilder<DB, TB, O>
  }
}

// SelectQueryBuilderImpl is not exported; reach its prototype through a throwaway instance.
const selectQueryBuilderPrototype = Object.getPrototypeOf(
  createSelectQueryBuilder({} as Parameters<typeof createSelectQueryBuilder>[0]),
) as { cached?: unknown }

if (selectQueryBuilderPrototype.cached === undefined) {
  Object.defineProperty(selectQueryBuilderPrototype, 'cached', {
    configurable: true,
    writable: true,
    value: function cachedMethod<DB, TB extends keyof DB, O>(
      this: SelectQueryBuilder<DB, TB, O>,
      options?: CachedOptions | false,
    ): SelectQueryBuilder<DB, TB, O> {
      return this.$call(cached(options))
    },
  })
}

const declaredWrites = new WeakMap<OperationNode, readonly string[]>()

/** The tables a raw statement declared it writes, if it did. */
export function declaredWritesOf(node: OperationNode): readonly string[] | undefined {
  return declaredWrites.get(node)
}

class DeclareWritesPlugin implements KyselyPlugin {
  readonly #tables: readonly string[]

  constructor(tables: readonly string[]) {
    this.#tables = tables
  }

  transformQuery({ node }: PluginTransformQueryArgs): RootOperationNode {
    const marked = Object.freeze({ ...node })
    declaredWrites.set(marked, this.#tables)
    return marked
  }

  async transformResult({ result }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return result
  }
}

/**
 * Narrows what a raw statement invalidates. Without it, a raw statement that may
 * write invalidates every cached result of the namespace.
 *
 * ```ts
 * await sql`update person set age = age + 1`.withPlugin(declareWrites(['person'])).execute(db)
 * ```
 */
export function declareWrites(tables: readonly string[]): KyselyPlugin {
  return new DeclareWritesPlugin(tagList(tables, 'declareWrites(tables)'))
}

/** A warm-up entry to replay, and what came of it. */
export interface WarmMark {
  readonly entry: WarmupEntry
  /** Set by the engine: whether the result is now in the store. */
  stored: boolean
  /** Set by the engine that replayed it, so a replay through some other dialect is caught. */
  replayedBy: object | undefined
}

const warmMarks = new WeakMap<OperationNode, WarmMark>()

export function warmMarkOf(node: OperationNode): WarmMark | undefined {
  return warmMarks.get(node)
}

/** A statement that makes a wrapped dialect replay `entry` into the cache instead of running a query. */
export function warmupStatement(entry: WarmupEntry): { compiled: CompiledQuery; mark: WarmMark } {
  const compiled = CompiledQuery.raw(entry.sql, [...entry.parameters])
  const mark: WarmMark = { entry, stored: false, replayedBy: undefined }
  warmMarks.set(compiled.query, mark)
  return { compiled, mark }
}
