/**
 * MemcachedStore against memcached started with -S: credentials that are
 * accepted, refused or missing, on every (re)connection, and never a password
 * in what the store says.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import type { MemcachedStoreOptions } from '../../src/store/memcached/memcached-store.js'
import type { StoreEvent } from '../../src/store/memcached/store-event.js'
import { StoreUnavailableError } from '../../src/store/store.js'
import { startMemcached } from '../harness/memcached.js'
import type { MemcachedCluster, MemcachedNode } from '../harness/memcached.js'
import { waitFor } from '../harness/wait.js'

const PASSWORD = 'right-Pw-7c1e'
const WRONG_PASSWORD = 'wrong-Pw-42d9'
const SASL = { username: 'app', password: PASSWORD }

const openStores = new Set<MemcachedStore>()
let keySerial = 0

function openStore(options: MemcachedStoreOptions): { store: MemcachedStore; events: StoreEvent[] } {
  const events: StoreEvent[] = []
  const store = new MemcachedStore({ ...options, onEvent: (event) => events.push(event) })
  openStores.add(store)
  return { store, events }
}

afterEach(async () => {
  await Promise.all([...openStores].map((store) => store.close()))
  openStores.clear()
})

function uniqueKey(label: string): string {
  return `sasl-${process.pid}-${Date.now().toString(36)}-${++keySerial}-${label}`
}

function keyOwnedBy(store: MemcachedStore, node: MemcachedNode, label: string): string {
  for (let i = 0; i < 10_000; i++) {
    const key = uniqueKey(`${label}${i}`)
    if (store.nodeFor(key) === node.address) return key
  }
  throw new Error(`no key maps to ${node.address}`)
}

/** Every text an error or event carries: messages and causes, event reasons. */
function texts(items: readonly unknown[]): string[] {
  const out: string[] = []
  const walk = (value: unknown): void => {
    if (value instanceof Error) {
      out.push(value.message, String(value.stack ?? ''))
      walk(value.cause)
    } else if (typeof value === 'object' && value !== null) {
      for (const field of Object.values(value)) walk(field)
    } else if (typeof value === 'string') {
      out.push(value)
    }
  }
  for (const item of items) walk(item)
  return out
}

interface AuthCounts {
  readonly commands: number
  readonly errors: number
}

/** Each node's SASL authentications and refusals so far (its stats auth_cmds and auth_errors). */
async function authCounts(nodes: readonly MemcachedNode[]): Promise<AuthCounts[]> {
  return Promise.all(
    nodes.map(async (node) => {
      const stats = await node.stats()
      return { commands: Number(stats['auth_cmds']), errors: Number(stats['auth_errors']) }
    }),
  )
}

/** What each node counted since `before` was read, less the reading's own authentication (the next reading counts it). */
async function authsSince(nodes: readonly MemcachedNode[], before: readonly AuthCounts[]): Promise<AuthCounts[]> {
  const now = await authCounts(nodes)
  return now.map((counts, i) => ({ commands: counts.commands - before[i]!.commands - 1, errors: counts.errors - before[i]!.errors }))
}

/** Every kind of call, each expected to reject. */
function everyCall(store: MemcachedStore, key: string): Array<[string, () => Promise<unknown>]> {
  const value = Buffer.from('v')
  return [
    ['get', () => store.get(key)],
    ['set', () => store.set(key, value, 60)],
    ['add', () => store.add(key, value, 60)],
    ['delete', () => store.delete(key)],
    ['increment', () => store.increment(key, 1, 0n)],
    ['getReplicas', () => store.getReplicas(key, 2)],
    ['setReplicas', () => store.setReplicas(key, value, 60, 2)],
    ['readHomes', () => Promise.all(store.readHomes(key, 2))],
    ['writeHomes', () => Promise.all(store.writeHomes(key, value, 60, 2))],
    ['addHomes', () => Promise.all(store.addHomes(key, value, 60, 2))],
  ]
}

describe('MemcachedStore with SASL', () => {
  let cluster: MemcachedCluster

  beforeAll(async () => {
    cluster = await startMemcached(2, { sasl: SASL })
  })

  afterAll(async () => {
    await cluster?.stopAll()
  })

  it('with the right credentials sets, gets, adds, increments and replicates, as another client sees', async () => {
    const { store, events } = openStore({ servers: cluster.servers, sasl: SASL })
    const before = await authCounts(cluster.nodes)
    const key = uniqueKey('basic')
    await store.set(key, Buffer.from('hello'), 60)
    expect(await store.add(key, Buffer.from('other'), 60)).toBe(false)
    const added = uniqueKey('added')
    expect(await store.add(added, Buffer.from('first'), 60)).toBe(true)
    const counter = uniqueKey('counter')
    expect(await store.increment(counter, 5, 10n)).toBe('10')
    expect(await store.increment(counter, 5, 10n)).toBe('15')
    const replicated = uniqueKey('replicated')
    expect(await store.setReplicas(replicated, Buffer.from('copy'), 60, 2)).toEqual([true, true])
    const homed = uniqueKey('homed')
    await Promise.all(store.writeHomes(homed, Buffer.from('home'), 60, 2))

    // A second client on connections of its own reads what the first stored.
    const { store: other } = openStore({ servers: cluster.servers, sasl: SASL })
    expect(await other.get(key)).toEqual(Buffer.from('hello'))
    expect(await other.get(added)).toEqual(Buffer.from('first'))
    expect(await other.increment(counter, 0, 0n)).toBe('15')
    expect(await other.getReplicas(replicated, 2)).toEqual([Buffer.from('copy'), Buffer.from('copy')])
    expect(await Promise.all(other.readHomes(homed, 2))).toEqual([Buffer.from('home'), Buffer.from('home')])
    expect(await other.delete(key)).toBe(true)
    expect(await store.get(key)).toBeUndefined()
    // Each of the two stores authenticated once per node, and no attempt was refused.
    expect(await authsSince(cluster.nodes, before)).toEqual([
      { commands: 2, errors: 0 },
      { commands: 2, errors: 0 },
    ])
    expect(events).toEqual([])
  })

  it('authenticates again on the connection memjs reopens after the node restarted', async () => {
    const { store, events } = openStore({ servers: cluster.servers, sasl: SASL })
    const node = cluster.nodes[0]!
    const key = keyOwnedBy(store, node, 'reopen')
    await store.set(key, Buffer.from('before'), 60)
    await node.restart()
    const before = await authCounts([node])
    // The old socket is gone; the next request opens a new one, which must authenticate first.
    expect(await store.get(key)).toBeUndefined()
    await store.set(key, Buffer.from('after'), 60)
    expect(await authsSince([node], before)).toEqual([{ commands: 1, errors: 0 }])
    const { store: other } = openStore({ servers: cluster.servers, sasl: SASL })
    expect(await other.get(key)).toEqual(Buffer.from('after'))
    expect(events).toEqual([])
  })

  it('a node back from the dead is probed over an authenticated connection, flushed and put back', async () => {
    const { store, events } = openStore({ servers: cluster.servers, sasl: SASL, retryAfterMs: 300 })
    const node = cluster.nodes[1]!
    const key = keyOwnedBy(store, node, 'back')
    await node.kill()
    await expect(store.set(key, Buffer.from('v'), 60)).rejects.toBeInstanceOf(StoreUnavailableError)
    expect(store.nodeStates()[1]).toMatchObject({ up: false })
    await node.restart()
    const { store: writer } = openStore({ servers: [node.address], sasl: SASL })
    await writer.set(key, Buffer.from('stale'), 60)
    await waitFor('node-up', 5000, () => events.find((event) => event.type === 'node-up'))
    expect(events.find((event) => event.type === 'node-up')).toEqual({ type: 'node-up', node: node.address, flushed: true })
    // The store's own probe flushed the value written while it had the node off its ring.
    expect(await writer.get(key)).toBeUndefined()
    expect(store.liveNodeCount).toBe(2)
  })

  it('with a wrong password every call fails as StoreUnavailableError naming the node and user, never a password', async () => {
    const { store, events } = openStore({ servers: cluster.servers, sasl: { username: 'app', password: WRONG_PASSWORD }, failureThreshold: 2 })
    const before = await authCounts(cluster.nodes)
    const key = uniqueKey('wrong')
    const errors: unknown[] = []
    for (const [name, call] of everyCall(store, key)) {
      const error = await call().then(
        () => new Error(`${name} succeeded`),
        (reason: unknown) => reason,
      )
      expect(error, name).toBeInstanceOf(StoreUnavailableError)
      errors.push(error)
    }
    const first = (errors[0] as Error).message
    expect(first).toMatch(/^memcached 127\.0\.0\.1:\d+ failed to get "sasl-[^"]+": SASL authentication failed for 127\.0\.0\.1:\d+ \(user "app"\)$/)
    const failures = events.filter((event): event is Extract<StoreEvent, { type: 'error' }> => event.type === 'error')
    expect(failures.length).toBeGreaterThan(0)
    for (const event of failures) {
      expect(event.error.message).toBe(`SASL authentication failed for ${event.node} (user "app")`)
    }
    // Refused credentials count as failures: after failureThreshold the nodes leave the ring.
    expect(events.filter((event) => event.type === 'node-down').map((event) => event.node).sort()).toEqual([...cluster.servers].sort())
    for (const text of texts([...errors, ...events])) {
      expect(text).not.toContain(WRONG_PASSWORD)
      expect(text).not.toContain(PASSWORD)
    }
    // Nothing was written, as a client with the right password sees.
    const { store: reader } = openStore({ servers: cluster.servers, sasl: SASL })
    expect(await reader.get(key)).toBeUndefined()
    // Each node really refused the password: at least failureThreshold times (one per connection) before it left the ring.
    for (const node of await authsSince(cluster.nodes, before)) expect(node.errors).toBeGreaterThanOrEqual(2)
  })

  it('a node that refuses the credentials is not hammered: off the ring, calls fail fast without connecting', async () => {
    const { store } = openStore({ servers: cluster.servers, sasl: { username: 'app', password: WRONG_PASSWORD }, failureThreshold: 1 })
    for (let i = 0; i < 10 && store.liveNodeCount > 0; i++) await store.get(uniqueKey('down')).catch(() => undefined)
    expect(store.liveNodeCount).toBe(0)
    const before = await authCounts(cluster.nodes)
    const started = performance.now()
    for (let i = 0; i < 200; i++) {
      await expect(store.get(uniqueKey('fast'))).rejects.toBeInstanceOf(StoreUnavailableError)
    }
    expect(performance.now() - started).toBeLessThan(500)
    // Only the probes every retryAfterMs (5 s by default) may try again.
    expect(await authsSince(cluster.nodes, before)).toEqual([
      { commands: 0, errors: 0 },
      { commands: 0, errors: 0 },
    ])
  })

  it('without credentials every call fails as StoreUnavailableError saying the node requires SASL', async () => {
    const { store, events } = openStore({ servers: cluster.servers })
    const key = uniqueKey('none')
    for (const [name, call] of everyCall(store, key)) {
      await expect(call(), name).rejects.toBeInstanceOf(StoreUnavailableError)
    }
    const failure = events.find((event): event is Extract<StoreEvent, { type: 'error' }> => event.type === 'error')
    expect(failure?.error.message).toBe(`${failure?.node} requires SASL authentication, and no credentials were given`)
    const { store: reader } = openStore({ servers: cluster.servers, sasl: SASL })
    expect(await reader.get(key)).toBeUndefined()
  })

  it("never uses memjs's MEMCACHIER_*/MEMCACHE_* environment credentials", async () => {
    const names = ['MEMCACHIER_USERNAME', 'MEMCACHIER_PASSWORD', 'MEMCACHE_USERNAME', 'MEMCACHE_PASSWORD'] as const
    const saved = names.map((name) => process.env[name])
    process.env['MEMCACHIER_USERNAME'] = 'app'
    process.env['MEMCACHIER_PASSWORD'] = PASSWORD
    process.env['MEMCACHE_USERNAME'] = 'app'
    process.env['MEMCACHE_PASSWORD'] = PASSWORD
    try {
      const before = await authCounts(cluster.nodes)
      // Without sasl: the environment's (right) credentials would let it in; they must not be tried.
      const { store: bare, events } = openStore({ servers: cluster.servers })
      const key = uniqueKey('env')
      await expect(bare.set(key, Buffer.from('v'), 60)).rejects.toBeInstanceOf(StoreUnavailableError)
      expect(events.find((event) => event.type === 'error')).toMatchObject({ error: { message: expect.stringContaining('no credentials were given') } })
      expect(await authsSince(cluster.nodes, before)).toEqual([
        { commands: 0, errors: 0 },
        { commands: 0, errors: 0 },
      ])
      // With wrong sasl: the environment's right ones must not stand in.
      const { store: wrong } = openStore({ servers: cluster.servers, sasl: { username: 'app', password: WRONG_PASSWORD } })
      await expect(wrong.set(key, Buffer.from('v'), 60)).rejects.toThrow(/SASL authentication failed for 127\.0\.0\.1:\d+ \(user "app"\)/)
      const { store: reader } = openStore({ servers: cluster.servers, sasl: SASL })
      expect(await reader.get(key)).toBeUndefined()
    } finally {
      names.forEach((name, i) => {
        if (saved[i] === undefined) delete process.env[name]
        else process.env[name] = saved[i]
      })
    }
  })

  it('checks the sasl option without ever showing the password', () => {
    const servers = ['127.0.0.1:11211']
    expect(() => new MemcachedStore({ servers, sasl: { username: 'app' } as never })).toThrow(
      'sasl.password must be a non-empty string without NUL characters (value not shown)',
    )
    expect(() => new MemcachedStore({ servers, sasl: { username: '', password: PASSWORD } })).toThrow(/^sasl\.username must be/)
    expect(() => new MemcachedStore({ servers, sasl: { username: 'app', password: `a\u0000${PASSWORD}` } })).toThrow(/value not shown/)
    expect(() => new MemcachedStore({ servers, sasl: PASSWORD as never })).toThrow('sasl must be an object { username, password }, got a string (value not shown)')
    for (const bad of [{ username: 'app' }, { username: '', password: PASSWORD }, { username: 'app', password: `a\u0000${PASSWORD}` }, PASSWORD]) {
      try {
        new MemcachedStore({ servers, sasl: bad as never })
      } catch (error) {
        expect((error as Error).message).not.toContain(PASSWORD)
      }
    }
  })

  it('closes cleanly while a connection is still authenticating', async () => {
    const { store } = openStore({ servers: cluster.servers, sasl: SASL })
    const pending = store.get(uniqueKey('closing')).catch((error: unknown) => error)
    await store.close()
    expect(await pending).toBeInstanceOf(StoreUnavailableError)
    await sleep(50)
  })
})

describe('the memcached test harness with SASL', () => {
  it('explains how to install saslpasswd2 when it is missing', async () => {
    const saved = process.env['SASLPASSWD2_BIN']
    process.env['SASLPASSWD2_BIN'] = '/nonexistent/saslpasswd2'
    try {
      await expect(startMemcached(1, { sasl: SASL })).rejects.toThrow(/saslpasswd2 not found .*install sasl2-bin \(Debian\/Ubuntu: apt-get install sasl2-bin\)$/)
    } finally {
      if (saved === undefined) delete process.env['SASLPASSWD2_BIN']
      else process.env['SASLPASSWD2_BIN'] = saved
    }
  })
})
