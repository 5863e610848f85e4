/**
 * The monitor warms a returning node before listing it up: real memcached
 * nodes (killed and restarted), real PostgreSQL.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { sql } from 'kysely'
import { queryKey, tableGenerationKey } from '../../src/keys.js'
import { startMonitor } from '../../src/monitor/start-monitor.js'
import type { Monitor, MonitorOptions } from '../../src/monitor/start-monitor.js'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import type { TierState } from '../../src/tier/tier-state.js'
import { parseManifest, serializeManifest, type WarmupManifest } from '../../src/warmup/manifest.js'
import { createSchema, scopeOf, DATABASE_URL, openPostgres, type TestDatabase } from '../harness/database.js'
import { closeClient, createClient, freshNamespace, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster, type MemcachedNode } from '../harness/memcached.js'
import { waitFor } from '../harness/wait.js'

const INTERVAL_MS = 200
const SETTLE_MS = 500
const ROWS = 40

let database: TestDatabase
let memcached: MemcachedCluster
let directory: string
let ids: number[] = []
const clients: Client[] = []
/** The key scope every client's wrapped dialect learns. */
let scope: string
const monitors: Monitor[] = []
const stores: MemcachedStore[] = []

beforeAll(async () => {
  ;[database, memcached] = await Promise.all([openPostgres(), startMemcached(3)])
  directory = await mkdtemp(join(tmpdir(), 'kmc-monitor-warmup-'))
  const setup = createClient(database, {})
  await createSchema(setup.db)
  const inserted = await setup.db
    .insertInto('person')
    .values(Array.from({ length: ROWS }, (_, i) => ({ first_name: `person ${i}` })))
    .returning('id')
    .execute()
  ids = inserted.map((row) => row.id)
  await closeClient(setup)
  scope = await scopeOf(database)
})

afterEach(async () => {
  await Promise.all(monitors.splice(0).map((monitor) => monitor.stop()))
  await Promise.all(clients.splice(0).map(closeClient))
  await Promise.all(stores.splice(0).map((store) => store.close()))
  // Every node up again for the next test.
  await Promise.all(memcached.nodes.filter((node) => !node.running).map((node) => node.restart()))
})

afterAll(async () => {
  await memcached?.stopAll()
  await database?.close()
  if (directory !== undefined) await rm(directory, { recursive: true, force: true })
})

/** The test database as the monitor sees it: unqualified names resolve to this file's schema. */
function databaseUrl(): string {
  const url = new URL(DATABASE_URL)
  url.searchParams.set('options', `-c search_path=${database.schema}`)
  return url.toString()
}

function client(namespace: string): Client {
  const made = createClient(database, { servers: memcached.servers, namespace })
  clients.push(made)
  return made
}

const byId = (c: Client, id: number) => c.db.selectFrom('person').select(['id', 'first_name']).where('id', '=', id).cached()

/** Routes like a process with every node up. */
function ring(): MemcachedStore {
  const store = new MemcachedStore({ servers: memcached.servers, timeoutMs: 200, failureThreshold: Number.MAX_SAFE_INTEGER })
  stores.push(store)
  return store
}

function monitor(options: MonitorOptions): { monitor: Monitor; lines: string[]; states: TierState[] } {
  const lines: string[] = []
  const states: TierState[] = []
  const started = startMonitor({
    intervalMs: INTERVAL_MS,
    settleMs: SETTLE_MS,
    // The farm's own misses (this file's queries) must not hold normal back: the hit-ratio gate is monitor.test.ts's.
    minRequests: 1_000_000,
    log: (line) => lines.push(line),
    onState: (state) => states.push(state),
    ...options,
  })
  monitors.push(started)
  return { monitor: started, lines, states }
}


/** The node owning the most of `keys` on the full ring, and which of them it owns. */
function busiestNode(keys: readonly string[]): { node: MemcachedNode; owned: Set<string> } {
  const router = ring()
  let best: { node: MemcachedNode; owned: Set<string> } | undefined
  for (const node of memcached.nodes) {
    const owned = new Set(keys.filter((key) => router.nodeFor(key) === node.address))
    if (best === undefined || owned.size > best.owned.size) best = { node, owned }
  }
  return best!
}

/** Kills `node`, waits for the monitor to see it, restarts it, and waits for `normal` after that. */
async function outage(node: MemcachedNode, states: TierState[], normalWithinMs: number): Promise<TierState> {
  await node.kill()
  await waitFor('degraded', 3000, () => (states.at(-1)?.down.includes(node.address) === true ? true : undefined))
  const from = states.length
  await node.restart()
  return waitFor('normal after the restart', normalWithinMs, () => states.slice(from).find((state) => state.mode === 'normal'))
}

/** A cached query per row through a farm client, pushed to the farm-wide statistics. */
async function warmTraffic(namespace: string): Promise<{ keys: Map<number, string>; rows: Map<number, unknown[]> }> {
  const farm = client(namespace)
  const rows = new Map<number, unknown[]>()
  for (const id of ids) rows.set(id, await byId(farm, id).execute())
  // Pushes this process's statistics into the farm-wide document, as every process does each 10 s.
  const manifest = await farm.cache.exportWarmupManifest()
  expect(manifest.entries).toHaveLength(ROWS)
  const keys = new Map<number, string>()
  for (const id of ids) {
    const compiled = byId(farm, id).compile()
    keys.set(id, queryKey(namespace, compiled.sql, compiled.parameters, [], scope))
  }
  expect(new Set(manifest.entries.map((entry) => entry.key))).toEqual(new Set(keys.values()))
  return { keys, rows }
}

describe('monitor warm-up', () => {
  it("warms a returning node before listing it up: after normal, that node's hottest keys are hits", async () => {
    const namespace = freshNamespace()
    const { keys, rows } = await warmTraffic(namespace)
    const manifestFile = join(directory, `${namespace}.json`)
    const { lines, states } = monitor({
      servers: memcached.servers,
      namespace,
      warmup: { databaseUrl: databaseUrl(), manifestFile, saveEveryMs: 200 },
    })
    await waitFor('the manifest file', 3000, () => (existsSync(manifestFile) ? true : undefined))
    const saved = parseManifest(await readFile(manifestFile, 'utf8'))
    expect(saved).toMatchObject({ version: 1, namespace })
    expect(saved.entries).toHaveLength(ROWS)

    const { node: victim, owned } = busiestNode([...keys.values()])
    expect(owned.size).toBeGreaterThan(0)
    const normal = await outage(victim, states, 10_000)
    expect(normal.down).toEqual([])

    // The state said so while it warmed, and the node stayed down (the tier degraded) meanwhile.
    const warming = states.filter((state) => state.warmup !== undefined)
    expect(warming.length).toBeGreaterThan(0)
    for (const state of warming) {
      expect(state).toMatchObject({ mode: 'degraded', down: [victim.address], warmup: { node: victim.address, total: owned.size } })
      expect(state.reason).toBe(`node ${victim.address} down (warming)`)
    }
    const text = lines.map((line) => line.replace(/^\S+Z kysely-memcache monitor: /, ''))
    expect(text).toContainEqual(`node ${victim.address} answered and was flushed; warming its ${owned.size} manifest entries before listing it up`)
    expect(text).toContainEqual(expect.stringMatching(new RegExp(`^node ${escape(victim.address)} warmed: ${owned.size} of ${owned.size} entries in \\d+\\.\\ds \\(0 failed\\)$`)))
    expect(text).toContainEqual(`node ${victim.address} back: answered and flushed, ${owned.size} of ${owned.size} entries warmed`)
    // Listed up only after the warm-up: no state without the node in `down` before the report line.
    const back = states.findIndex((state, i) => i > 0 && state.down.length === 0 && states[i - 1]!.down.includes(victim.address))
    expect(states.slice(0, back).some((state) => state.warmup !== undefined)).toBe(true)

    // A fresh process, after normal: every key the returning node owns is a hit, with equal rows.
    const fresh = client(namespace)
    await fresh.cache.refreshMode()
    fresh.executions.reset()
    const ownedIds = ids.filter((id) => owned.has(keys.get(id)!))
    for (const id of ownedIds) expect(await byId(fresh, id).execute()).toEqual(rows.get(id))
    expect(fresh.executions.count()).toBe(0)
    expect(fresh.cache.stats()).toMatchObject({ hits: ownedIds.length, misses: 0 })
  })

  it('warms from the manifest file after a restart, and lists the node up even when every replay fails', async () => {
    const namespace = freshNamespace()
    const { keys } = await warmTraffic(namespace)
    // Built with no database: a manifest of the process only, saved by hand.
    const manifestFile = join(directory, `${namespace}.json`)
    const manifest = await clients[0]!.cache.exportWarmupManifest({ scope: 'process' })
    await writeFile(manifestFile, serializeManifest(manifest))
    const { lines, states } = monitor({
      servers: memcached.servers,
      namespace,
      // Nothing listens on port 1: every entry fails to connect.
      warmup: { databaseUrl: 'postgres://postgres:secret@127.0.0.1:1/none', manifestFile, saveEveryMs: 3_600_000 },
    })
    await waitFor('the first round', 2000, () => (states.length > 0 ? true : undefined))
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`monitor: loaded the warm-up manifest ${escape(manifestFile)}: ${ROWS} entries from \\S+Z$`)))
    expect(lines).toContainEqual(expect.stringMatching(/monitor: returning nodes are warmed from postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/none before they are listed up/))
    expect(lines.join('\n')).not.toContain('secret')

    const { node: victim, owned } = busiestNode([...keys.values()])
    await outage(victim, states, 10_000)
    const text = lines.map((line) => line.replace(/^\S+Z kysely-memcache monitor: /, ''))
    expect(text).toContainEqual(
      expect.stringMatching(new RegExp(`^node ${escape(victim.address)} warmed: 0 of ${owned.size} entries in \\d+\\.\\ds \\(${owned.size} failed\\); first failure: .*ECONNREFUSED`)),
    )
    expect(text).toContainEqual(`node ${victim.address} back: answered and flushed, 0 of ${owned.size} entries warmed`)
  })

  it('after every node restarted, warms them one by one from the manifest file, again when a process flushes one: then every query is a hit', async () => {
    const namespace = freshNamespace()
    const { keys, rows } = await warmTraffic(namespace)
    const manifestFile = join(directory, `${namespace}.json`)
    const { lines, states } = monitor({
      servers: memcached.servers,
      namespace,
      warmup: { databaseUrl: databaseUrl(), manifestFile, saveEveryMs: 200 },
    })
    await waitFor('the manifest file', 3000, () => (existsSync(manifestFile) ? true : undefined))

    // A process with traffic through the outage (on other keys): it loses every node, can read no
    // flag, so it probes the nodes back itself and flushes each once, warmed or not.
    const busy = createClient(database, { servers: memcached.servers, namespace, retryAfterMs: 500 })
    clients.push(busy)
    let running = true
    const traffic = (async () => {
      for (let n = 0; running; n++) {
        await busy.db.selectFrom('pet').select('id').where('id', '=', n % 50).cached().execute().catch(() => {})
        await sleep(5)
      }
    })()

    // A full flush: the farm-wide statistics are gone with the nodes, the file is not.
    await Promise.all(memcached.nodes.map((node) => node.kill()))
    await waitFor('every node down', 3000, () => (states.at(-1)?.down.length === 3 ? true : undefined))
    await waitFor('the process to lose every node', 3000, () =>
      (busy.cache.store as MemcachedStore).liveNodeCount === 0 ? true : undefined,
    )
    const from = states.length
    await Promise.all(memcached.nodes.map((node) => node.restart()))
    await waitFor('normal after the restart', 15_000, () => states.slice(from).find((state) => state.mode === 'normal'))
    // The process flushed every node once, on top of the monitor's flush...
    await waitFor('the process flushes', 5000, async () => {
      const counts = await Promise.all(memcached.nodes.map(async (node) => Number((await node.stats())['cmd_flush'])))
      return counts.every((count) => count >= 2) ? true : undefined
    })
    // ...and the monitor warmed again each node flushed behind its back (it looks every round).
    const text = () => lines.map((line) => line.replace(/^\S+Z kysely-memcache monitor: /, ''))
    const flushed = states.length
    // The process must be done flushing: every node back on its ring, and no flush for a while.
    let lastFlushes = -1
    let stableSince = performance.now()
    await waitFor('the process to stop flushing', 8000, async () => {
      const total = (await Promise.all(memcached.nodes.map(async (node) => Number((await node.stats())['cmd_flush'])))).reduce((a, b) => a + b, 0)
      if (total !== lastFlushes) {
        lastFlushes = total
        stableSince = performance.now()
      }
      const allBack = (busy.cache.store as MemcachedStore).liveNodeCount === memcached.nodes.length
      return allBack && performance.now() - stableSince > 800 ? true : undefined
    })
    await waitFor('the warm-ups to catch up', 5000, () =>
      states.length >= flushed + 3 &&
      states.at(-1)?.warmup === undefined &&
      memcached.nodes.every((node) => {
        const mine = text().filter((line) => line.startsWith(`node ${node.address} `))
        return mine.filter((line) => line.includes(' warmed: ')).length === 1 + mine.filter((line) => line.includes('was flushed after it was listed up')).length
      })
        ? true
        : undefined,
    )
    running = false
    await traffic

    // One node at a time, each with the entries it owns: all 40 between them.
    const router = ring()
    let warmed = 0
    for (const node of memcached.nodes) {
      const owned = [...keys.values()].filter((key) => router.nodeFor(key) === node.address).length
      expect(text(), text().join('\n')).toContainEqual(expect.stringMatching(new RegExp(`^node ${escape(node.address)} warmed: ${owned} of ${owned} entries in \\d+\\.\\ds \\(0 failed\\)$`)))
      warmed += owned
    }
    expect(warmed).toBe(ROWS)
    for (const state of states.slice(from).filter((state) => state.warmup !== undefined && state.down.includes(state.warmup.node))) {
      expect(state.mode).toBe('degraded')
    }
    // The file kept its entries: an empty farm-wide document does not overwrite it.
    expect(parseManifest(await readFile(manifestFile, 'utf8')).entries).toHaveLength(ROWS)

    const fresh = client(namespace)
    await fresh.cache.refreshMode()
    fresh.executions.reset()
    for (const id of ids) expect(await byId(fresh, id).execute()).toEqual(rows.get(id))
    expect(fresh.executions.count(), text().join('\n')).toBe(0)
    expect(fresh.cache.stats()).toMatchObject({ hits: ROWS, misses: 0 })
  })

  // Two things keep this true: the processes' generation bumps are also sent, best effort, to
  // nodes they hold down (MemcachedStore.setReplicas), and the monitor deletes any generation
  // copy on the returning node that differs from the other nodes' before listing it up.
  it('never serves a result warmed before a write made while the node warmed', async () => {
    const namespace = freshNamespace()
    const farm = client(namespace)
    const slow = (id: number) =>
      farm.db
        .selectFrom('person')
        .select(['id', 'first_name', sql<string>`pg_sleep(0.15)::text`.as('slept')])
        .where('id', '=', id)
        .cached()
    // The returning node holds the first copy of person's generation: the copy the processes read first.
    const table = `${database.schema}.person`
    const router = ring()
    const victim = memcached.nodes.find((node) => node.address === router.nodeFor(tableGenerationKey(namespace, table)))!
    const chosen = ids
      .filter((id) => {
        const compiled = slow(id).compile()
        return router.nodeFor(queryKey(namespace, compiled.sql, compiled.parameters, [], scope)) === victim.address
      })
      .slice(0, 4)
    expect(chosen.length).toBeGreaterThan(1)
    for (const id of chosen) await slow(id).execute()
    const manifest = await farm.cache.exportWarmupManifest()
    expect(manifest.entries.map((entry) => entry.tables)).toEqual(chosen.map(() => [table]))

    const { states, lines } = monitor({
      servers: memcached.servers,
      namespace,
      warmup: { databaseUrl: databaseUrl(), concurrency: 1, saveEveryMs: 100 },
    })
    await waitFor('the manifest', 3000, () => (lines.some((line) => line.endsWith(`warm-up manifest ${chosen.length} entries from the farm-wide statistics`)) ? true : undefined))
    await victim.kill()
    await waitFor('degraded', 3000, () => (states.at(-1)?.down.includes(victim.address) === true ? true : undefined))
    const from = states.length
    await victim.restart()
    // A write while the node warms, by a process that keeps it off its ring as the monitor says.
    await waitFor('one entry warmed', 5000, () => (states.at(-1)?.warmup !== undefined && states.at(-1)!.warmup!.done >= 1 ? true : undefined))
    await farm.cache.refreshMode()
    expect(farm.cache.store instanceof MemcachedStore && farm.cache.store.nodeStates().find((n) => n.id === victim.address)?.up).toBe(false)
    await farm.db.updateTable('person').set({ first_name: 'renamed' }).where('id', 'in', chosen).execute()
    await waitFor('normal', 10_000, () => states.slice(from).find((state) => state.mode === 'normal'))

    const fresh = client(namespace)
    await fresh.cache.refreshMode()
    for (const id of chosen) {
      const [row] = await fresh.db
        .selectFrom('person')
        .select(['id', 'first_name', sql<string>`pg_sleep(0.15)::text`.as('slept')])
        .where('id', '=', id)
        .cached()
        .execute()
      expect(row!.first_name).toBe('renamed')
    }
    await farm.db.updateTable('person').set({ first_name: sql`'person ' || (id - ${ids[0]!})` }).where('id', 'in', chosen).execute()
  })

  it('stops a warm-up at maxMs and lists the node up', async () => {
    const namespace = freshNamespace()
    // Hand-written: slow entries, more than maxMs allows at concurrency 1.
    const sql = 'select pg_sleep(0.15)::text as slept, $1::int as n'
    const entries = Array.from({ length: 30 }, (_, n) => ({
      key: queryKey(namespace, sql, [n], [], scope),
      sql,
      parameters: [n],
      tables: [],
      tags: [],
      ttl: 60,
      score: 30 - n,
    }))
    const manifest: WarmupManifest = { version: 1, namespace, createdAt: new Date().toISOString(), entries }
    const manifestFile = join(directory, `${namespace}.json`)
    await writeFile(manifestFile, serializeManifest(manifest))
    const { lines, states } = monitor({
      servers: memcached.servers,
      namespace,
      warmup: { databaseUrl: databaseUrl(), manifestFile, concurrency: 1, maxMs: 400, saveEveryMs: 3_600_000 },
    })
    const { node: victim, owned } = busiestNode(entries.map((entry) => entry.key))
    expect(owned.size).toBeGreaterThan(4)
    await waitFor('the first round', 2000, () => (states.length > 0 ? true : undefined))
    await outage(victim, states, 10_000)
    const report = lines.find((line) => line.includes(`node ${victim.address} warmed:`))
    const match = new RegExp(`warmed: (\\d+) of ${owned.size} entries in \\d+\\.\\ds \\(0 failed, (\\d+) not run: stopped at the 400ms limit\\)$`).exec(report ?? '')
    expect(match, report).not.toBeNull()
    expect(Number(match![1]) + Number(match![2])).toBe(owned.size)
    expect(Number(match![1])).toBeGreaterThan(0)
  })

  it('logs a bad manifest file once, and replaces it with the farm-wide statistics', async () => {
    const namespace = freshNamespace()
    await warmTraffic(namespace)
    const manifestFile = join(directory, `${namespace}.json`)
    await writeFile(manifestFile, '{"version": 1, "namespace": "x"')
    const { lines } = monitor({ servers: memcached.servers, namespace, warmup: { manifestFile, saveEveryMs: 200 } })
    await waitFor('a valid manifest file', 3000, async () => {
      try {
        return parseManifest(await readFile(manifestFile, 'utf8'))
      } catch {
        return undefined
      }
    })
    const complaints = lines.filter((line) => line.includes('ignoring the warm-up manifest'))
    expect(complaints).toHaveLength(1)
    expect(complaints[0]).toMatch(/ignoring the warm-up manifest .*: manifest is not valid JSON: .*; it is rewritten from the farm-wide statistics$/)
    expect(lines).toContainEqual(expect.stringMatching(/returning nodes are not warmed \(no database URL\)$/))
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`warm-up manifest ${ROWS} entries from the farm-wide statistics, saved to ${escape(manifestFile)}$`)))
  })

  it('rejects bad warmup options, naming the option', () => {
    const servers = ['127.0.0.1:1']
    const start = (warmup: unknown) => () => startMonitor({ servers, warmup } as MonitorOptions)
    expect(start(null)).toThrow(/warmup options must be an object/)
    expect(start({})).toThrow(/warmup needs databaseUrl .*, manifestFile .* or both/)
    expect(start({ databaseUrl: '' })).toThrow(/warmup\.databaseUrl must be a PostgreSQL connection string/)
    expect(start({ databaseUrl: 'postgres://x', concurrency: 0 })).toThrow(/warmup\.concurrency must be a positive integer, got 0/)
    expect(start({ databaseUrl: 'postgres://x', maxMs: -1 })).toThrow(/warmup\.maxMs must be a positive number of milliseconds, at most 2147483647, got -1/)
    expect(start({ manifestFile: 'x.json', saveEveryMs: 'often' })).toThrow(/warmup\.saveEveryMs must be a positive number of milliseconds, at most 2147483647, got "often"/)
    expect(start({ manifestFile: '/no/such/directory/hot.json' })).toThrow(/warmup\.manifestFile must be in an existing directory/)
    expect(start({ databaseUrl: 'postgres://x', url: 'y' })).toThrow(/unknown option "url" for warmup/)
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
