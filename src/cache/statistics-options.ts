import type { QueryCacheOptions } from './query-cache-options.js'
import { delayMs, describe, positiveInteger, positiveNumber, rejectUnknown } from '../util/validate.js'

const STATISTICS_OPTIONS = ['capacity', 'halfLifeMs', 'shareEveryMs', 'farmCapacity']

/** `createQueryCache`'s `statistics` option once checked; `false` turns statistics off. */
export type StatisticsOptions = Exclude<QueryCacheOptions['statistics'], false | undefined>

/** `statistics` checked under the names the caller wrote, before the classes that take them see other names. */
export function resolveStatistics(value: unknown): StatisticsOptions | false {
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

