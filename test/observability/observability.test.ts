import diagnostics_channel from 'node:diagnostics_channel'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSchema, openPglite, type TestDatabase } from '../harness/database.js'
import { closeClient, createClient, freshNamespace, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

let database: TestDatabase
let memcached: MemcachedCluster
const clients: Client[] = []

beforeAll(async () => {
  ;[database, memcached] = await Promise.all([openPglite(), startMemcached(2)])
  const setup = createClient(database, {})
  await createSchema(setup.db)
  await setup.db.insertInto('person').values({ first_name: 'Ada' }).execute()
  await closeClient(setup)
})

afterAll(async () => {
  await Promise.all(clients.map(closeClient))
  await memcached?.stopAll()
  await database?.close()
})

describe('observability', () => {
  it('publishes Prometheus metrics for every cache sharing a registry, read at scrape time', async () => {
    const registry = new Registry()
    const [a, b] = [freshNamespace(), freshNamespace()].map((namespace) => {
      const made = createClient(database, { servers: memcached.servers, namespace, metrics: { registry } })
      clients.push(made)
      return made
    }) as [Client, Client]
    const query = (c: Client) => c.db.selectFrom('person').selectAll().cached()
    await query(a).execute()
    await query(a).execute()
    await query(b).execute()

    const text = await registry.metrics()
    expect(text).toContain(`kysely_memcache_hits_total{namespace="${a.cache.namespace}"} 1`)
    expect(text).toContain(`kysely_memcache_misses_total{namespace="${a.cache.namespace}"} 1`)
    expect(text).toContain(`kysely_memcache_misses_total{namespace="${b.cache.namespace}"} 1`)
    expect(text).toContain(`kysely_memcache_degraded{namespace="${a.cache.namespace}"} 0`)
    expect(text).toContain(`kysely_memcache_node_up{namespace="${a.cache.namespace}",node="${memcached.servers[0]}"} 1`)
    expect(text).toMatch(/kysely_memcache_lock_wait_seconds_total\{namespace="[^"]+"\} 0/)
    expect(text).toMatch(/kysely_memcache_warmup_entries\{namespace="[^"]+",state="total"\} 0/)

    // Help texts show in Prometheus and Grafana next to the name: whole sentences, one per metric.
    const help = text.split('\n').filter((line) => line.startsWith('# HELP kysely_memcache_'))
    expect(help).toHaveLength(23)
    for (const line of help) expect(line).toMatch(/^# HELP kysely_memcache_\w+ [A-Z][^\n]*\.$/)
  })

  it('publishes query events on diagnostics_channel only to subscribers', async () => {
    const c = createClient(database, { servers: memcached.servers, namespace: freshNamespace() })
    clients.push(c)
    const messages: Array<{ outcome: string; namespace: string; databaseMs?: number }> = []
    const listener = (message: unknown) => messages.push(message as (typeof messages)[number])
    diagnostics_channel.subscribe('kysely-memcache:query', listener)
    try {
      await c.db.selectFrom('person').select('id').cached().execute()
      await c.db.selectFrom('person').select('id').cached().execute()
    } finally {
      diagnostics_channel.unsubscribe('kysely-memcache:query', listener)
    }
    expect(messages.map((m) => m.outcome)).toEqual(['miss', 'hit'])
    expect(messages[0]!.namespace).toBe(c.cache.namespace)
    expect(messages[0]!.databaseMs).toBeGreaterThan(0)
  })
})
