import { createRequire } from 'node:module'
import type { Registry } from 'prom-client'
import type { CacheStats } from '../cache/counters.js'
import type { CacheMode } from '../tier/tier-state.js'

/**
 * The part of a prom-client `Registry` the cache needs, typed here so that the
 * published types compile without prom-client (an optional peer) installed.
 */
export interface MetricsRegistry {
  registerMetric(metric: object): void
}

/** What a cache exposes to its metrics; read only when Prometheus scrapes. */
export interface MetricsSource {
  readonly namespace: string
  stats(): CacheStats
  readonly mode: CacheMode
  /** memcached nodes and whether this process has them on its ring. */
  nodes(): ReadonlyArray<{ readonly id: string; readonly up: boolean }>
  warmup(): { readonly done: number; readonly total: number; readonly running: boolean }
}

/** Counter name suffix → the `stats()` field it reports. */
const COUNTERS: ReadonlyArray<readonly [string, keyof CacheStats, string]> = [
  ['hits_total', 'hits', 'Number of .cached() queries served from the cache.'],
  ['near_hits_total', 'nearHits', "Number of hits served from this process's near cache (generations read, value not fetched)."],
  ['misses_total', 'misses', 'Number of .cached() queries that went to the database.'],
  ['stores_total', 'stores', 'Number of results written to the cache.'],
  ['invalidations_total', 'invalidations', 'Number of invalidations recorded.'],
  ['errors_total', 'errors', 'Number of cache operations that failed; the query went on without the cache.'],
  ['bypassed_total', 'bypassed', 'Number of .cached() queries that bypassed the cache inside a transaction.'],
  ['coalesced_total', 'coalesced', 'Number of misses that joined an identical query of this process.'],
  ['oversize_total', 'oversize', 'Number of results not stored because of their size.'],
  ['lock_acquired_total', 'lockAcquired', 'Number of degraded-mode misses that won the safe-mode lock and ran the query.'],
  ['lock_waited_total', 'lockWaited', 'Number of degraded-mode misses that waited for another process.'],
  ['lock_timeouts_total', 'lockTimeouts', 'Number of lock waiters that gave up at the wait bound and ran the query.'],
  ['lock_unavailable_total', 'lockUnavailable', 'Number of misses that could not read or write the safe-mode lock.'],
  ['lock_abandoned_total', 'lockAbandoned', 'Number of lock waiters that left early because the lock holder failed.'],
  ['mode_transitions_total', 'modeTransitions', "Number of changes of this process's mode."],
  ['early_refreshes_total', 'earlyRefreshes', 'Number of background refreshes started before a hot result expired.'],
  ['stale_served_total', 'staleServed', 'Number of hits served past their TTL within swr, refreshed in the background.'],
  ['refresh_failures_total', 'refreshFailures', 'Number of background refreshes that failed.'],
  ['rejected_total', 'rejected', 'Number of values read from the store and refused (bad signature, another key, undecodable); each was a miss.'],
]

const sourcesByRegistry = new WeakMap<MetricsRegistry, Set<MetricsSource>>()

/**
 * Registers the cache's metrics on a prom-client registry (names documented in
 * docs/operations.md), labelled by namespace. Several caches may share one
 * registry. Values are read at scrape time: nothing is added to the query path.
 * Returns a function that unregisters this cache.
 */
export function registerMetrics(registry: MetricsRegistry, source: MetricsSource): () => void {
  let sources = sourcesByRegistry.get(registry)
  if (sources === undefined) {
    sources = new Set()
    sourcesByRegistry.set(registry, sources)
    defineMetrics(registry, sources)
  }
  sources.add(source)
  const registered = sources
  return () => {
    registered.delete(source)
  }
}

function defineMetrics(registry: MetricsRegistry, sources: Set<MetricsSource>): void {
  // An optional peer dependency (CommonJS), loaded only by applications that pass a registry.
  const { Counter, Gauge } = createRequire(import.meta.url)('prom-client') as typeof import('prom-client')
  const registers = [registry as Registry]
  for (const [suffix, field, help] of COUNTERS) {
    new Counter({
      name: `kysely_memcache_${suffix}`,
      help,
      labelNames: ['namespace'],
      registers,
      collect() {
        this.reset()
        for (const source of sources) this.inc({ namespace: source.namespace }, source.stats()[field])
      },
    })
  }
  new Counter({
    name: 'kysely_memcache_lock_wait_seconds_total',
    help: 'Seconds that degraded-mode misses spent waiting for another process.',
    labelNames: ['namespace'],
    registers,
    collect() {
      this.reset()
      for (const source of sources) this.inc({ namespace: source.namespace }, source.stats().lockWaitMs / 1000)
    },
  })
  new Gauge({
    name: 'kysely_memcache_degraded',
    help: 'Whether this process acts in degraded mode, taking the safe-mode lock on misses (1) or not (0).',
    labelNames: ['namespace'],
    registers,
    collect() {
      for (const source of sources) this.set({ namespace: source.namespace }, source.mode === 'degraded' ? 1 : 0)
    },
  })
  new Gauge({
    name: 'kysely_memcache_node_up',
    help: 'Whether this process has the memcached node on its ring (1) or not (0).',
    labelNames: ['namespace', 'node'],
    registers,
    collect() {
      this.reset()
      for (const source of sources) {
        for (const node of source.nodes()) this.set({ namespace: source.namespace, node: node.id }, node.up ? 1 : 0)
      }
    },
  })
  new Gauge({
    name: 'kysely_memcache_warmup_entries',
    help: 'Entries of the running (or last) warm-up of this process, done and total.',
    labelNames: ['namespace', 'state'],
    registers,
    collect() {
      this.reset()
      for (const source of sources) {
        const { done, total } = source.warmup()
        this.set({ namespace: source.namespace, state: 'done' }, done)
        this.set({ namespace: source.namespace, state: 'total' }, total)
      }
    },
  })
}
