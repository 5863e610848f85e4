import type { CacheType } from './cache-type.js'
import type { SafeModeOptions } from './safe-lock.js'
import type { StoreEvent } from '../store/memcached/store-event.js'
import type { ModeChange } from '../tier/mode-view.js'
import type { Store } from '../store/store.js'
import type { MetricsRegistry } from '../observability/metrics.js'

/** What {@link createQueryCache} takes; every option has a default. */
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
  /**
   * This process's copies of the results it served (L1), checked against the
   * generations on every hit like a remote entry: a hit then reads only the small
   * generation keys. `trustMs` serves a copy without that check for up to that
   * long after its last check: other processes' writes may then go unseen that
   * long (this process's own never do). `false` turns it off. Default
   * `{ maxBytes: 32 MiB, maxEntries: 10 000, trustMs: 0 }` with memcached or a
   * custom store; off with the embedded store, which is in-process already.
   */
  readonly nearCache?: NearCacheOptions | false | undefined
  /**
   * Early refresh (XFetch): a hit recomputes a result in the background shortly
   * before it expires, with a probability that grows as expiry nears and with the
   * time the result took to compute, so a hot result is refreshed once (by one
   * process of the farm, under the `safe-` lock) instead of missing everywhere at
   * once. `beta` > 1 refreshes earlier. `false` turns it off. Default `{ beta: 1 }`.
   */
  readonly earlyRefresh?: { readonly beta?: number } | false | undefined
  /**
   * Spreads each stored TTL by ± this fraction (0–0.5), so results written together
   * do not expire together. Default 0.1; 0 turns it off.
   */
  readonly ttlJitter?: number | undefined
  /**
   * Signs every value the library writes to a shared store (entries, generations,
   * locks, shared documents) with HMAC-SHA256 over its key and bytes; a value that
   * does not verify is a miss, never served nor decoded (see docs/security.md).
   * At least 16 bytes; every process of the farm, the monitor and the CLI need it.
   * Without it, values still carry a hash of their key, so a value copied under
   * another key is refused. Excludes `secrets`.
   */
  readonly secret?: string | Buffer | undefined
  /** `[current, ...previous]`: signs with the first, accepts all, for rotating the secret without a cold cache. */
  readonly secrets?: ReadonlyArray<string | Buffer> | undefined
  /** SASL PLAIN credentials for every memcached node (memcached started with `-S`). */
  readonly sasl?: { readonly username: string; readonly password: string } | undefined
}

/** See {@link QueryCacheOptions.nearCache}. */
export interface NearCacheOptions {
  /** Upper bound of the copies' estimated size in bytes. Default 32 MiB. */
  readonly maxBytes?: number
  /** Upper bound of the number of copies. Default 10 000. */
  readonly maxEntries?: number
  /** Milliseconds a copy is served without reading its generations. Default 0: always checked. */
  readonly trustMs?: number
}

/** What `onEvent` receives. */
export type CacheEvent = ({ readonly type: 'mode' } & ModeChange) | StoreEvent
