/**
 * The monitor against memcached started with -S: it probes, flushes, publishes
 * and warms with SASL credentials, and never logs a password.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startMonitor } from '../../src/monitor/start-monitor.js'
import type { Monitor, MonitorOptions } from '../../src/monitor/start-monitor.js'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import { readTierState } from '../../src/tier/tier-state.js'
import type { TierState } from '../../src/tier/tier-state.js'
import { serializeManifest } from '../../src/warmup/manifest.js'
import { createSchema, DATABASE_URL, openPostgres } from '../harness/database.js'
import type { TestDatabase } from '../harness/database.js'
import { closeClient, createClient } from '../harness/farm.js'
import type { Client } from '../harness/farm.js'
import { startMemcached } from '../harness/memcached.js'
import type { MemcachedCluster, MemcachedNode } from '../harness/memcached.js'
import { waitFor } from '../harness/wait.js'

const PASSWORD = 'monitor-Pw-3b8f'
const WRONG_PASSWORD = 'monitor-wrong-c04d'
const SASL = { username: 'monitor', password: PASSWORD }
const ROWS = 30

let memcached: MemcachedCluster
let database: TestDatabase
let directory: string
let ids: number[] = []
let namespaces = 0
const monitors: Monitor[] = []
const stores: MemcachedStore[] = []
const clients: Client[] = []

beforeAll(async () => {
  ;[database, memcached] = await Promise.all([openPostgres(), startMemcached(3, { sasl: SASL })])
  directory = await mkdtemp(join(tmpdir(), 'kmc-sasl-monitor-'))
  const setup = createClient(database, {})
  await createSchema(setup.db)
  const inserted = await setup.db
    .insertInto('person')
    .values(Array.from({ length: ROWS }, (_, i) => ({ first_name: `person ${i}` })))
    .returning('id')
    .execute()
  ids = inserted.map((row) => row.id)
  await closeClient(setup)
})

afterEach(async () => {
  await Promise.all(monitors.splice(0).map((monitor) => monitor.stop()))
  await Promise.all(clients.splice(0).map(closeClient))
  await Promise.all(stores.splice(0).map((store) => store.close()))
  await Promise.all(memcached.nodes.filter((node) => !node.running).map((node) => node.restart()))
})

afterAll(async () => {
  await memcached?.stopAll()
  await database?.close()
  if (directory !== undefined) await rm(directory, { recursive: true, force: true })
})

function freshNamespace(): string {
  return `msasl${process.pid}-${Date.now().toString(36)}-${namespaces++}`
}

/** An authenticated store that never takes a node off its ring by itself. */
function observer(): MemcachedStore {
  const store = new MemcachedStore({ servers: memcached.servers, timeoutMs: 200, failureThreshold: Number.MAX_SAFE_INTEGER, sasl: SASL })
  stores.push(store)
  return store
}

function monitor(options: Omit<MonitorOptions, 'servers'>): { lines: string[]; states: TierState[] } {
  const lines: string[] = []
  const states: TierState[] = []
  monitors.push(
    startMonitor({
      servers: memcached.servers,
      intervalMs: 200,
      settleMs: 500,
      minRequests: 1_000_000,
      log: (line) => lines.push(line),
      onState: (state) => states.push(state),
      ...options,
    }),
  )
  return { lines, states }
}

function untimed(lines: readonly string[]): string[] {
  return lines.map((line) => line.replace(/^\S+Z kysely-memcache monitor: /, ''))
}

describe('the monitor on SASL nodes', () => {
  it('lists the nodes up, a killed one down, then flushes it and lists it up again, logging the user only', async () => {
    const namespace = freshNamespace()
    const reader = observer()
    const { lines, states } = monitor({ namespace, sasl: SASL })
    const normal = await waitFor('published normal', 3000, async () => {
      const state = await readTierState(reader, namespace)
      return state?.mode === 'normal' ? state : undefined
    })
    expect(normal.down).toEqual([])

    const victim = memcached.nodes[1]!
    await victim.kill()
    await waitFor('the victim down', 3000, () => (states.at(-1)?.down.includes(victim.address) === true ? true : undefined))
    expect(states.at(-1)).toMatchObject({ mode: 'degraded', reason: `node ${victim.address} down (refused)` })
    await victim.restart()
    await waitFor('the victim back', 3000, () => (states.at(-1)?.down.length === 0 ? true : undefined))
    // Flushed over the binary protocol, authenticated: memcached counted it.
    expect(Number((await victim.stats())['cmd_flush'])).toBeGreaterThanOrEqual(1)

    const text = untimed(lines)
    expect(text).toContain('authenticating to memcached as "monitor" (SASL PLAIN)')
    expect(text).toContain(`node ${victim.address} back: answered and flushed`)
    expect(`${lines.join('\n')}${JSON.stringify(states)}`).not.toContain(PASSWORD)
  })

  it('with a wrong password lists every node down with the SASL refusal, and never shows a password', async () => {
    const namespace = freshNamespace()
    const { lines, states } = monitor({ namespace, sasl: { username: 'monitor', password: WRONG_PASSWORD } })
    await waitFor('the first round', 3000, () => (states.length > 0 ? true : undefined))
    expect(states[0]).toMatchObject({ mode: 'degraded', down: memcached.servers })
    const text = untimed(lines)
    for (const node of memcached.servers) {
      expect(text).toContain(`node ${node} down: error (SASL authentication failed for ${node} (user "monitor"))`)
    }
    const everything = `${lines.join('\n')}${JSON.stringify(states)}`
    expect(everything).not.toContain(WRONG_PASSWORD)
    expect(everything).not.toContain(PASSWORD)
    // It could publish nothing: the nodes refused its store too.
    expect(await readTierState(observer(), namespace)).toBeUndefined()
  })

  it('warms a returning node through authenticated connections: its keys are in memcached before it is listed up', async () => {
    const namespace = freshNamespace()
    const farm = createClient(database, { servers: memcached.servers, namespace, sasl: SASL })
    clients.push(farm)
    const byId = (id: number) => farm.db.selectFrom('person').select(['id', 'first_name']).where('id', '=', id).cached()
    for (const id of ids) await byId(id).execute()
    const manifest = await farm.cache.exportWarmupManifest({ scope: 'process' })
    expect(manifest.entries).toHaveLength(ROWS)
    const manifestFile = join(directory, `${namespace}.json`)
    await writeFile(manifestFile, serializeManifest(manifest))

    const url = new URL(DATABASE_URL)
    url.searchParams.set('options', `-c search_path=${database.schema}`)
    const { lines, states } = monitor({ namespace, sasl: SASL, warmup: { databaseUrl: url.toString(), manifestFile, saveEveryMs: 3_600_000 } })
    await waitFor('the first round', 3000, () => (states.length > 0 ? true : undefined))

    const reader = observer()
    const { node: victim, owned } = busiestNode(reader, manifest.entries.map((entry) => entry.key))
    expect(owned.length).toBeGreaterThan(0)
    await victim.kill()
    await waitFor('the victim down', 3000, () => (states.at(-1)?.down.includes(victim.address) === true ? true : undefined))
    await victim.restart()
    await waitFor('the victim listed up', 10_000, () => (states.length > 0 && states.at(-1)!.down.length === 0 ? true : undefined))

    expect(untimed(lines)).toContain(`node ${victim.address} back: answered and flushed, ${owned.length} of ${owned.length} entries warmed`)
    // The replay's own store wrote them to the returning node: an authenticated reader finds every one.
    for (const key of owned) expect(await reader.get(key), key).toBeDefined()
    expect(lines.join('\n')).not.toContain(PASSWORD)
  })
})

/** The node owning the most of `keys` with every node up, and which of them it owns. */
function busiestNode(router: MemcachedStore, keys: readonly string[]): { node: MemcachedNode; owned: string[] } {
  let best: { node: MemcachedNode; owned: string[] } | undefined
  for (const node of memcached.nodes) {
    const owned = keys.filter((key) => router.nodeFor(key) === node.address)
    if (best === undefined || owned.length > best.owned.length) best = { node, owned }
  }
  return best!
}
