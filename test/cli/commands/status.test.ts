import { describe, expect, it } from 'vitest'
import type { StatusReport } from '../../../src/cli/commands/status.js'
import { tierStateKey } from '../../../src/keys.js'
import { startMonitor } from '../../../src/monitor/start-monitor.js'
import { publish } from '../../../src/tier/tier-state.js'
import type { TierState } from '../../../src/tier/tier-state.js'
import { freshNamespace, useMemcached } from '../fixtures.js'
import { run } from '../run-cli.js'

const memcached = useMemcached()

describe('kysely-memcache status', () => {
  it('shows each node, and that no monitor runs when the flag is absent', async () => {
    const namespace = freshNamespace()
    const { code, stdout, stderr } = await run(['status', '--servers', memcached.servers, '--namespace', namespace])
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    expect(stdout).toContain(`namespace "${namespace}": 2 of 2 nodes up`)
    for (const node of memcached.cluster.nodes) expect(stdout).toMatch(new RegExp(`^  ${node.address.replaceAll('.', '\\.')}  up +\\d+\\.\\dms, \\d+ items`, 'm'))
    expect(stdout).toContain('no monitor running (flag absent or expired)')
    expect(stdout).toContain('hit ratio: unknown (no monitor)')
    expect(stdout).toContain('override:  none')
  })

  it('shows the mode a monitor publishes, and a node that is down', async () => {
    const namespace = freshNamespace()
    const dead = '127.0.0.1:1'
    const monitor = startMonitor({ servers: [...memcached.cluster.servers, dead], namespace, intervalMs: 200, settleMs: 1000, log: () => {} })
    memcached.track(monitor)
    await monitor.ready
    const { code, stdout } = await run(['status', '--servers', `${memcached.servers},${dead}`, '--namespace', namespace])
    expect(code).toBe(0)
    expect(stdout).toContain(`namespace "${namespace}": 2 of 3 nodes up`)
    expect(stdout).toMatch(/^  127\.0\.0\.1:1 +down  refused: connect ECONNREFUSED 127\.0\.0\.1:1$/m)
    expect(stdout).toMatch(/^mode: +degraded since \d{4}-\d\d-\d\dT[\d:.]+Z \(for \d+(ms|s)\)$/m)
    expect(stdout).toContain(`reason:    node ${dead} down (refused)`)
    expect(stdout).toMatch(/^set by: +monitor .+:\d+, published \d+ms ago$/m)
    expect(stdout).toContain(`down:      ${dead} (per the monitor)`)

    const json = await run(['status', '--servers', `${memcached.servers},${dead}`, '--namespace', namespace, '--json'])
    const report = JSON.parse(json.stdout) as StatusReport
    expect(report).toMatchObject({
      namespace,
      monitor: true,
      state: { mode: 'degraded', down: [dead], reason: `node ${dead} down (refused)` },
      override: null,
      hitRatio: null,
    })
    expect(report.nodes.map((node) => [node.address, node.up])).toEqual([
      [memcached.cluster.servers[0], true],
      [memcached.cluster.servers[1], true],
      [dead, false],
    ])
  })

  it("shows a returning node's warm-up in status, as text and JSON", async () => {
    const namespace = freshNamespace()
    const now = Date.now()
    const state: TierState = {
      version: 1,
      mode: 'degraded',
      down: ['127.0.0.1:11311'],
      since: now - 10_000,
      reason: 'node 127.0.0.1:11311 down (warming)',
      setBy: 'monitor test:1',
      at: now,
      warmup: { node: '127.0.0.1:11311', done: 12, total: 50, startedAt: now - 3000 },
    }
    await publish(memcached.reader(), tierStateKey(namespace), state, 30)
    const text = await run(['status', '--servers', memcached.servers, '--namespace', namespace])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^warm-up: {3}warming 127\.0\.0\.1:11311: 12\/50 since 3s$/m)
    expect(text.stdout).toContain('reason:    node 127.0.0.1:11311 down (warming)')
    const json = JSON.parse((await run(['status', '--servers', memcached.servers, '--namespace', namespace, '--json'])).stdout) as StatusReport
    expect(json.warmup).toEqual(state.warmup)
    expect(json.state?.warmup).toEqual(state.warmup)
    // No warm-up running: no line, and null in JSON.
    const quiet = freshNamespace()
    expect((await run(['status', '--servers', memcached.servers, '--namespace', quiet])).stdout).not.toContain('warm-up:')
    expect((JSON.parse((await run(['status', '--servers', memcached.servers, '--namespace', quiet, '--json'])).stdout) as StatusReport).warmup).toBeNull()
  })
})
