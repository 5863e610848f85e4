/**
 * The drill's configurations as cache client options, shared by both workloads:
 * what each one turns off of the library's defaults.
 */
import { ORIGINAL_SAFE_MODE, type QueryCacheOptions } from '../../src/index.js'
import type { DrillConfigurationName } from './drill-shapes.js'

export type DrillCacheOptions = Omit<QueryCacheOptions, 'servers' | 'namespace' | 'defaultSchema' | 'metrics'>

/** `false`: no cache at all (`nocache`). `swr` is no client option: the workloads set it per query. */
export function cacheOptionsFor(configuration: DrillConfigurationName): DrillCacheOptions | false {
  switch (configuration) {
    case 'nocache':
      return false
    case 'off':
      return { safeMode: false }
    case 'original':
      return { safeMode: ORIGINAL_SAFE_MODE }
    case 'default':
    case 'swr':
      return {}
    case 'far':
      return { nearCache: false }
    case 'unflat':
      return { earlyRefresh: false, ttlJitter: 0 }
    case 'bare':
      return { safeMode: false, nearCache: false, earlyRefresh: false, ttlJitter: 0, hotReplicas: 1 }
  }
}
