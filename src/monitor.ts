/**
 * `kysely-memcache/monitor`: the tier health monitor, for the one process (or
 * the `kysely-memcache monitor` command) that watches the memcached nodes.
 * Kept out of the main entry so applications do not load it.
 */
export { startMonitor } from './monitor/start-monitor.js'
export type { Monitor, MonitorOptions, MonitorWarmupOptions } from './monitor/start-monitor.js'
