/**
 * The commands and the monitor with the processes' signing secret: what they
 * write is read by a process that has the secret and refused by one that does
 * not (and the other way round), and no secret shows in what they print.
 */
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { MemcachedStore } from '../../../src/store/memcached/memcached-store.js'
import { startMonitor } from '../../../src/monitor/start-monitor.js'
import { readModeOverride, readTierState } from '../../../src/tier/tier-state.js'
import { freshNamespace, useMemcached } from '../fixtures.js'
import { run } from '../run-cli.js'

const SECRET = 'cli secret 4f1d9a0b77e2c3d5'
const PREVIOUS = 'cli previous secret 9c8b7a65'
const memcached = useMemcached()

async function secretFile(...lines: string[]): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'kmc-secret-')), 'secrets')
  await writeFile(file, `${lines.join('\n')}\n`)
  return file
}

/** A process's store on the nodes, with the secret or without; the caller closes it. */
function storeWith(secret: string | undefined): MemcachedStore {
  return new MemcachedStore({ servers: memcached.cluster.servers, ...(secret === undefined ? {} : { secret }) })
}

describe('signing secrets in the CLI', () => {
  it('mode writes an override that only holders of the secret read; status reads it back with the secret and shows none of it', async () => {
    const namespace = freshNamespace()
    const file = await secretFile(SECRET, PREVIOUS)
    const forced = await run(['mode', 'degraded', '--for', '5m', '--servers', memcached.servers, '--namespace', namespace, '--secret-file', file])
    expect(forced.code).toBe(0)

    const signed = storeWith(SECRET)
    const unsigned = storeWith(undefined)
    try {
      expect(await readModeOverride(signed, namespace)).toMatchObject({ mode: 'degraded' })
      // A process without the secret (or an attacker's reader) sees no override at all.
      expect(await readModeOverride(unsigned, namespace)).toBeUndefined()
    } finally {
      await Promise.all([signed.close(), unsigned.close()])
    }

    const withSecret = await run(['status', '--servers', memcached.servers, '--namespace', namespace, '--secret-file', file])
    expect(withSecret.stdout).toMatch(/^override: +degraded until /m)
    const fromEnv = await run(['status', '--servers', memcached.servers, '--namespace', namespace], undefined, false, { KYSELY_MEMCACHE_SECRET: SECRET })
    expect(fromEnv.stdout).toMatch(/^override: +degraded until /m)
    const without = await run(['status', '--servers', memcached.servers, '--namespace', namespace])
    expect(without.stdout).toContain('override:  none')
    for (const output of [forced, withSecret, fromEnv, without]) {
      expect(output.stdout + output.stderr).not.toContain(SECRET)
      expect(output.stdout + output.stderr).not.toContain(PREVIOUS)
    }
  })

  it('refuses a short secret or an empty file without showing it', async () => {
    const short = await run(['status', '--servers', memcached.servers], undefined, false, { KYSELY_MEMCACHE_SECRET: 'short-one' })
    expect(short.code).toBe(2)
    expect(short.stderr).toContain('KYSELY_MEMCACHE_SECRET must be at least 16 bytes (got 9; value not shown)')
    expect(short.stderr).not.toContain('short-one')
    const file = await secretFile(SECRET, 'tiny')
    const second = await run(['mode', 'auto', '--servers', memcached.servers, '--secret-file', file])
    expect(second.code).toBe(2)
    expect(second.stderr).toContain(`line 2 of --secret-file ${JSON.stringify(file)} must be at least 16 bytes`)
    expect(second.stderr).not.toContain('tiny')
    const empty = await secretFile()
    expect((await run(['status', '--servers', memcached.servers, '--secret-file', empty])).stderr).toContain('holds no secret')
    expect((await run(['status', '--help'])).stdout).toContain('--secret-file <path>')
  })
})

describe('signing secrets in the monitor', () => {
  it('publishes a tier state that holders of the secret read, says it signs, and never logs the secret', async () => {
    const namespace = freshNamespace()
    const lines: string[] = []
    const monitor = memcached.track(
      startMonitor({ servers: memcached.cluster.servers, namespace, intervalMs: 200, settleMs: 0, secrets: [SECRET, PREVIOUS], log: (line) => lines.push(line) }),
    )
    await monitor.ready
    const signed = storeWith(SECRET)
    const unsigned = storeWith(undefined)
    try {
      expect(await readTierState(signed, namespace)).toMatchObject({ mode: 'normal' })
      expect(await readTierState(unsigned, namespace)).toBeUndefined()
    } finally {
      await Promise.all([signed.close(), unsigned.close()])
    }
    expect(lines.join('\n')).toContain('signing values with a secret (accepting 1 previous secret)')
    expect(lines.join('\n')).not.toContain(SECRET)
    expect(lines.join('\n')).not.toContain(PREVIOUS)
  })
})
