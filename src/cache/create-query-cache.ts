import type { Dialect } from 'kysely'
import { CacheEngine } from './engine.js'
import { Codec, validateTypes } from './codec.js'
import { createCachingDialect } from '../kysely/caching-dialect.js'
import { resolveWrapOptions, type WrapDialectOptions } from '../kysely/wrap-options.js'
import { validateNamespace } from '../keys.js'
import { delayMs, describe, numberFrom, positiveInteger, positiveNumber, rejectUnknown, requireOptionsObject, signingSecrets, tagList, ttlSeconds } from '../util/validate.js'
import type { RejectionReason } from '../store/value-signer.js'
import { RejectionReporter } from './rejection-reporter.js'
import type { CacheStats } from './counters.js'
import { ModeView } from '../tier/mode-view.js'
import { resolveSafeMode } from './safe-lock.js'
import { isNodeAware } from '../store/node-aware-store.js'
import type { Store } from '../store/store.js'
import type { CacheMode } from '../tier/tier-state.js'
import { FarmStatistics } from '../statistics/farm-statistics.js'
import { createStore } from './open-store.js'
import type { QueryCacheOptions } from './query-cache-options.js'
import { resolveStatistics } from './statistics-options.js'
import { resolveNearCache } from './near-cache-options.js'
import { channels } from '../observability/channels.js'
import { registerMetrics } from '../observability/metrics.js'
import type { HotQuery } from '../statistics/query-shape.js'
import { QueryStatistics } from '../statistics/query-statistics.js'
import { runWarmup, type WarmupOptions, type WarmupReport } from '../warmup/replay.js'
import { createManifest, parseManifest, type WarmupManifest } from '../warmup/manifest.js'

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
  'safeMode', 'modeRefreshMs', 'settleMs', 'onEvent', 'statistics', 'metrics', 'types', 'nearCache', 'earlyRefresh', 'ttlJitter',
  'secret', 'secrets', 'sasl',
]

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
  const earlyRefresh = resolveEarlyRefresh(options.earlyRefresh)
  const ttlJitter = options.ttlJitter === undefined ? 0.1 : numberFrom(options.ttlJitter, 'ttlJitter', 0, 0.5)

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

  // The embedded store (no servers, no store given) is this process's own.
  const processLocal = options.store === undefined ? options.servers === undefined : options.store.processLocal === true
  const nearCache = resolveNearCache(options.nearCache, processLocal)
  const secrets = signingSecrets(options.secret, options.secrets)

  let modeView: ModeView | undefined
  let rejections: RejectionReporter | undefined
  const signing = { secrets, onRejected: (key: string, reason: RejectionReason) => rejections?.report(key, reason) }
  const store = createStore(options, timeoutMs, signing, (event) => {
    if (channels.node.hasSubscribers) channels.node.publish({ namespace, ...event })
    onEvent(event)
    // After the node event, so listeners see the cause before the mode change it brings.
    if (event.type !== 'error') modeView?.noteLocalChange()
  })
  // Processes that share a store must agree on its mode; a process-local store has no farm.
  const shared = !processLocal
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
    nearCache,
    earlyRefresh,
    ttlJitter,
    onError,
  })
  rejections = new RejectionReporter(engine.counters, onError)
  if (shared) {
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
    statistics !== undefined && shareEveryMs !== false && shared
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

/** `earlyRefresh` checked: XFetch's β, or `false`. */
function resolveEarlyRefresh(value: unknown): number | false {
  if (value === false) return false
  if (value === undefined) return 1
  rejectUnknown(requireOptionsObject(value, 'earlyRefresh'), ['beta'], 'earlyRefresh')
  const { beta } = value as { beta?: unknown }
  return beta === undefined ? 1 : positiveNumber(beta, 'earlyRefresh.beta', 'compute times')
}
