import type { Dialect } from 'kysely'
import { CacheEngine } from './engine.js'
import { Codec, validateTypes, type CacheType } from './codec.js'
import { createCachingDialect } from '../kysely/caching-dialect.js'
import { resolveWrapOptions, type WrapDialectOptions } from '../kysely/scope.js'
import { validateNamespace } from '../keys.js'
import {
  delayMs,
  describe,
  positiveInteger,
  positiveNumber,
  rejectUnknown,
  requireOptionsObject,
  tagList,
  ttlSeconds,
  wholeSeconds,
} from '../util/validate.js'
import type { CacheStats } from './counters.js'
import { ModeView, type ModeChange } from '../tier/mode-view.js'
import { resolveSafeMode, type SafeModeOptions } from './safe-lock.js'
import { MemcachedStore, type StoreEvent } from '../store/memcached/memcached-store.js'
import { isNodeAware } from '../store/node-aware-store.js'
import { MemoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import type { CacheMode } from '../tier/tier-state.js'
import { FarmStatistics } from '../statistics/farm-statistics.js'
import { channels } from '../observability/channels.js'
import { registerMetrics, type MetricsRegistry } from '../observability/metrics.js'
import { QueryStatistics, type HotQuery } from '../statistics/query-statistics.js'
import { runWarmup, type WarmupOptions, type WarmupReport } from '../warmup/replay.js'
import { createManifest, parseManifest, type WarmupManifest } from '../warmup/manifest.js'

export interface QueryCacheOptions {
  /**
   * memcached nodes as `host:port`, placed on a consistent-hash (ketama) ring.
   * Omit for the embedded in-process store (one process only).
   */
  readonly servers?: readonly string[] | undefined
  /** Any other {@link Store}; excludes `servers`. */
  readonly store?: Store | undefined
  /** Prefix of every key, so several applications can share memcached. Default `"kysely"`. */
  readonly namespace?: string | undefined
  /** Seconds a result is served when `.cached()` names no `ttl`. Default 60. */
  readonly defaultTtl?: number | undefined
  /**
   * Longest a query waits for the cache, all its cache steps together, before
   * going on without it (a hung node costs a query at most this). Default 250 ms.
   */
  readonly timeoutMs?: number | undefined
  /** Consecutive failures after which a node leaves this process's ring. Default 3. */
  readonly failureThreshold?: number | undefined
  /** How long a node stays out of the ring before it is probed again. Default 5000 ms. */
  readonly retryAfterMs?: number | undefined
  /** TTL cap, seconds, for anything stored on a stand-in node while a node is out. Default 10. */
  readonly fallbackTtl?: number | undefined
  /**
   * Largest value stored, bytes; larger results are not cached. Default: 1 MiB less
   * 1 KiB with memcached (its item limit less item headers), 1 MiB embedded.
   */
  readonly maxValueBytes?: number | undefined
  /** Nodes holding a copy of each generation, so losing one node does not invalidate every result. Default 3. */
  readonly generationReplicas?: number | undefined
  /**
   * Nodes holding a copy of a hot result (one the statistics saw requested
   * more than once lately): when a node dies, its hot keys are still hits on the next node. Default 2; 1 turns it off.
   */
  readonly hotReplicas?: number | undefined
  /** Bounds of the embedded store. */
  readonly memory?: { readonly maxEntries?: number; readonly maxBytes?: number } | undefined
  /** Schema of unqualified table names, so `person` and `public.person` are one table. Default `"public"`. */
  readonly defaultSchema?: string | undefined
  /** Called with each cache failure (the query itself went on without the cache). */
  readonly onError?: ((error: unknown) => void) | undefined
  /**
   * The farm-wide `safe-` lock used on misses while the tier is degraded (see
   * docs/safe-mode.md); `false` turns it off. Default: the web-latency settings
   * of {@link SafeModeOptions}; `ORIGINAL_SAFE_MODE` is the 5 s × 6 scheme.
   */
  readonly safeMode?: SafeModeOptions | false | undefined
  /** How often this process reads the monitor's shared flag and reports its hit/miss counts. Default 1000 ms. */
  readonly modeRefreshMs?: number | undefined
  /**
   * With no monitor running: how long this process stays degraded after a node it
   * had taken out rejoined (flushed, so empty). Default 30 000 ms, the monitor's default.
   */
  readonly settleMs?: number | undefined
  /** Mode changes and memcached node events, as they happen. Must not throw. */
  readonly onEvent?: ((event: CacheEvent) => void) | undefined
  /**
   * Per-query-shape statistics for warm-up (see docs/warmup.md); `false` turns
   * them off. With memcached, each process merges them into a farm-wide document
   * every `shareEveryMs` (`false`: this process only).
   */
  readonly statistics?:
    | false
    | { readonly capacity?: number; readonly halfLifeMs?: number; readonly shareEveryMs?: number | false; readonly farmCapacity?: number }
    | undefined
  /** A prom-client registry to publish metrics on (names in docs/operations.md). */
  readonly metrics?: { readonly registry: MetricsRegistry } | undefined
  /**
   * The application's own classes in rows (what custom pg type parsers return), as
   * superjson custom transformers: `{ name, isApplicable, serialize, deserialize }`.
   * Results holding any other class are not cached. The sorted names version the
   * entries: caches with different lists never read each other's.
   */
  readonly types?: readonly CacheType[] | undefined
}

/** What `onEvent` receives. */
export type CacheEvent = ({ readonly type: 'mode' } & ModeChange) | StoreEvent

export interface InvalidateTarget {
  /** Tables whose cached reads are dropped, `person` or `schema.person`. */
  readonly tables?: readonly string[]
  /** Tags given to `.cached({ tags })`. */
  readonly tags?: readonly string[]
  /** Drops every cached result of the namespace. */
  readonly all?: boolean
}

export interface QueryCache {
  /**
   * Wraps a dialect so `.cached()` queries use this cache and writes invalidate it.
   * Its keys are scoped to the database, role and search_path its first connection
   * reports, or to `options.scope` (see docs/guarantees.md, "Key scope").
   *
   * ```ts
   * const tenantA = cache.wrapDialect(new PostgresDialect({ pool: new pg.Pool({ options: '-c search_path=tenant_a' }) }))
   * const named = cache.wrapDialect(dialect, { scope: 'tenant-a', searchPath: ['tenant_a'] })
   * ```
   */
  wrapDialect(dialect: Dialect, options?: WrapDialectOptions): Dialect
  /**
   * Invalidates cached results in every process sharing the store. Resolves
   * `false` when the store could not record it (the failure is counted).
   */
  invalidate(target: InvalidateTarget): Promise<boolean>
  /** Counters since creation. */
  stats(): CacheStats
  /** The store behind this cache. */
  readonly store: Store
  /** Prefix of every key this cache writes. */
  readonly namespace: string
  /**
   * This process's mode: `degraded` while the monitor's shared flag says so, or
   * while this process has a node out of its ring, or when an operator forced it.
   */
  readonly mode: CacheMode
  /** Reads the shared flag now instead of at the next refresh; resolves the mode. */
  refreshMode(): Promise<CacheMode>
  /**
   * The most valuable query shapes seen by this process: requests × mean
   * database time, over the statistics' decay window. Empty when statistics are off.
   */
  hotQueries(options?: { readonly limit?: number }): HotQuery[]
  /**
   * A warm-up manifest of the most valuable shapes: the farm's (merged through
   * memcached) when shared statistics are on, else this process's.
   */
  exportWarmupManifest(options?: { readonly limit?: number; readonly scope?: 'process' | 'farm' }): Promise<WarmupManifest>
  /** Validates a manifest (text or parsed JSON); throws a `ManifestError` naming what is wrong. */
  importWarmupManifest(manifest: string | object): WarmupManifest
  /** Replays a manifest into the cache, read-only, highest score first. */
  warmup(manifest: WarmupManifest | string | object, options: WarmupOptions): Promise<WarmupReport>
  /** Stops background work and closes the store's connections. Wrapped dialects fall back to the database afterwards. */
  close(): Promise<void>
}

const KNOWN_OPTIONS = [
  'servers', 'store', 'namespace', 'defaultTtl', 'timeoutMs', 'failureThreshold', 'retryAfterMs',
  'fallbackTtl', 'maxValueBytes', 'generationReplicas', 'hotReplicas', 'memory', 'defaultSchema', 'onError',
  'safeMode', 'modeRefreshMs', 'settleMs', 'onEvent', 'statistics', 'metrics', 'types',
]
const STATISTICS_OPTIONS = ['capacity', 'halfLifeMs', 'shareEveryMs', 'farmCapacity']
const MEMORY_OPTIONS = ['maxEntries', 'maxBytes']

/**
 * Creates a query cache.
 *
 * ```ts
 * const cache = createQueryCache({ servers: ['10.0.0.1:11211', '10.0.0.2:11211'], namespace: 'app' })
 * const db = new Kysely<DB>({ dialect: cache.wrapDialect(new PostgresDialect({ pool })) })
 * await db.selectFrom('person').selectAll().where('id', '=', 1).cached({ ttl: 30 }).execute()
 * ```
 */
export function createQueryCache(options: QueryCacheOptions = {}): QueryCache {
  rejectUnknown(requireOptionsObject(options, 'createQueryCache'), KNOWN_OPTIONS, 'createQueryCache')
  const namespace = validateNamespace(options.namespace ?? 'kysely')
  const defaultTtl = ttlSeconds(options.defaultTtl ?? 60, 'defaultTtl')
  const defaultSchema = options.defaultSchema ?? 'public'
  if (typeof defaultSchema !== 'string' || defaultSchema === '') {
    throw new TypeError(`defaultSchema must be a non-empty string, got ${describe(defaultSchema)}`)
  }
  const onError = options.onError ?? (() => {})
  if (typeof onError !== 'function') {
    throw new TypeError(`onError must be a function, got ${describe(onError)}`)
  }
  const onEvent = options.onEvent ?? (() => {})
  if (typeof onEvent !== 'function') {
    throw new TypeError(`onEvent must be a function, got ${describe(onEvent)}`)
  }
  const generationReplicas = positiveInteger(options.generationReplicas ?? 3, 'generationReplicas')
  const hotReplicas = positiveInteger(options.hotReplicas ?? 2, 'hotReplicas')
  const safeMode = resolveSafeMode(options.safeMode)
  const refreshMs = delayMs(options.modeRefreshMs ?? 1000, 'modeRefreshMs')
  const timeoutMs = delayMs(options.timeoutMs ?? 250, 'timeoutMs')
  const settleMs = options.settleMs === 0 ? 0 : delayMs(options.settleMs ?? 30_000, 'settleMs')
  const codec = new Codec(validateTypes(options.types ?? []))

  const statisticsOptions = resolveStatistics(options.statistics)
  const statistics =
    statisticsOptions === false
      ? undefined
      : new QueryStatistics({
          ...(statisticsOptions.capacity === undefined ? {} : { capacity: statisticsOptions.capacity }),
          ...(statisticsOptions.halfLifeMs === undefined ? {} : { halfLifeMs: statisticsOptions.halfLifeMs }),
        })
  const registry = options.metrics?.registry
  if (options.metrics !== undefined && (typeof registry !== 'object' || registry === null)) {
    throw new TypeError(`metrics.registry must be a prom-client Registry, got ${describe(registry)}`)
  }

  let modeView: ModeView | undefined
  const store = createStore(options, timeoutMs, (event) => {
    if (channels.node.hasSubscribers) channels.node.publish({ namespace, ...event })
    onEvent(event)
    // After the node event, so listeners see the cause before the mode change it brings.
    if (event.type !== 'error') modeView?.noteLocalChange()
  })
  const engine = new CacheEngine({
    store,
    namespace,
    defaultTtl,
    defaultSchema,
    generationReplicas,
    timeoutMs,
    safeMode,
    mode: () => modeView?.mode ?? 'normal',
    statistics,
    hotReplicas,
    codec,
    onError,
  })
  // Only a node-aware store is shared by processes that must agree on a mode.
  if (isNodeAware(store)) {
    modeView = new ModeView({
      store,
      namespace,
      refreshMs,
      settleMs,
      counters: engine.counters,
      onChange: (change) => {
        if (channels.mode.hasSubscribers) channels.mode.publish({ namespace, ...change })
        onEvent({ type: 'mode', ...change })
      },
      onError,
    })
    modeView.start()
  }
  const shareEveryMs = statisticsOptions === false ? false : (statisticsOptions.shareEveryMs ?? 10_000)
  const farm =
    statistics !== undefined && shareEveryMs !== false && isNodeAware(store)
      ? new FarmStatistics({
          store,
          namespace,
          local: statistics,
          intervalMs: shareEveryMs,
          ...(statisticsOptions !== false && statisticsOptions.farmCapacity !== undefined
            ? { capacity: statisticsOptions.farmCapacity }
            : {}),
          onError,
        })
      : undefined
  farm?.start()

  let warming = { done: 0, total: 0, running: false }
  const mode = (): CacheMode => modeView?.mode ?? 'normal'
  const unregister =
    registry === undefined
      ? undefined
      : registerMetrics(registry, {
          namespace,
          stats: () => engine.counters.snapshot(),
          get mode() {
            return mode()
          },
          nodes: () => (isNodeAware(store) ? store.nodeStates() : []),
          warmup: () => warming,
        })

  return {
    store,
    namespace,
    get mode() {
      return mode()
    },
    refreshMode: async () => {
      await modeView?.refresh()
      return mode()
    },
    hotQueries: ({ limit = 20 } = {}) => statistics?.top(positiveInteger(limit, 'limit')) ?? [],
    exportWarmupManifest: async ({ limit = 500, scope } = {}) => {
      positiveInteger(limit, 'limit')
      if (scope !== undefined && scope !== 'process' && scope !== 'farm') {
        throw new TypeError(`scope must be "process" or "farm", got ${describe(scope)}`)
      }
      if (farm !== undefined && scope !== 'process') {
        await farm.push()
        return createManifest(namespace, (await farm.read()).slice(0, limit))
      }
      if (scope === 'farm') {
        throw new TypeError('scope "farm" needs memcached servers and shared statistics (statistics.shareEveryMs)')
      }
      return createManifest(namespace, statistics?.top(limit) ?? [])
    },
    importWarmupManifest: (manifest) => parseManifest(manifest),
    warmup: async (manifest, warmupOptions) => {
      // Validated whatever its source: replay runs only single read-only statements.
      const parsed = parseManifest(manifest)
      warming = { done: 0, total: 0, running: true }
      try {
        return await runWarmup(
          parsed,
          {
            ...warmupOptions,
            onProgress: (progress) => {
              warming = { done: progress.done, total: progress.total, running: true }
              if (channels.warmup.hasSubscribers) {
                channels.warmup.publish({ namespace, done: progress.done, total: progress.total, outcome: progress.outcome, key: progress.entry.key })
              }
              warmupOptions.onProgress?.(progress)
            },
          },
          engine,
        )
      } finally {
        warming = { ...warming, running: false }
      }
    },
    wrapDialect: (dialect, wrapOptions) => createCachingDialect(dialect, engine, resolveWrapOptions(wrapOptions, defaultSchema)),
    invalidate: async (target) => {
      if (target === null || typeof target !== 'object') {
        throw new TypeError(`invalidate() takes { tables?, tags?, all? }, got ${describe(target)}`)
      }
      return engine.invalidate({
        tables: target.tables === undefined ? undefined : tagList(target.tables, 'tables'),
        tags: target.tags === undefined ? undefined : tagList(target.tags, 'tags'),
        namespace: target.all === true,
      })
    },
    stats: () => engine.counters.snapshot(),
    close: async () => {
      unregister?.()
      await farm?.stop()
      await modeView?.stop()
      await store.close()
    },
  }
}

const MEMCACHED_ONLY = ['failureThreshold', 'retryAfterMs', 'fallbackTtl'] as const

type StatisticsOptions = Exclude<QueryCacheOptions['statistics'], false | undefined>

/** `statistics` checked under the names the caller wrote, before the classes that take them see other names. */
function resolveStatistics(value: unknown): StatisticsOptions | false {
  if (value === false) return false
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object') {
    throw new TypeError(`statistics must be an object or false, got ${describe(value)}`)
  }
  rejectUnknown(value, STATISTICS_OPTIONS, 'statistics')
  const { capacity, halfLifeMs, shareEveryMs, farmCapacity } = value as StatisticsOptions
  if (capacity !== undefined) positiveInteger(capacity, 'statistics.capacity')
  if (halfLifeMs !== undefined) positiveNumber(halfLifeMs, 'statistics.halfLifeMs', 'milliseconds')
  if (shareEveryMs !== undefined && shareEveryMs !== false) delayMs(shareEveryMs, 'statistics.shareEveryMs')
  if (farmCapacity !== undefined) positiveInteger(farmCapacity, 'statistics.farmCapacity')
  return value as StatisticsOptions
}

function createStore(options: QueryCacheOptions, timeoutMs: number, onEvent: (event: StoreEvent) => void): Store {
  const { servers, store, memory } = options
  if (store !== undefined) {
    if (servers !== undefined) {
      throw new TypeError('give either servers or store, not both')
    }
    for (const name of [...MEMCACHED_ONLY, 'maxValueBytes', 'memory'] as const) {
      if (options[name] !== undefined) {
        throw new TypeError(`${name} does not apply with a custom store: configure the store itself`)
      }
    }
    return store
  }
  const maxValueBytes =
    options.maxValueBytes === undefined ? undefined : positiveInteger(options.maxValueBytes, 'maxValueBytes')
  if (servers === undefined) {
    for (const name of MEMCACHED_ONLY) {
      if (options[name] !== undefined) {
        throw new TypeError(`${name} applies to memcached servers only, and no servers were given`)
      }
    }
    if (memory !== undefined) rejectUnknown(requireOptionsObject(memory, 'memory'), MEMORY_OPTIONS, 'memory')
    const maxBytes = memory?.maxBytes
    if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 1024)) {
      throw new RangeError(`memory.maxBytes must be an integer of at least 1024, got ${describe(maxBytes)}`)
    }
    return new MemoryStore({
      maxEntries: memory?.maxEntries === undefined ? undefined : positiveInteger(memory.maxEntries, 'memory.maxEntries'),
      maxBytes,
      maxValueBytes,
    })
  }
  if (memory !== undefined) {
    throw new TypeError('memory applies to the embedded store only, and servers were given')
  }
  const { failureThreshold, retryAfterMs, fallbackTtl } = options
  return new MemcachedStore({
    servers: servers as string[],
    timeoutMs,
    failureThreshold: failureThreshold === undefined ? undefined : positiveInteger(failureThreshold, 'failureThreshold'),
    retryAfterMs: retryAfterMs === undefined ? undefined : delayMs(retryAfterMs, 'retryAfterMs'),
    // Checked here under the caller's name: the store knows it as fallbackTtlSeconds.
    fallbackTtlSeconds: fallbackTtl === undefined ? undefined : wholeSeconds(fallbackTtl, 'fallbackTtl'),
    maxValueBytes,
    onEvent,
  })
}

