import { createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { startMonitor } from '../../src/monitor/start-monitor.js'
import type { Monitor, MonitorOptions } from '../../src/monitor/start-monitor.js'
import { flushNode, probeNode, readNodeStats } from '../../src/store/memcached/node-probe.js'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import { farmCounterKeys } from '../../src/keys.js'
import { readTierState, writeModeOverride } from '../../src/tier/tier-state.js'
import type { TierState } from '../../src/tier/tier-state.js'
import { startMemcached } from '../harness/memcached.js'
import type { MemcachedCluster } from '../harness/memcached.js'
import { waitFor } from '../harness/wait.js'

const INTERVAL_MS = 200
const SETTLE_MS = 1000
// What "within N intervals" may add on a loaded test machine: our own 20 ms polling and one read.
const SLACK_MS = 150

const clusters: MemcachedCluster[] = []
const monitors: Monitor[] = []
const stores: MemcachedStore[] = []
const cleanups: Array<() => void> = []
let namespaces = 0

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup()
  await Promise.all(monitors.splice(0).map((monitor) => monitor.stop()))
  await Promise.all(stores.splice(0).map((store) => store.close()))
  await Promise.all(clusters.splice(0).map((cluster) => cluster.stopAll()))
})

function freshNamespace(): string {
  return `mon${process.pid}-${Date.now().toString(36)}-${namespaces++}`
}

async function cluster(count: number): Promise<MemcachedCluster> {
  const started = await startMemcached(count)
  clusters.push(started)
  return started
}

/**
 * A store that reads like a process would, but never takes a node off its ring
 * by itself: its own probe-and-flush would muddle what the monitor did.
 */
function observer(servers: readonly string[]): MemcachedStore {
  const store = new MemcachedStore({ servers, timeoutMs: 100, failureThreshold: Number.MAX_SAFE_INTEGER })
  stores.push(store)
  return store
}

function monitor(options: MonitorOptions): { monitor: Monitor; lines: string[]; states: TierState[] } {
  const lines: string[] = []
  const states: TierState[] = []
  const started = startMonitor({
    intervalMs: INTERVAL_MS,
    settleMs: SETTLE_MS,
    log: (line) => lines.push(line),
    onState: (state) => states.push(state),
    ...options,
  })
  monitors.push(started)
  return { monitor: started, lines, states }
}


function published(store: MemcachedStore, namespace: string, matches: (state: TierState) => boolean) {
  return async (): Promise<TierState | undefined> => {
    const state = await readTierState(store, namespace)
    return state !== undefined && matches(state) ? state : undefined
  }
}

describe('probeNode, flushNode and readNodeStats', () => {
  const servers: Server[] = []
  const sockets = new Set<Socket>()
  afterEach(async () => {
    for (const socket of sockets) socket.destroy()
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))))
  })

  /** A TCP server that runs `onSocket` for each connection; tracks how many are open. */
  async function fakeNode(onSocket: (socket: Socket) => void): Promise<{ address: string; open: () => number }> {
    const mine = new Set<Socket>()
    const server = createServer((socket) => {
      sockets.add(socket)
      mine.add(socket)
      socket.on('close', () => {
        sockets.delete(socket)
        mine.delete(socket)
      })
      socket.on('error', () => {})
      onSocket(socket)
    })
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, open: () => mine.size }
  }

  it('answers ok with a latency from a live node, refused from a closed port', async () => {
    const { servers: [address] } = await cluster(1)
    const ok = await probeNode(address!, 500)
    expect(ok).toMatchObject({ ok: true })
    expect(ok.ok && ok.latencyMs).toBeGreaterThan(0)
    expect(ok.ok && ok.latencyMs).toBeLessThan(500)

    const closed = await fakeNode(() => {})
    servers.pop()?.close()
    await sleep(20)
    const refused = await probeNode(closed.address, 500)
    expect(refused).toMatchObject({ ok: false, reason: 'refused' })
  })

  it('times out at timeoutMs on a node that accepts and never answers, and closes its socket', async () => {
    // Reads (so it sees the client go away) but never answers.
    const hung = await fakeNode((socket) => socket.resume())
    const started = performance.now()
    const result = await probeNode(hung.address, 150)
    const elapsed = performance.now() - started
    expect(result).toMatchObject({ ok: false, reason: 'timeout' })
    expect(elapsed).toBeGreaterThanOrEqual(145)
    expect(elapsed).toBeLessThan(400)
    await waitFor('the probe socket to close', 1000, () => (hung.open() === 0 ? true : undefined))
    await expect(flushNode(hung.address, 100)).rejects.toThrow(/flush_all on 127\.0\.0\.1:\d+ failed: no reply .* within 100 ms/)
  })

  it('treats a reply that is not memcached as an error', async () => {
    const garbage = await fakeNode((socket) => socket.on('data', () => socket.write('HELLO THERE\r\n')))
    expect(await probeNode(garbage.address, 500)).toMatchObject({ ok: false, reason: 'error', message: expect.stringMatching(/HELLO THERE/) })
    await expect(flushNode(garbage.address, 500)).rejects.toThrow(/answered "HELLO THERE\\r\\n" instead of OK/)
    const closer = await fakeNode((socket) => socket.end())
    expect(await probeNode(closer.address, 500)).toMatchObject({ ok: false, reason: 'error', message: expect.stringMatching(/closed the connection/) })
  })

  it('flushes a node and reads its stats', async () => {
    const { nodes: [node] } = await cluster(1)
    await node!.command('set k 0 0 1\r\nx\r\n', /\r\n$/)
    expect((await readNodeStats(node!.address, 500))['curr_items']).toBe('1')
    await flushNode(node!.address, 500)
    expect(await node!.command('get k\r\n', /END\r\n$/)).toBe('END\r\n')
    const stats = await readNodeStats(node!.address, 500)
    expect(stats['cmd_flush']).toBe('1')
    expect(stats['pid']).toBe(String(node!.pid))
  })
})

describe('startMonitor', () => {
  it('rejects bad options, naming the option and the value', () => {
    expect(() => startMonitor({ servers: [] })).toThrow(/servers must list at least one/)
    expect(() => startMonitor({ servers: ['nohost'] })).toThrow(/servers\[0\] must be "host:port", got "nohost"/)
    expect(() => startMonitor({ servers: ['127.0.0.1:1'], namespace: 'a b' })).toThrow(/namespace must be .*got "a b"/)
    expect(() => startMonitor({ servers: ['127.0.0.1:1'], intervalMs: 0 })).toThrow(/^intervalMs must be a positive number of milliseconds, at most 2147483647, got 0$/)
    expect(() => startMonitor({ servers: ['127.0.0.1:1'], probeTimeoutMs: 2 ** 31 })).toThrow(/^probeTimeoutMs must be a positive number of milliseconds, at most 2147483647, got 2147483648$/)
    expect(() => startMonitor({ servers: ['127.0.0.1:1'], settleMs: -1 })).toThrow(/^settleMs must be a positive finite number of milliseconds, got -1$/)
    expect(() => startMonitor({ servers: ['127.0.0.1:1'], hitRatioRecovery: 1.5 })).toThrow(/^hitRatioRecovery must be a number from 0 to 1, got 1.5$/)
    expect(() => startMonitor({ servers: ['127.0.0.1:1'], minRequests: 2.5 })).toThrow(/^minRequests must be a positive integer, got 2.5$/)
    expect(() => startMonitor({ servers: ['127.0.0.1:1'], flagTtlSeconds: 2, intervalMs: 2000 })).toThrow(/^flagTtlSeconds must be a whole number of seconds from 3 to 2592000, got 2$/)
    expect(() => startMonitor({ servers: ['127.0.0.1:1'], log: 'stdout' } as unknown as MonitorOptions)).toThrow(/^log must be a function, got "stdout"$/)
    expect(() => startMonitor({ servers: ['127.0.0.1:1'], intervalMS: 5 } as unknown as MonitorOptions)).toThrow(/^unknown option "intervalMS" for startMonitor; known options: servers, namespace, intervalMs, /)
    expect(() => startMonitor(null as unknown as MonitorOptions)).toThrow(/^startMonitor options must be an object, got null$/)
  })

  it('accepts 0 for settleMs and minRequests, and a flagTtlSeconds one second above intervalMs', async () => {
    const started = startMonitor({ servers: ['127.0.0.1:1'], settleMs: 0, minRequests: 0, intervalMs: 1500, flagTtlSeconds: 2, log: () => {} })
    monitors.push(started)
    await started.ready
    expect(started.state().mode).toBe('degraded')
  })

  it('publishes degraded within two intervals of a kill -9, flushes the node when it returns, and settles before normal', async () => {
    const memcached = await cluster(3)
    const namespace = freshNamespace()
    const reader = observer(memcached.servers)
    const { monitor: running, lines } = monitor({ servers: memcached.servers, namespace })
    await running.ready
    expect(await readTierState(reader, namespace)).toMatchObject({ version: 1, mode: 'normal', down: [], setBy: expect.stringMatching(/^monitor .+:\d+$/) })

    const victim = memcached.nodes[1]!
    const killedAt = performance.now()
    await victim.kill()
    const degraded = await waitFor('degraded', 2000, published(reader, namespace, (s) => s.mode === 'degraded'))
    expect(performance.now() - killedAt).toBeLessThan(2 * INTERVAL_MS + SLACK_MS)
    expect(degraded.down).toEqual([victim.address])
    expect(degraded.reason).toBe(`node ${victim.address} down (refused)`)

    await victim.restart()
    const back = await waitFor('the node back', 2000, published(reader, namespace, (s) => s.down.length === 0))
    // Back, but not settled: still degraded, and the returning node was flushed before it counted as up.
    expect(back.mode).toBe('degraded')
    expect(back.since).toBe(degraded.since)
    expect(Number((await readNodeStats(victim.address, 500))['cmd_flush'])).toBeGreaterThanOrEqual(1)
    // Published to the returning node too, now that it is back.
    await waitFor('the flag on the returning node', 1000, async () =>
      (await victim.command(`get ${namespace}:tier:state\r\n`, /END\r\n$/)).startsWith('VALUE') ? true : undefined,
    )

    const normal = await waitFor('normal', 3000, published(reader, namespace, (s) => s.mode === 'normal'))
    expect(normal.reason).toBe('settled')
    expect(normal.since - back.at).toBeGreaterThanOrEqual(SETTLE_MS - 50)

    const text = lines.map((line) => line.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z /, '<time> '))
    expect(text).toEqual(
      expect.arrayContaining([
        `<time> kysely-memcache monitor: node ${victim.address} down: refused (connect ECONNREFUSED ${victim.address})`,
        `<time> kysely-memcache monitor: degraded (node ${victim.address} down: refused)`,
        `<time> kysely-memcache monitor: node ${victim.address} back: answered and flushed`,
        expect.stringMatching(/^<time> kysely-memcache monitor: normal \(settled: all nodes up for 1s, 0 requests in the last 5s\)$/),
      ]),
    )
  })

  it('publishes degraded within two intervals of a SIGSTOP, and flushes out what the node held before it stopped', async () => {
    const memcached = await cluster(2)
    const namespace = freshNamespace()
    const reader = observer(memcached.servers)
    const { monitor: running } = monitor({ servers: memcached.servers, namespace, probeTimeoutMs: 100 })
    await running.ready

    const victim = memcached.nodes[0]!
    // A value from before the outage: the cache would serve it stale if the node came back as it was.
    expect(await victim.command('set stale 0 0 5\r\nolder\r\n', /\r\n$/)).toBe('STORED\r\n')
    const pausedAt = performance.now()
    await victim.pause()
    const degraded = await waitFor('degraded', 2000, published(reader, namespace, (s) => s.mode === 'degraded'))
    expect(performance.now() - pausedAt).toBeLessThan(2 * INTERVAL_MS + SLACK_MS)
    expect(degraded.down).toEqual([victim.address])
    expect(degraded.reason).toBe(`node ${victim.address} down (timeout)`)

    await victim.resume()
    const back = await waitFor('the node back', 2000, published(reader, namespace, (s) => s.down.length === 0))
    expect(back.mode).toBe('degraded')
    expect(await victim.command('get stale\r\n', /END\r\n$/)).toBe('END\r\n')
  })

  it('follows an operator override while it lasts, then resumes the automatic mode', async () => {
    const memcached = await cluster(2)
    const namespace = freshNamespace()
    const reader = observer(memcached.servers)
    const { monitor: running, lines } = monitor({ servers: memcached.servers, namespace })
    await running.ready

    await writeModeOverride(reader, namespace, 'degraded', 2000, 'test operator')
    const forced = await waitFor('the override', 1000, published(reader, namespace, (s) => s.mode === 'degraded'))
    expect(forced).toMatchObject({ reason: 'operator', down: [], override: { mode: 'degraded', setBy: 'test operator' } })
    const auto = await waitFor('the override to expire', 3500, published(reader, namespace, (s) => s.mode === 'normal'))
    expect(auto.override).toBeUndefined()
    expect(auto.at).toBeGreaterThanOrEqual(forced.override!.until)
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/monitor: override: degraded until \S+Z \(set by test operator\)$/),
        expect.stringMatching(/monitor: degraded \(operator override until \S+Z\)$/),
        expect.stringMatching(/monitor: override expired; automatic mode resumes \(normal: all nodes up\)$/),
        expect.stringMatching(/monitor: normal \(operator override over; automatic mode: all nodes up\)$/),
      ]),
    )

    // Forced normal while a node is down: when it expires the tier is still unsettled, so degraded.
    const victim = memcached.nodes[1]!
    await victim.kill()
    await waitFor('degraded', 2000, published(reader, namespace, (s) => s.mode === 'degraded' && s.down.length === 1))
    await writeModeOverride(reader, namespace, 'normal', 1500, 'test operator')
    const forcedNormal = await waitFor('forced normal', 1000, published(reader, namespace, (s) => s.mode === 'normal'))
    expect(forcedNormal).toMatchObject({ reason: 'operator', down: [victim.address] })
    const after = await waitFor('the override to expire', 3000, published(reader, namespace, (s) => s.override === undefined))
    expect(after).toMatchObject({ mode: 'degraded', reason: `node ${victim.address} down (refused)` })
  })

  it('leaves its flag to expire after flagTtlSeconds when it stops', async () => {
    const memcached = await cluster(1)
    const namespace = freshNamespace()
    const reader = observer(memcached.servers)
    const { monitor: running, lines } = monitor({ servers: memcached.servers, namespace, flagTtlSeconds: 2 })
    await running.ready
    await running.stop()
    const stoppedAt = performance.now()
    const last = await readTierState(reader, namespace)
    expect(last).toEqual(running.state())
    await waitFor('the flag to expire', 2000 + 1500, async () => ((await readTierState(reader, namespace)) === undefined ? true : undefined))
    // memcached counts whole seconds: a 2 s TTL lasts between 1 and 2 s.
    expect(performance.now() - stoppedAt).toBeGreaterThan(900)
    expect(lines.at(-1)).toMatch(/monitor: stopped; the published state expires within 2s$/)
    await running.stop() // idempotent
  })

  it('stays degraded after the settle time while the farm hit ratio is low, until it recovers', async () => {
    const memcached = await cluster(3)
    const namespace = freshNamespace()
    const reader = observer(memcached.servers)
    const keys = farmCounterKeys(namespace)
    // Pause a node that holds neither counter, so the counters keep counting through the outage.
    const victim = memcached.nodes.find((node) => node.address !== reader.nodeFor(keys.hits) && node.address !== reader.nodeFor(keys.misses))!
    const { monitor: running, lines } = monitor({ servers: memcached.servers, namespace, probeTimeoutMs: 100 })

    // The farm's processes, simulated: add hits and misses every 50 ms, like ModeView does each second.
    let traffic = { hits: 95, misses: 5 }
    let sending = Promise.resolve()
    const timer = setInterval(() => {
      const { hits, misses } = traffic
      sending = Promise.all([
        reader.increment(keys.hits, hits, BigInt(hits)),
        reader.increment(keys.misses, misses, BigInt(misses)),
      ]).then(() => undefined, () => undefined)
    }, 50)
    cleanups.push(() => clearInterval(timer))
    await running.ready
    await sleep(1200) // a baseline of ~0.95

    await victim.pause()
    await waitFor('degraded', 2000, published(reader, namespace, (s) => s.mode === 'degraded'))
    traffic = { hits: 20, misses: 80 } // the cold cache after an outage
    await victim.resume()
    const back = await waitFor('the node back', 2000, published(reader, namespace, (s) => s.down.length === 0))

    await sleep(SETTLE_MS + 800)
    const held = await readTierState(reader, namespace)
    expect(held).toMatchObject({ mode: 'degraded', reason: expect.stringMatching(/^settling: hit ratio 0\.\d+ \(baseline 0\.9\d, need 0\.8\d\)$/) })
    expect(held!.hitRatio).toBeLessThan(0.8)
    expect(held!.at - back.at).toBeGreaterThan(SETTLE_MS)

    traffic = { hits: 990, misses: 10 } // warm again
    const normal = await waitFor('normal', 6000, published(reader, namespace, (s) => s.mode === 'normal'))
    expect(normal.reason).toBe('settled')
    expect(normal.hitRatio).toBeGreaterThan(0.85)
    expect(lines.at(-1)).toMatch(/monitor: normal \(settled: all nodes up for \d+s, hit ratio 0\.\d+ \(baseline 0\.9\d, need 0\.8\d\)\)$/)
    clearInterval(timer)
    await sending
  })

  it('keeps a returning node down while it cannot be flushed', async () => {
    const [healthy, flushless] = await Promise.all([cluster(1), startMemcached(1, { extraArgs: ['--disable-flush-all'] })])
    clusters.push(flushless)
    const servers = [...healthy.servers, ...flushless.servers]
    const namespace = freshNamespace()
    const reader = observer(servers)
    const victim = flushless.nodes[0]!
    const { monitor: running, lines } = monitor({ servers, namespace })
    await running.ready
    await victim.kill()
    await waitFor('degraded', 2000, published(reader, namespace, (s) => s.down.includes(victim.address)))
    await victim.restart()
    const refused = await waitFor('the flush to fail', 2000, published(reader, namespace, (s) => s.reason.includes('flush failed')))
    expect(refused).toMatchObject({ mode: 'degraded', down: [victim.address], reason: `node ${victim.address} down (flush failed)` })
    await sleep(3 * INTERVAL_MS)
    expect(running.state()).toMatchObject({ mode: 'degraded', down: [victim.address] })
    const complaints = lines.filter((line) => line.includes('answers but stays down'))
    expect(complaints).toHaveLength(1) // once per outage, not every round
    expect(complaints[0]).toMatch(new RegExp(`node ${victim.address.replaceAll('.', '\\.')} answers but stays down: flush_all on \\S+ answered "CLIENT_ERROR flush_all not allowed\\\\r\\\\n" instead of OK$`))
  })

  it('keeps going when no node can take the flag, and publishes again once one is back', async () => {
    const memcached = await cluster(1)
    const namespace = freshNamespace()
    const reader = observer(memcached.servers)
    const { monitor: running, lines, states } = monitor({ servers: memcached.servers, namespace })
    await running.ready
    const node = memcached.nodes[0]!
    await node.kill()
    await waitFor('a round with the node down', 2000, () => (states.at(-1)?.down.length === 1 ? true : undefined))
    await sleep(3 * INTERVAL_MS)
    expect(lines.filter((line) => line.includes('cannot publish'))).toEqual([
      expect.stringMatching(/monitor: cannot publish the tier state: all 1 memcached nodes are down$/),
    ])
    await node.restart()
    const back = await waitFor('the flag', 2000, published(reader, namespace, (s) => s.down.length === 0))
    expect(back.mode).toBe('degraded')
    expect(lines.some((line) => line.endsWith('monitor: publishing the tier state again'))).toBe(true)
  })

  it('reads a counter that went down as a reset, not as traffic', async () => {
    const memcached = await cluster(1)
    const namespace = freshNamespace()
    const reader = observer(memcached.servers)
    const keys = farmCounterKeys(namespace)
    const { monitor: running, states } = monitor({ servers: memcached.servers, namespace, minRequests: 1 })
    await running.ready
    await reader.increment(keys.hits, 50, 50n)
    await reader.increment(keys.misses, 50, 50n)
    await waitFor('a hit ratio', 1000, () => states.at(-1)?.hitRatio)
    expect(running.state().hitRatio).toBe(0.5)
    // The counter was lost and re-created (node restart, eviction): one write, so no round sees half of it.
    await reader.set(keys.hits, Buffer.from('1'), 0)
    await sleep(3 * INTERVAL_MS)
    expect(running.state().hitRatio).toBe(0.5)
  })
})
