import type { NearCacheConfig } from './near-cache.js'
import type { NearCacheOptions } from './query-cache-options.js'
import { delayMs, integerFrom, rejectUnknown, requireOptionsObject } from '../util/validate.js'

const NEAR_CACHE_OPTIONS = ['maxBytes', 'maxEntries', 'trustMs']

/** Defaults of `createQueryCache({ nearCache })`. */
export const NEAR_CACHE_DEFAULTS: NearCacheConfig = Object.freeze({ maxBytes: 32 * 1024 * 1024, maxEntries: 10_000, trustMs: 0 })

/**
 * `nearCache` checked under the names the caller wrote. Absent, it is on unless
 * the store is this process's own (a copy of an in-process entry saves nothing).
 */
export function resolveNearCache(value: NearCacheOptions | false | undefined, processLocalStore: boolean): NearCacheConfig | false {
  if (value === false || (value === undefined && processLocalStore)) return false
  if (value === undefined) return NEAR_CACHE_DEFAULTS
  const options = requireOptionsObject(value, 'nearCache') as NearCacheOptions
  rejectUnknown(options, NEAR_CACHE_OPTIONS, 'nearCache')
  return {
    maxBytes: options.maxBytes === undefined ? NEAR_CACHE_DEFAULTS.maxBytes : integerFrom(options.maxBytes, 'nearCache.maxBytes', 1024),
    maxEntries: options.maxEntries === undefined ? NEAR_CACHE_DEFAULTS.maxEntries : integerFrom(options.maxEntries, 'nearCache.maxEntries', 1),
    trustMs: options.trustMs === undefined || options.trustMs === 0 ? 0 : delayMs(options.trustMs, 'nearCache.trustMs'),
  }
}
