import type { QueryStatistics } from '../statistics/query-statistics.js'
import type { Store } from '../store/store.js'
import type { CacheMode } from '../tier/tier-state.js'
import type { Codec } from './codec.js'
import type { NearCacheConfig } from './near-cache.js'
import type { SafeLockConfig } from './safe-lock.js'

/** What `createQueryCache` resolved for the engine; trusted as typed. */
export interface CacheEngineConfig {
  readonly store: Store
  readonly namespace: string
  readonly defaultTtl: number
  readonly defaultSchema: string
  readonly generationReplicas: number
  /** Longest a query waits for the cache, all cache steps of one query together. */
  readonly timeoutMs: number
  /** The farm-wide lock's settings, or `false` when safe mode is off. */
  readonly safeMode: SafeLockConfig | false
  /** This process's mode, read on every miss: must cost no I/O. */
  readonly mode: () => CacheMode
  /** Per-shape statistics for warm-up, or `undefined` when turned off. */
  readonly statistics: QueryStatistics | undefined
  /** Nodes that hold a copy of a hot result (1: no extra copy). */
  readonly hotReplicas: number
  /** Rows and entries as stored; per cache, with the cache's registered types. */
  readonly codec: Codec
  /** This process's copies of recent results, or `false` when turned off. */
  readonly nearCache: NearCacheConfig | false
  /** XFetch's β for early refresh (higher: earlier), or `false` when turned off. */
  readonly earlyRefresh: number | false
  /** Each stored TTL is spread by ± this fraction, so results written together do not expire together. */
  readonly ttlJitter: number
  readonly onError: (error: unknown) => void
}
