import { rejectUnknown, requireOptionsObject } from '../util/validate.js'
import { resolveCacheSettings, type CachedOptions, type CacheSettings } from './cached.js'
import { resolveScope, type ScopeConfig } from './scope.js'

/** The second argument of `cache.wrapDialect`. */
export interface WrapDialectOptions {
  /**
   * Names the dialect's key scope instead of learning it: no query is run and
   * connections are not checked. Dialects given the same name share entries, so
   * give one name only to pools that see the same rows.
   */
  readonly scope?: string
  /**
   * With `scope`: the schemas unqualified table names resolve through, in order,
   * as the pool's `search_path` says. Default: `[defaultSchema]`.
   */
  readonly searchPath?: readonly string[]
  /**
   * Caches every select outside a transaction with these options, as if it said
   * `.cached(options)`: what a team turns on to see what caching would do. A query's
   * own `.cached({ … })` overrides them, `.cached(false)` opts it out; selects that
   * cannot be cached (volatile or side-effecting functions, streams) run as they are.
   * Every write then invalidates every cached read of the tables it touches.
   */
  readonly cacheAll?: CachedOptions
}

/** `wrapDialect`'s options, checked: the dialect's key scope and what it caches unasked. */
export interface WrapConfig {
  readonly scope: ScopeConfig
  readonly cacheAll: CacheSettings | undefined
}

const WRAP_OPTIONS = ['scope', 'searchPath', 'cacheAll']

/**
 * Checks `wrapDialect`'s options under the names the caller wrote.
 *
 * ```ts
 * resolveWrapOptions({ cacheAll: { ttl: 30 } }, 'public').cacheAll // { ttl: 30, tags: [], safe: true, volatile: false, swr: 0 }
 * ```
 */
export function resolveWrapOptions(options: unknown, defaultSchema: string): WrapConfig {
  if (options === undefined) return { scope: { explicit: undefined, defaultSchema }, cacheAll: undefined }
  rejectUnknown(requireOptionsObject(options, 'wrapDialect'), WRAP_OPTIONS, 'wrapDialect')
  const { cacheAll, ...scope } = options as WrapDialectOptions
  return {
    scope: resolveScope(scope, defaultSchema),
    cacheAll: cacheAll === undefined ? undefined : resolveCacheSettings(cacheAll, 'cacheAll'),
  }
}
