import diagnostics_channel from 'node:diagnostics_channel'

/**
 * `node:diagnostics_channel` channels for tracing tools. Publishing costs nothing
 * while nobody subscribes (checked with `hasSubscribers` before building a message).
 *
 * ```ts
 * import diagnostics_channel from 'node:diagnostics_channel'
 * diagnostics_channel.subscribe('kysely-memcache:query', (message) => console.log(message))
 * ```
 */
export const channels = Object.freeze({
  /** `{ namespace, key, outcome: 'hit' | 'miss', databaseMs?, stale? }` for each `.cached()` query; `stale: true` on a hit served past its TTL (`swr`). */
  query: diagnostics_channel.channel('kysely-memcache:query'),
  /** `{ namespace, key, event: 'acquired' | 'waited' | 'timeout' | 'unavailable' | 'abandoned', waitMs? }` in degraded mode. */
  lock: diagnostics_channel.channel('kysely-memcache:lock'),
  /** `{ namespace, from, to, reason }` when this process's mode changes. */
  mode: diagnostics_channel.channel('kysely-memcache:mode'),
  /** `{ namespace, type: 'node-down' | 'node-up' | 'error', node, … }` from the memcached store. */
  node: diagnostics_channel.channel('kysely-memcache:node'),
  /** `{ namespace, done, total, outcome, key }` after each warm-up entry. */
  warmup: diagnostics_channel.channel('kysely-memcache:warmup'),
})
