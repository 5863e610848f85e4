/**
 * probeNode, readNodeStats and flushNode against memcached started with -S:
 * binary protocol and SASL PLAIN with credentials, clean failures without.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import { flushNode, NodeCommandError, probeNode, readNodeStats } from '../../src/store/memcached/node-probe.js'
import { startMemcached } from '../harness/memcached.js'
import type { MemcachedCluster } from '../harness/memcached.js'

const PASSWORD = 'probe-Pw-5e0b'
const WRONG_PASSWORD = 'probe-wrong-91aa'
const SASL = { username: 'monitor', password: PASSWORD }
const WRONG = { username: 'monitor', password: WRONG_PASSWORD }

let keySerial = 0

function uniqueKey(label: string): string {
  return `probe-${process.pid}-${Date.now().toString(36)}-${++keySerial}-${label}`
}

/** What a promise rejected with (fails the test when it resolved). */
async function rejection(promise: Promise<unknown>): Promise<NodeCommandError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  )
  expect(outcome).toBeInstanceOf(NodeCommandError)
  return outcome as NodeCommandError
}

describe('node probes against SASL nodes', () => {
  let cluster: MemcachedCluster
  let store: MemcachedStore

  beforeAll(async () => {
    cluster = await startMemcached(1, { sasl: SASL })
    store = new MemcachedStore({ servers: cluster.servers, sasl: SASL })
  })

  afterAll(async () => {
    await store?.close()
    await cluster?.stopAll()
  })

  it('probeNode authenticates and reads the version; wrong credentials fail with reason error, none with a timeout', async () => {
    const address = cluster.servers[0]!
    const ok = await probeNode(address, 1000, SASL)
    expect(ok).toMatchObject({ ok: true, version: expect.stringMatching(/^\d+\.\d+\.\d+/) })
    expect(ok.ok && ok.latencyMs).toBeGreaterThan(0)

    const wrong = await probeNode(address, 1000, WRONG)
    expect(wrong).toEqual({ ok: false, reason: 'error', message: `SASL authentication failed for ${address} (user "monitor")` })

    // The text protocol is off on a -S node: it waits for a whole binary header, so "version" gets no answer.
    const bare = await probeNode(address, 300)
    expect(bare).toEqual({ ok: false, reason: 'timeout', message: `no reply from ${address} within 300 ms` })
  })

  it('readNodeStats authenticates and reads every stat; wrong credentials are a NodeCommandError naming node and user', async () => {
    const address = cluster.servers[0]!
    const stats = await readNodeStats(address, 1000, SASL)
    expect(stats['pid']).toBe(String(cluster.nodes[0]!.pid))
    expect(Number(stats['auth_cmds'])).toBeGreaterThan(0)
    expect(Object.keys(stats).length).toBeGreaterThan(30)
    expect(stats).toHaveProperty('curr_items')

    const wrong = await rejection(readNodeStats(address, 1000, WRONG))
    expect(wrong).toMatchObject({ reason: 'error', node: address })
    expect(wrong.message).toBe(`stats on ${address} failed: SASL authentication failed for ${address} (user "monitor")`)
    expect(`${wrong.message} ${String(wrong.stack)} ${String((wrong.cause as Error).message)}`).not.toContain(WRONG_PASSWORD)

    expect(await rejection(readNodeStats(address, 300))).toMatchObject({ reason: 'timeout' })
  })

  it('flushNode empties the node with credentials, and leaves it alone when they are refused', async () => {
    const address = cluster.servers[0]!
    const key = uniqueKey('flush')
    await store.set(key, Buffer.from('kept'), 60)

    const wrong = await rejection(flushNode(address, 1000, WRONG))
    expect(wrong.message).toBe(`flush_all on ${address} failed: SASL authentication failed for ${address} (user "monitor")`)
    expect(await rejection(flushNode(address, 300))).toMatchObject({ reason: 'timeout' })
    expect(await store.get(key)).toEqual(Buffer.from('kept'))

    await flushNode(address, 1000, SASL)
    expect(await store.get(key)).toBeUndefined()
  })

  it('keeps the refused and timeout reasons with credentials', async () => {
    expect(await probeNode('127.0.0.1:1', 500, SASL)).toMatchObject({ ok: false, reason: 'refused' })
    expect(await rejection(readNodeStats('127.0.0.1:1', 500, SASL))).toMatchObject({ reason: 'refused' })
    const node = cluster.nodes[0]!
    await node.pause()
    try {
      const started = performance.now()
      expect(await probeNode(node.address, 200, SASL)).toEqual({ ok: false, reason: 'timeout', message: `no reply from ${node.address} within 200 ms` })
      expect(await rejection(flushNode(node.address, 200, SASL))).toMatchObject({ reason: 'timeout' })
      expect(performance.now() - started).toBeLessThan(1000)
    } finally {
      await node.resume()
    }
  })

  it('with credentials still works against a node that has SASL off, as the store does', async () => {
    const plain = await startMemcached(1)
    try {
      const address = plain.servers[0]!
      expect(await probeNode(address, 1000, SASL)).toMatchObject({ ok: true })
      expect((await readNodeStats(address, 1000, SASL))['pid']).toBe(String(plain.nodes[0]!.pid))
      const plainStore = new MemcachedStore({ servers: plain.servers, sasl: SASL })
      try {
        const key = uniqueKey('plain')
        await plainStore.set(key, Buffer.from('v'), 60)
        await flushNode(address, 1000, SASL)
        expect(await plainStore.get(key)).toBeUndefined()
      } finally {
        await plainStore.close()
      }
    } finally {
      await plain.stopAll()
    }
  })
})
