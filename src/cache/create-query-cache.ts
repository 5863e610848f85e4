import type { Dialect } from 'kysely'
import { CacheEngine } from './engine.js'
import { Codec, validateTypes, type CacheType } from './codec.js'
import { createCachingDialect } from '../kysely/caching-dialect.js'
import { resolveWrapOptions, type WrapDialectOptions } from '../kysely/scope.js'
import { validateNamespace } from '../keys.js'
import { describe, validateDelay, validatePositive, validatePositiveInteger, validateTags, validateTtl } from '../util/options.js'
import type { CacheStats } from './counters.js'
import { ModeView, type ModeChange } from '../tier/mode-view.js'
import { resolveSafeMode, type SafeModeOptions } from './safe-lock.js'
import { MemcachedStore, type StoreEvent } from '../store/memcached/memcached-store.js'
import { MemoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import type { CacheMode } from '../tier/tier-state.js'
import type { Registry } from 'prom-client'
import { FarmStatistics } from '../statistics/farm-statistics.js'
import { channels } from '../observability/channels.js'
import { registerMetrics } from '../observability/metrics.js'
import { QueryStatistics, type HotQuery } from '../statistics/query-statistics.js'
import { runWarmup, type WarmupOptions, type WarmupReport } from '../warmup/replay.js'
import { createManifest, parseManifest, type WarmupManifest } from '../warmup/manifest.js'

export interface QueryCacheOptions {
  /**
   * memcached nodes as `host:port`, placed on a consistent-hash (ketama) ring.
   * Omit for the embedded in-process store (one process only).
   */
  readonly servers?: readonly string[]
  /** Any other {@link Store}; excludes `servers`. */
  readonly store?: Store
  /** Prefix of every key, so several applications can share memcached. Default `"kysely"`. */
  readonly namespace?: string
  /** Seconds a result is served when `.cached()` names no `ttl`. Default 60. */
  readonly defaultTtl?: number
  /**
   * Longest a query waits for the cache, all its cache steps together, before
   * going on without it (a hung node costs a query at most this). Default 250 ms.
   */
  readonly timeoutMs?: number
  /** Consecutive failures after which a node leaves this process's ring. Default 3. */
  readonly failureThreshold?: number
  /** How long a node stays out of the ring before it is probed again. Default 5000 ms. */
  readonly retryAfterMs?: number
  /** TTL cap, seconds, for anything stored on a stand-in node while a node is out. Default 10. */
  readonly fallbackTtl?: number
  /**
   * Largest value stored, bytes; larger results are not cached. Default: 1 MiB less
   * 1 KiB with memcached (its item limit less item headers), 1 MiB embedded.
   */
  readonly maxValueBytes?: number
  /** Nodes holding a copy of each generation, so losing one node does not invalidate every result. Default 3. */
  readonly generationReplicas?: number
  /**
   * Nodes holding a copy of a hot result (one the statistics saw requested
   * more than once lately): when a node dies, its hot keys are still hits on the next node. Default 2; 1 turns it off.
   */
  readonly hotReplicas?: number
  /** Bounds of the embedded store. */
  readonly memory?: { readonly maxEntries?: number; readonly maxBytes?: number }
  /** Schema of unqualified table names, so `person` and `public.person` are one table. Default `"public"`. */
  readonly defaultSchema?: string
  /** Called with each cache failure (the query itself went on without the cache). */
  readonly onError?: (error: unknown) => void
  /**
   * The farm-wide `safe-` lock used on misses while the tier is degraded (see
   * docs/safe-mode.md); `false` turns it off. Default: the web-latency settings
   * of {@link SafeModeOptions}; `ORIGINAL_SAFE_MODE` is the 5 s × 6 scheme.
   */
  readonly safeMode?: SafeModeOptions | false
  /** How often this process reads the monitor's shared flag and reports its hit/miss counts. Default 1000 ms. */
  readonly modeRefreshMs?: number
  /**
   * With no monitor running: how long this process stays degraded after a node it
   * had taken out rejoined (flushed, so empty). Default 30 000 ms, the monitor's default.
   */
  readonly settleMs?: number
  /** Mode changes and memcached node events, as they happen. Must not throw. */
  readonly onEvent?: (event: CacheEvent) => void
  /**
   * Per-query-shape statistics for warm-up (see docs/warmup.md); `false` turns
   * them off. With memcached, each process merges them into a farm-wide document
   * every `shareEveryMs` (`false`: this process only).
   */
  readonly statistics?:
    | false
    | { readonly capacity?: number; readonly halfLifeMs?: number; readonly shareEveryMs?: number | false; readonly farmCapacity?: number }
  /** A prom-client registry to publish metrics on (names in docs/operations.md). */
  readonly metrics?: { readonly registry: Registry }
  /**
   * The application's own classes in rows (what custom pg type parsers return), as
   * superjson custom transformers: `{ name, isApplicable, serialize, deserialize }`.
   * Results holding any other class are not cached. The sorted names version the
   * entries: caches with different lists never read each other's.
   */
  readonly types?: readonly CacheType[]
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

const KNOWN_OPTIONS = new Set([
  'servers', 'store', 'namespace', 'defaultTtl', 'timeoutMs', 'failureThreshold', 'retryAfterMs',
  'fallbackTtl', 'maxValueBytes', 'generationReplicas', 'hotReplicas', 'memory', 'defaultSchema', 'onError',
  'safeMode', 'modeRefreshMs', 'settleMs', 'onEvent', 'statistics', 'metrics', 'types',
])

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
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`createQueryCache options must be an object, got ${describe(options)}`)
  }
  for (const name of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(name)) {
      throw new TypeError(`unknown option ${JSON.stringify(name)} for createQueryCache`)
    }
  }
  const namespace = validateNamespace(options.namespace ?? 'kysely')
  const defaultTtl = validateTtl(options.defaultTtl ?? 60, 'defaultTtl')
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
  const generationReplicas = validatePositiveInteger(options.generationReplicas ?? 3, 'generationReplicas')
  const hotReplicas = validatePositiveInteger(options.hotReplicas ?? 2, 'hotReplicas')
  const safeMode = resolveSafeMode(options.safeMode)
  const refreshMs = validateDelay(options.modeRefreshMs ?? 1000, 'modeRefreshMs')
  const timeoutMs = validateDelay(options.timeoutMs ?? 250, 'timeoutMs')
  const settleMs = options.settleMs === 0 ? 0 : validateDelay(options.settleMs ?? 30_000, 'settleMs')
  const codec = new Codec(validateTypes(options.types ?? []))

  const statisticsOptions = options.statistics ?? {}
  if (statisticsOptions !== false && (statisticsOptions === null || typeof statisticsOptions !== 'object')) {
    throw new TypeError(`statistics must be an object or false, got ${describe(statisticsOptions)}`)
  }
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
  // One process has nothing to coordinate: the embedded store needs no mode.
  if (!(store instanceof MemoryStore)) {
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
    statistics !== undefined && shareEveryMs !== false && !(store instanceof MemoryStore)
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
          nodes: () => (store instanceof MemcachedStore ? store.nodeStates() : []),
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
    hotQueries: ({ limit = 20 } = {}) => statistics?.top(validatePositiveInteger(limit, 'limit')) ?? [],
    exportWarmupManifest: async ({ limit = 500, scope } = {}) => {
      validatePositiveInteger(limit, 'limit')
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
        tables: target.tables === undefined ? undefined : validateTags(target.tables, 'tables'),
        tags: target.tags === undefined ? undefined : validateTags(target.tags, 'tags'),
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
    options.maxValueBytes === undefined ? undefined : validatePositiveInteger(options.maxValueBytes, 'maxValueBytes')
  if (servers === undefined) {
    for (const name of MEMCACHED_ONLY) {
      if (options[name] !== undefined) {
        throw new TypeError(`${name} applies to memcached servers only, and no servers were given`)
      }
    }
    const maxBytes = memory?.maxBytes
    if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 1024)) {
      throw new RangeError(`memory.maxBytes must be an integer of at least 1024, got ${describe(maxBytes)}`)
    }
    return new MemoryStore({
      maxEntries: memory?.maxEntries === undefined ? undefined : validatePositiveInteger(memory.maxEntries, 'memory.maxEntries'),
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
    failureThreshold: failureThreshold === undefined ? undefined : validatePositiveInteger(failureThreshold, 'failureThreshold'),
    retryAfterMs: retryAfterMs === undefined ? undefined : validateDelay(retryAfterMs, 'retryAfterMs'),
    fallbackTtlSeconds: fallbackTtl === undefined ? undefined : validatePositiveInteger(fallbackTtl, 'fallbackTtl'),
    maxValueBytes,
    onEvent,
  })
}

