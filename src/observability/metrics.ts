import { createRequire } from 'node:module'
import type { Registry } from 'prom-client'
import type { CacheStats } from '../cache/counters.js'
import type { CacheMode } from '../tier/tier-state.js'

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
  ['hits_total', 'hits', '.cached() queries served from the cache'],
  ['misses_total', 'misses', '.cached() queries that went to the database'],
  ['stores_total', 'stores', 'results written to the cache'],
  ['invalidations_total', 'invalidations', 'invalidations recorded'],
  ['errors_total', 'errors', 'cache operations that failed (the query went on without the cache)'],
  ['bypassed_total', 'bypassed', '.cached() queries inside a transaction'],
  ['coalesced_total', 'coalesced', 'misses that joined an identical query of this process'],
  ['oversize_total', 'oversize', 'results not stored for their size'],
  ['lock_acquired_total', 'lockAcquired', 'degraded misses that won the safe- lock'],
  ['lock_waited_total', 'lockWaited', 'degraded misses that waited for another process'],
  ['lock_timeouts_total', 'lockTimeouts', 'waiters that gave up at the wait bound'],
  ['lock_unavailable_total', 'lockUnavailable', 'misses that could not read or write the lock'],
  ['lock_abandoned_total', 'lockAbandoned', 'waiters that left early because the holder failed'],
  ['mode_transitions_total', 'modeTransitions', 'changes of this process mode'],
]

const sourcesByRegistry = new WeakMap<Registry, Set<MetricsSource>>()

/**
 * Registers the cache's metrics on a prom-client registry (names documented in
 * docs/operations.md), labelled by namespace. Several caches may share one
 * registry. Values are read at scrape time: nothing is added to the query path.
 * Returns a function that unregisters this cache.
 */
export function registerMetrics(registry: Registry, source: MetricsSource): () => void {
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

function defineMetrics(registry: Registry, sources: Set<MetricsSource>): void {
  // An optional peer dependency (CommonJS), loaded only by applications that pass a registry.
  const { Counter, Gauge } = createRequire(import.meta.url)('prom-client') as typeof import('prom-client')
  const registers = [registry]
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
    help: 'time degraded misses spent waiting for another process',
    labelNames: ['namespace'],
    registers,
    collect() {
      this.reset()
      for (const source of sources) this.inc({ namespace: source.namespace }, source.stats().lockWaitMs / 1000)
    },
  })
  new Gauge({
    name: 'kysely_memcache_degraded',
    help: '1 while this process acts in degraded mode (safe- lock on misses), else 0',
    labelNames: ['namespace'],
    registers,
    collect() {
      for (const source of sources) this.set({ namespace: source.namespace }, source.mode === 'degraded' ? 1 : 0)
    },
  })
  new Gauge({
    name: 'kysely_memcache_node_up',
    help: '1 while this process has the memcached node on its ring, else 0',
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
    help: 'entries of the running (or last) warm-up, by state',
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
