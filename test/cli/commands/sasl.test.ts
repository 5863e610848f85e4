/**
 * The commands against memcached started with -S: credentials from the
 * environment or from --sasl-username/--sasl-password-file, and never a
 * password in what they print.
 */
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { StatusReport } from '../../../src/cli/commands/status.js'
import { startMonitor } from '../../../src/monitor/start-monitor.js'
import { readModeOverride, readTierState } from '../../../src/tier/tier-state.js'
import { serializeManifest } from '../../../src/warmup/manifest.js'
import { waitFor } from '../../harness/wait.js'
import { byId, freshNamespace, useDatabase, useMemcached } from '../fixtures.js'
import { run, spawnCli } from '../run-cli.js'

const PASSWORD = 'cli-Pw-0d7e'
const WRONG_PASSWORD = 'cli-wrong-88b2'
const SASL = { username: 'app', password: PASSWORD }
const ENV = { KYSELY_MEMCACHE_SASL_USERNAME: 'app', KYSELY_MEMCACHE_SASL_PASSWORD: PASSWORD }

const memcached = useMemcached({ sasl: SASL })
const db = useDatabase(memcached)

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

async function passwordFile(name: string, password: string): Promise<string> {
  const file = join(db.directory, name)
  await writeFile(file, `${password}\n`)
  return file
}

describe('the commands on SASL nodes', () => {
  it('status authenticates with the environment variables: nodes up with their stats, the mode a SASL monitor publishes, no password', async () => {
    const namespace = freshNamespace()
    const monitor = memcached.track(startMonitor({ servers: memcached.cluster.servers, namespace, intervalMs: 200, settleMs: 1000, sasl: SASL, log: () => {} }))
    await monitor.ready
    const text = await run(['status', '--servers', memcached.servers, '--namespace', namespace], undefined, false, ENV)
    expect({ code: text.code, stderr: text.stderr }).toEqual({ code: 0, stderr: '' })
    expect(text.stdout).toContain(`namespace "${namespace}": 2 of 2 nodes up`)
    for (const node of memcached.cluster.nodes) {
      expect(text.stdout).toMatch(new RegExp(`^  ${escaped(node.address)}  up +\\d+\\.\\dms, \\d+ items, \\d+ hits / \\d+ misses, uptime `, 'm'))
    }
    expect(text.stdout).toMatch(/^mode: +normal since /m)

    const json = await run(['status', '--servers', memcached.servers, '--namespace', namespace, '--json'], undefined, false, ENV)
    const report = JSON.parse(json.stdout) as StatusReport
    expect(report).toMatchObject({ monitor: true, state: { mode: 'normal', down: [] } })
    expect(report.nodes.every((node) => node.up)).toBe(true)
    for (const output of [text, json]) expect(`${output.stdout}${output.stderr}`).not.toContain(PASSWORD)
  })

  it('status in a real process reads the credentials from its environment', async () => {
    const { code, stdout, stderr } = await spawnCli(['status', '--servers', memcached.servers], undefined, ENV)
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    expect(stdout).toContain('2 of 2 nodes up')
    expect(stdout).not.toContain(PASSWORD)
  })

  it('status with a wrong password file shows each node down with the SASL refusal, naming the user only', async () => {
    const file = await passwordFile('wrong-password', WRONG_PASSWORD)
    const { code, stdout, stderr } = await run(['status', '--servers', memcached.servers, '--sasl-username', 'app', '--sasl-password-file', file], undefined, false, ENV)
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    expect(stdout).toContain('0 of 2 nodes up')
    for (const node of memcached.cluster.servers) {
      expect(stdout).toContain(`  ${node}  down  error: SASL authentication failed for ${node} (user "app")`)
    }
    expect(stdout).not.toContain(WRONG_PASSWORD)
    expect(stdout).not.toContain(PASSWORD)
  })

  it('status without credentials finds the nodes silent: a -S node does not speak the text protocol', async () => {
    const { code, stdout } = await run(['status', '--servers', memcached.servers, '--timeout', '200ms'], undefined, false, {})
    expect(code).toBe(0)
    expect(stdout).toContain('0 of 2 nodes up')
    expect(stdout).toContain(`  ${memcached.cluster.servers[0]}  down  timeout: no reply from ${memcached.cluster.servers[0]} within 200 ms`)
  })

  it('mode writes the override with the password file, and changes nothing when the password is wrong', async () => {
    const namespace = freshNamespace()
    const wrong = await passwordFile('wrong-for-mode', WRONG_PASSWORD)
    const refused = await run(['mode', 'degraded', '--for', '5m', '--servers', memcached.servers, '--namespace', namespace, '--sasl-username', 'app', '--sasl-password-file', wrong], undefined, false, {})
    expect(refused.code).toBe(1)
    expect(refused.stderr).toBe(`kysely-memcache: no memcached node answered (${memcached.cluster.servers.map((node) => `${node} error`).join(', ')}); nothing was changed\n`)
    expect(`${refused.stdout}${refused.stderr}`).not.toContain(WRONG_PASSWORD)
    expect(await readModeOverride(memcached.reader(), namespace)).toBeUndefined()

    const right = await passwordFile('right-for-mode', PASSWORD)
    const forced = await run(['mode', 'degraded', '--for', '5m', '--servers', memcached.servers, '--namespace', namespace, '--sasl-username', 'app', '--sasl-password-file', right], undefined, false, {})
    expect(forced.code).toBe(0)
    expect(forced.stdout).toContain('on all 2 nodes')
    expect(forced.stdout).not.toContain(PASSWORD)
    expect(await readModeOverride(memcached.reader(), namespace)).toMatchObject({ mode: 'degraded' })
  })

  it('monitor publishes through authenticated connections and logs the user, not the password', async () => {
    const namespace = freshNamespace()
    const controller = new AbortController()
    const running = run(['monitor', '--servers', memcached.servers, '--namespace', namespace, '--interval', '200ms'], controller.signal, false, ENV)
    const state = await waitFor('the flag', 3000, () => readTierState(memcached.reader(), namespace))
    expect(state).toMatchObject({ mode: 'normal', down: [] })
    controller.abort()
    const { code, stdout, stderr } = await running
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    expect(stdout).toMatch(/^\S+Z kysely-memcache monitor: authenticating to memcached as "app" \(SASL PLAIN\)$/m)
    expect(stdout).not.toContain(PASSWORD)
  })

  it('export authenticates with the environment variables; with a wrong password no node answers and nothing is written', async () => {
    const namespace = freshNamespace()
    await db.traffic(namespace)
    const file = join(db.directory, `${namespace}-export.json`)
    const wrong = await passwordFile('wrong-for-export', WRONG_PASSWORD)
    const refused = await run(['export', '--servers', memcached.servers, '--namespace', namespace, '--out', file, '--sasl-username', 'app', '--sasl-password-file', wrong], undefined, false, {})
    expect(refused.code).toBe(1)
    expect(refused.stderr).toBe(`kysely-memcache: no memcached node answered (${memcached.cluster.servers.map((node) => `${node} error`).join(', ')}); nothing was exported\n`)
    expect(existsSync(file)).toBe(false)
    // With the right ones it reaches the nodes (what it then finds there is export.test.ts's business).
    const reached = await run(['export', '--servers', memcached.servers, '--namespace', namespace, '--out', file], undefined, false, ENV)
    expect(reached.stderr).not.toContain('no memcached node answered')
    for (const output of [refused, reached]) expect(`${output.stdout}${output.stderr}`).not.toMatch(new RegExp(`${PASSWORD}|${WRONG_PASSWORD}`))
  })

  it('warmup replays a manifest into the nodes through authenticated connections: then every query is a hit', async () => {
    const namespace = freshNamespace()
    const farm = await db.traffic(namespace)
    const manifest = await farm.cache.exportWarmupManifest({ scope: 'process' })
    expect(manifest.entries).toHaveLength(12)
    const file = join(db.directory, `${namespace}.json`)
    await writeFile(file, serializeManifest(manifest))

    // Empty the nodes, then the replay must put every entry back.
    await Promise.all(memcached.cluster.nodes.map((node) => node.flush()))
    const reader = memcached.reader()
    for (const entry of manifest.entries) expect(await reader.get(entry.key)).toBeUndefined()
    const warmed = await run(['warmup', '--from', file, '--database-url', db.databaseUrl(), '--servers', memcached.servers], undefined, false, ENV)
    expect(warmed.code).toBe(0)
    expect(warmed.stdout).toMatch(/^kysely-memcache: 12 warmed, 0 skipped, 0 failed of 12 entries/m)
    for (const entry of manifest.entries) expect(await reader.get(entry.key), entry.key).toBeDefined()

    // A process of the farm now hits without asking the database.
    const fresh = db.client(namespace)
    fresh.executions.reset()
    for (let id = 1; id <= 12; id++) await byId(fresh, id).execute()
    expect(fresh.executions.count()).toBe(0)
    expect(`${warmed.stdout}${warmed.stderr}`).not.toContain(PASSWORD)
  })
})
