/**
 * `kysely-memcache/monitor`: the tier health monitor, for the one process (or
 * the `kysely-memcache monitor` command) that watches the memcached nodes.
 * Kept out of the main entry so applications do not load it.
 *
 * ```ts
 * import { startMonitor } from 'kysely-memcache/monitor'
 *
 * const monitor = startMonitor({ servers: ['10.0.0.1:11211', '10.0.0.2:11211'], namespace: 'shop' })
 * process.once('SIGTERM', () => void monitor.stop())
 * ```
 *
 * @module
 */
export { startMonitor } from './monitor/start-monitor.js'
export type { Monitor, MonitorOptions, MonitorWarmupOptions } from './monitor/start-monitor.js'
