import { describe, expect, it } from 'vitest'
import type { StatusReport } from '../../../src/cli/commands/status.js'
import { readModeOverride } from '../../../src/tier/tier-state.js'
import { freshNamespace, useMemcached } from '../fixtures.js'
import { run } from '../run-cli.js'

const memcached = useMemcached()

describe('kysely-memcache mode', () => {
  it('forces a mode for a while, shows it in status, and gives it back with auto', async () => {
    const namespace = freshNamespace()
    const forced = await run(['mode', 'degraded', '--for', '10m', '--servers', memcached.servers, '--namespace', namespace])
    expect(forced.code).toBe(0)
    expect(forced.stdout).toMatch(
      new RegExp(`^kysely-memcache: mode degraded forced for namespace "${namespace}" until \\S+Z \\(for 10m\\) on all 2 nodes, set by cli .+\\n$`),
    )
    const override = await readModeOverride(memcached.reader(), namespace)
    expect(override).toMatchObject({ mode: 'degraded', setBy: expect.stringMatching(/^cli /) })
    expect(override!.until - Date.now()).toBeGreaterThan(590_000)

    const status = await run(['status', '--servers', memcached.servers, '--namespace', namespace])
    expect(status.stdout).toContain('mode:      degraded, forced by the operator override (no monitor running)')
    expect(status.stdout).not.toContain('each process goes by its own view')
    expect(status.stdout).toMatch(/^override: +degraded until \S+Z \((9m5\d|10m)s? left\), set by cli .+$/m)
    const json = JSON.parse((await run(['status', '--servers', memcached.servers, '--namespace', namespace, '--json'])).stdout) as StatusReport
    expect(json.override).toEqual(override)

    const auto = await run(['mode', 'auto', '--servers', memcached.servers, '--namespace', namespace])
    expect(auto.code).toBe(0)
    expect(auto.stdout).toContain(`override removed for namespace "${namespace}" on all 2 nodes`)
    expect(await readModeOverride(memcached.reader(), namespace)).toBeUndefined()
    expect((await run(['status', '--servers', memcached.servers, '--namespace', namespace])).stdout).toContain('override:  none')
  })

  it('writes to the nodes that answer and says which did not', async () => {
    const namespace = freshNamespace()
    const result = await run(['mode', 'normal', '--for', '1m', '--servers', `${memcached.servers},127.0.0.1:1`, '--namespace', namespace])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('on 2 of 3 nodes (unreachable: 127.0.0.1:1 refused)')
    const one = await run(['mode', 'normal', '--for', '1d', '--servers', memcached.cluster.servers[0]!, '--namespace', namespace])
    expect(one.code).toBe(0)
    expect(one.stdout).toMatch(/ \(for 1d\) on its one node, set by /)
    const none = await run(['mode', 'normal', '--for', '1m', '--servers', '127.0.0.1:1'])
    expect(none).toMatchObject({ code: 1, stdout: '', stderr: 'kysely-memcache: no memcached node answered (127.0.0.1:1 refused); nothing was changed\n' })
  })
})
