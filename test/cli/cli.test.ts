import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../../src/cli/main.js'
import type { CliIo, StatusReport } from '../../src/cli/main.js'
import { formatDuration, parseDuration } from '../../src/util/duration.js'
import { startMonitor } from '../../src/monitor/start-monitor.js'
import type { Monitor } from '../../src/monitor/start-monitor.js'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import { publish, readModeOverride, readTierState, tierStateKey } from '../../src/tier/tier-state.js'
import type { TierState } from '../../src/tier/tier-state.js'
import { parseManifest, serializeManifest } from '../../src/warmup/manifest.js'
import type { WarmupManifest } from '../../src/warmup/manifest.js'
import { createSchema, DATABASE_URL, openPostgres } from '../harness/database.js'
import type { TestDatabase } from '../harness/database.js'
import { closeClient, createClient } from '../harness/farm.js'
import type { Client } from '../harness/farm.js'
import { startMemcached } from '../harness/memcached.js'
import type { MemcachedCluster } from '../harness/memcached.js'
import { waitFor } from '../harness/wait.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

let memcached: MemcachedCluster
let servers: string
const monitors: Monitor[] = []
const stores: MemcachedStore[] = []
let namespaces = 0

beforeAll(async () => {
  memcached = await startMemcached(2)
  servers = memcached.servers.join(',')
})

afterEach(async () => {
  await Promise.all(monitors.splice(0).map((monitor) => monitor.stop()))
  await Promise.all(stores.splice(0).map((store) => store.close()))
})

afterAll(async () => {
  await memcached?.stopAll()
})

function freshNamespace(): string {
  return `cli${process.pid}-${Date.now().toString(36)}-${namespaces++}`
}

function reader(): MemcachedStore {
  const store = new MemcachedStore({ servers: memcached.servers, timeoutMs: 200 })
  stores.push(store)
  return store
}

interface Run {
  code: number
  stdout: string
  stderr: string
}

async function run(argv: string[], signal?: AbortSignal, tty = false): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = {
    // A terminal as cli-progress sees one: readline writes its cursor moves through write().
    stdout: tty ? ({ write: (text: string) => (stdout += text), isTTY: true, columns: 120 } as CliIo['stdout']) : { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    ...(signal === undefined ? {} : { signal }),
  }
  const code = await main(argv, io)
  return { code, stdout, stderr }
}

/** Runs the real bin the way a shell would, through tsx. */
function spawnCli(argv: string[], whileRunning?: (child: ReturnType<typeof spawn>, output: () => string) => Promise<void>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve({ code: code ?? (signal === null ? -1 : 128), stdout, stderr }))
    whileRunning?.(child, () => stdout).catch((error: unknown) => {
      child.kill('SIGKILL')
      reject(error)
    })
  })
}


describe('parseDuration', () => {
  it('reads ms, s, m, h, d, combinations and plain milliseconds', () => {
    expect(parseDuration('250ms', '--x')).toBe(250)
    expect(parseDuration('1s', '--x')).toBe(1000)
    expect(parseDuration('30s', '--x')).toBe(30_000)
    expect(parseDuration('10m', '--x')).toBe(600_000)
    expect(parseDuration('1h', '--x')).toBe(3_600_000)
    expect(parseDuration('1m30s', '--x')).toBe(90_000)
    expect(parseDuration('1d', '--x')).toBe(86_400_000)
    expect(parseDuration('1d12h', '--x')).toBe(129_600_000)
    expect(parseDuration('1.5s', '--x')).toBe(1500)
    expect(parseDuration('1500', '--x')).toBe(1500)
    expect(parseDuration('0', '--settle', { allowZero: true })).toBe(0)
  })

  it('rejects anything else, naming the flag and the value', () => {
    for (const bad of ['', 'soon', '10 m', '-1s', '1w', 'd', '1s2', 'ms', '5mm']) {
      expect(() => parseDuration(bad, '--for')).toThrow(`--for must be a positive duration like 250ms, 1s, 30s, 10m, 1h or 1d (a plain number is milliseconds), got ${JSON.stringify(bad)}`)
    }
    expect(() => parseDuration('0s', '--interval')).toThrow(/--interval must be a positive duration/)
  })

  it('formats spans for people', () => {
    expect(formatDuration(192_000)).toBe('3m12s')
    expect(formatDuration(250)).toBe('250ms')
    expect(formatDuration(3_720_000)).toBe('1h2m')
    expect(formatDuration(600_000)).toBe('10m')
  })
})

describe('kysely-memcache status', () => {
  it('shows each node, and that no monitor runs when the flag is absent', async () => {
    const namespace = freshNamespace()
    const { code, stdout, stderr } = await run(['status', '--servers', servers, '--namespace', namespace])
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    expect(stdout).toContain(`namespace "${namespace}": 2 of 2 nodes up`)
    for (const node of memcached.nodes) expect(stdout).toMatch(new RegExp(`^  ${node.address.replaceAll('.', '\\.')}  up +\\d+\\.\\dms, \\d+ items`, 'm'))
    expect(stdout).toContain('no monitor running (flag absent or expired)')
    expect(stdout).toContain('hit ratio: unknown (no monitor)')
    expect(stdout).toContain('override:  none')
  })

  it('shows the mode a monitor publishes, and a node that is down', async () => {
    const namespace = freshNamespace()
    const dead = '127.0.0.1:1'
    const monitor = startMonitor({ servers: [...memcached.servers, dead], namespace, intervalMs: 200, settleMs: 1000, log: () => {} })
    monitors.push(monitor)
    await monitor.ready
    const { code, stdout } = await run(['status', '--servers', `${servers},${dead}`, '--namespace', namespace])
    expect(code).toBe(0)
    expect(stdout).toContain(`namespace "${namespace}": 2 of 3 nodes up`)
    expect(stdout).toMatch(/^  127\.0\.0\.1:1 +down  refused: connect ECONNREFUSED 127\.0\.0\.1:1$/m)
    expect(stdout).toMatch(/^mode: +degraded since \d{4}-\d\d-\d\dT[\d:.]+Z \(for \d+(ms|s)\)$/m)
    expect(stdout).toContain(`reason:    node ${dead} down (refused)`)
    expect(stdout).toMatch(/^set by: +monitor .+:\d+, published \d+ms ago$/m)
    expect(stdout).toContain(`down:      ${dead} (per the monitor)`)

    const json = await run(['status', '--servers', `${servers},${dead}`, '--namespace', namespace, '--json'])
    const report = JSON.parse(json.stdout) as StatusReport
    expect(report).toMatchObject({
      namespace,
      monitor: true,
      state: { mode: 'degraded', down: [dead], reason: `node ${dead} down (refused)` },
      override: null,
      hitRatio: null,
    })
    expect(report.nodes.map((node) => [node.address, node.up])).toEqual([
      [memcached.servers[0], true],
      [memcached.servers[1], true],
      [dead, false],
    ])
  })
})

describe('kysely-memcache mode', () => {
  it('forces a mode for a while, shows it in status, and gives it back with auto', async () => {
    const namespace = freshNamespace()
    const forced = await run(['mode', 'degraded', '--for', '10m', '--servers', servers, '--namespace', namespace])
    expect(forced.code).toBe(0)
    expect(forced.stdout).toMatch(
      new RegExp(`^kysely-memcache: mode degraded forced for namespace "${namespace}" until \\S+Z \\(for 10m\\) on all 2 nodes, set by cli .+\\n$`),
    )
    const override = await readModeOverride(reader(), namespace)
    expect(override).toMatchObject({ mode: 'degraded', setBy: expect.stringMatching(/^cli /) })
    expect(override!.until - Date.now()).toBeGreaterThan(590_000)

    const status = await run(['status', '--servers', servers, '--namespace', namespace])
    expect(status.stdout).toContain('mode:      degraded, forced by the operator override (no monitor running)')
    expect(status.stdout).not.toContain('each process goes by its own view')
    expect(status.stdout).toMatch(/^override: +degraded until \S+Z \((9m5\d|10m)s? left\), set by cli .+$/m)
    const json = JSON.parse((await run(['status', '--servers', servers, '--namespace', namespace, '--json'])).stdout) as StatusReport
    expect(json.override).toEqual(override)

    const auto = await run(['mode', 'auto', '--servers', servers, '--namespace', namespace])
    expect(auto.code).toBe(0)
    expect(auto.stdout).toContain(`override removed for namespace "${namespace}" on all 2 nodes`)
    expect(await readModeOverride(reader(), namespace)).toBeUndefined()
    expect((await run(['status', '--servers', servers, '--namespace', namespace])).stdout).toContain('override:  none')
  })

  it('writes to the nodes that answer and says which did not', async () => {
    const namespace = freshNamespace()
    const result = await run(['mode', 'normal', '--for', '1m', '--servers', `${servers},127.0.0.1:1`, '--namespace', namespace])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('on 2 of 3 nodes (unreachable: 127.0.0.1:1 refused)')
    const one = await run(['mode', 'normal', '--for', '1d', '--servers', memcached.servers[0]!, '--namespace', namespace])
    expect(one.code).toBe(0)
    expect(one.stdout).toMatch(/ \(for 1d\) on its one node, set by /)
    const none = await run(['mode', 'normal', '--for', '1m', '--servers', '127.0.0.1:1'])
    expect(none).toMatchObject({ code: 1, stdout: '', stderr: 'kysely-memcache: no memcached node answered (127.0.0.1:1 refused); nothing was changed\n' })
  })
})

describe('kysely-memcache monitor', () => {
  it('runs until its signal, publishing the state, then stops cleanly', async () => {
    const namespace = freshNamespace()
    const controller = new AbortController()
    const store = reader()
    const running = run(['monitor', '--servers', servers, '--namespace', namespace, '--interval', '200ms', '--settle', '1s'], controller.signal)
    const state = await waitFor('the flag', 2000, () => readTierState(store, namespace))
    expect(state).toMatchObject({ mode: 'normal', down: [] })
    controller.abort()
    const { code, stdout, stderr } = await running
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    expect(stdout).toMatch(/^\S+Z kysely-memcache monitor: started for 2 nodes .* every 200ms, settle 1s$/m)
    expect(stdout).toMatch(/^\S+Z kysely-memcache monitor: stopped; the published state expires within 3s$/m)
  })
})

describe('kysely-memcache export and warmup', () => {
  let database: TestDatabase
  let directory: string
  const clients: Client[] = []

  beforeAll(async () => {
    database = await openPostgres()
    directory = await mkdtemp(join(tmpdir(), 'kmc-cli-'))
    const setup = createClient(database, {})
    await createSchema(setup.db)
    await setup.db
      .insertInto('person')
      .values(Array.from({ length: 12 }, (_, i) => ({ first_name: `person ${i}` })))
      .execute()
    await closeClient(setup)
  })

  afterAll(async () => {
    await Promise.all(clients.map(closeClient))
    await database?.close()
    if (directory !== undefined) await rm(directory, { recursive: true, force: true })
  })

  function client(namespace: string): Client {
    const made = createClient(database, { servers: memcached.servers, namespace })
    clients.push(made)
    return made
  }

  /** The test database for the CLI: unqualified names resolve to this file's schema. */
  function databaseUrl(): string {
    const url = new URL(DATABASE_URL)
    url.searchParams.set('options', `-c search_path=${database.schema}`)
    return url.toString()
  }

  const byId = (c: Client, id: number) => c.db.selectFrom('person').select(['id', 'first_name']).where('id', '=', id).cached()

  /** 12 cached queries, pushed to the farm-wide statistics. */
  async function traffic(namespace: string): Promise<Client> {
    const farm = client(namespace)
    for (let id = 1; id <= 12; id++) await byId(farm, id).execute()
    await farm.cache.exportWarmupManifest()
    return farm
  }

  it('exports the farm-wide statistics, and warms a flushed memcached from them: then every query is a hit', async () => {
    const namespace = freshNamespace()
    await traffic(namespace)
    const file = join(directory, `${namespace}.json`)
    const exported = await run(['export', '--servers', servers, '--namespace', namespace, '--out', file])
    expect({ code: exported.code, stderr: exported.stderr }).toEqual({ code: 0, stderr: '' })
    expect(exported.stdout).toMatch(new RegExp(`^kysely-memcache: exported 12 entries of namespace "${namespace}" to ${file.replaceAll('.', '\\.')} \\(statistics last merged \\d+ms ago\\)\\n$`))
    const manifest = parseManifest(await readFile(file, 'utf8'))
    expect(manifest).toMatchObject({ version: 1, namespace })
    expect(manifest.entries).toHaveLength(12)
    // To stdout: the manifest alone; the count on stderr.
    const piped = await run(['export', '--servers', servers, '--namespace', namespace, '--limit', '5'])
    expect(piped.code).toBe(0)
    expect(parseManifest(piped.stdout).entries).toHaveLength(5)
    expect(piped.stderr).toMatch(/^kysely-memcache: exported 5 entries of namespace ".*" \(statistics last merged \d+ms ago\)\n$/)

    await Promise.all(memcached.nodes.map((node) => node.flush()))
    const warmed = await run(['warmup', '--from', file, '--database-url', databaseUrl(), '--servers', servers, '--concurrency', '3'])
    expect({ code: warmed.code, stderr: warmed.stderr }).toEqual({ code: 0, stderr: '' })
    const lines = warmed.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(
      new RegExp(`^kysely-memcache: warming 12 entries of namespace "${namespace}" from .*\\.json \\(made \\d+(ms|s) ago\\) into ${servers.replaceAll('.', '\\.').replace(',', ', ')}, 3 at a time, from postgres://`),
    )
    // Plain lines at each tenth (12 entries: every 2), then the summary.
    expect(lines.slice(1, -1)).toEqual([2, 4, 6, 8, 10, 12].map((n) => expect.stringMatching(new RegExp(`^${n}/12 done: ${n} warmed, 0 skipped, 0 failed \\(\\d+\\.\\ds\\)$`))))
    expect(lines.at(-1)).toMatch(/^kysely-memcache: 12 warmed, 0 skipped, 0 failed of 12 entries in \d+\.\ds \(\d+\.\d entries\/s\)$/)

    const fresh = client(namespace)
    fresh.executions.reset()
    for (let id = 1; id <= 12; id++) expect(await byId(fresh, id).execute()).toEqual([{ id, first_name: `person ${id - 1}` }])
    expect(fresh.executions.count()).toBe(0)
    expect(fresh.cache.stats().hits).toBe(12)
  })

  it('draws a progress bar on a terminal, and exits 1 listing the entries that failed', async () => {
    const namespace = freshNamespace()
    const manifest: WarmupManifest = {
      version: 1,
      namespace,
      createdAt: new Date().toISOString(),
      entries: [
        { key: `${namespace}:q:a`, sql: 'select count(*) as n from person', parameters: [], tables: [`${database.schema}.person`], tags: [], ttl: 60, score: 2 },
        { key: `${namespace}:q:b`, sql: 'select * from no_such_table', parameters: [], tables: [], tags: [], ttl: 60, score: 1 },
      ],
    }
    const file = join(directory, `${namespace}.json`)
    await writeFile(file, serializeManifest(manifest))
    const result = await run(['warmup', '--from', file, '--database-url', databaseUrl(), '--servers', servers], undefined, true)
    expect(result.code).toBe(1)
    expect(result.stdout).toMatch(/warming \[[█░]+\] 2\/2 \| 1 warmed, 0 skipped, 1 failed/)
    expect(result.stdout).toMatch(/^kysely-memcache: 1 warmed, 0 skipped, 1 failed of 2 entries in \d+\.\ds/m)
    expect(result.stdout).toContain(`  failed ${namespace}:q:b: relation "no_such_table" does not exist\n    select * from no_such_table\n`)
  })

  it('exits 2 on an invalid manifest, with the ManifestError message and the field at fault', async () => {
    const file = join(directory, 'bad.json')
    const bad = { version: 1, namespace: 'shop', createdAt: new Date().toISOString(), entries: [{ key: 'shop:q:x', sql: 'delete from person', parameters: [], tables: [], tags: [], ttl: 60, score: 1 }] }
    await writeFile(file, JSON.stringify(bad))
    const args = ['--database-url', databaseUrl(), '--servers', servers]
    const deleting = await run(['warmup', '--from', file, ...args])
    expect(deleting).toEqual({
      code: 2,
      stdout: '',
      stderr: `kysely-memcache: ${file}: entries[0].sql must be a single read-only SELECT statement, got "delete from person" (at entries[0].sql)\n`,
    })
    await writeFile(file, '{"version": 1,')
    const truncated = await run(['warmup', '--from', file, ...args])
    expect(truncated.code).toBe(2)
    expect(truncated.stderr).toMatch(new RegExp(`^kysely-memcache: ${file.replaceAll('.', '\\.')}: manifest is not valid JSON: `))
    await writeFile(file, JSON.stringify({ ...bad, version: 2 }))
    expect((await run(['warmup', '--from', file, ...args])).stderr).toContain('manifest version 2 is not supported; this version of kysely-memcache reads version 1 (at version)')
  })

  it("refuses a --namespace other than the manifest's", async () => {
    const file = join(directory, 'shop.json')
    await writeFile(file, serializeManifest({ version: 1, namespace: 'shop', createdAt: new Date().toISOString(), entries: [] }))
    const result = await run(['warmup', '--from', file, '--database-url', databaseUrl(), '--servers', servers, '--namespace', 'blog'])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^kysely-memcache: --namespace "blog" does not match the namespace of .*shop\.json \("shop"\); omit --namespace to use the manifest's$/m)
  })

  it('exits 1 and writes nothing when there are no farm-wide statistics', async () => {
    const namespace = freshNamespace()
    const file = join(directory, `${namespace}.json`)
    const result = await run(['export', '--servers', servers, '--namespace', namespace, '--out', file])
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(
      `kysely-memcache: no farm-wide statistics for namespace "${namespace}" (key ${namespace}:hot); processes merge theirs every 10s when they cache through memcached with statistics on; ${file} was left as it was\n`,
    )
    expect(existsSync(file)).toBe(false)
    const none = await run(['export', '--servers', '127.0.0.1:1'])
    expect(none).toMatchObject({ code: 1, stderr: 'kysely-memcache: no memcached node answered (127.0.0.1:1 refused); nothing was exported\n' })
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
    await publish(reader(), tierStateKey(namespace), state, 30)
    const text = await run(['status', '--servers', servers, '--namespace', namespace])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^warm-up: {3}warming 127\.0\.0\.1:11311: 12\/50 since 3s$/m)
    expect(text.stdout).toContain('reason:    node 127.0.0.1:11311 down (warming)')
    const json = JSON.parse((await run(['status', '--servers', servers, '--namespace', namespace, '--json'])).stdout) as StatusReport
    expect(json.warmup).toEqual(state.warmup)
    expect(json.state?.warmup).toEqual(state.warmup)
    // No warm-up running: no line, and null in JSON.
    const quiet = freshNamespace()
    expect((await run(['status', '--servers', servers, '--namespace', quiet])).stdout).not.toContain('warm-up:')
    expect((JSON.parse((await run(['status', '--servers', servers, '--namespace', quiet, '--json'])).stdout) as StatusReport).warmup).toBeNull()
  })

  it('runs the monitor with --database-url and --manifest: it saves the manifest from the farm-wide statistics', async () => {
    const namespace = freshNamespace()
    await traffic(namespace)
    const file = join(directory, `${namespace}-monitor.json`)
    const controller = new AbortController()
    const running = run(
      ['monitor', '--servers', servers, '--namespace', namespace, '--interval', '200ms', '--database-url', 'postgres://app:secret@db.internal/app', '--manifest', file, '--manifest-every', '200ms'],
      controller.signal,
    )
    await waitFor('the manifest file', 3000, () => (existsSync(file) ? true : undefined))
    controller.abort()
    const { code, stdout } = await running
    expect(code).toBe(0)
    expect(parseManifest(await readFile(file, 'utf8')).entries).toHaveLength(12)
    expect(stdout).toMatch(/monitor: returning nodes are warmed from postgres:\/\/app:\*\*\*@db\.internal\/app before they are listed up \(concurrency 4, at most 1m each\); manifest kept in .*, rebuilt every 200ms$/m)
    expect(stdout).not.toContain('secret')
    expect(stdout).toMatch(/monitor: warm-up manifest 12 entries from the farm-wide statistics, saved to /)
  })
})

describe('bad input', () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ['an unknown command', () => ['frobnicate'], /^kysely-memcache: unknown command "frobnicate"; expected monitor, mode, status, export or warmup$/m],
    ['a flag before the command', () => ['--servers', servers], /^kysely-memcache: expected a command before "--servers": monitor, mode, status, export or warmup$/m],
    ['no --servers', () => ['status'], /^kysely-memcache: --servers is required, e.g. --servers 10\.0\.0\.1:11211,10\.0\.0\.2:11211$/m],
    ['--servers without a value', () => ['status', '--servers'], /^kysely-memcache: option '--servers <value>' argument missing$/m],
    ['a malformed server', () => ['status', '--servers', `${servers},nohost`], /^kysely-memcache: --servers\[2\] must be "host:port", got "nohost" \(in --servers ".*,nohost"\)$/m],
    ['a repeated server', () => ['monitor', '--servers', 'a:1,a:1'], /--servers\[1\] repeats --servers\[0\]/],
    ['a port out of range', () => ['status', '--servers', 'a:70000'], /--servers\[0\] port must be an integer from 1 to 65535, got "a:70000"/],
    ['a bad namespace', () => ['status', '--servers', servers, '--namespace', 'no spaces'], /^kysely-memcache: --namespace must be .*, got "no spaces"$/m],
    ['an unknown flag', () => ['status', '--servers', servers, '--bogus'], /^kysely-memcache: unknown option '--bogus'$/m],
    ['a flag of another command', () => ['status', '--servers', servers, '--for', '1m'], /^kysely-memcache: unknown option '--for'$/m],
    ['a bad --interval', () => ['monitor', '--servers', servers, '--interval', 'fast'], /^kysely-memcache: --interval must be a positive duration like 250ms, .*, got "fast"$/m],
    ['a zero --probe-timeout', () => ['monitor', '--servers', servers, '--probe-timeout', '0ms'], /--probe-timeout must be a positive duration .*got "0ms"/],
    ['a bad --settle', () => ['monitor', '--servers', servers, '--settle', 'later'], /--settle must be a duration .*got "later"/],
    ['mode without --for', () => ['mode', 'degraded', '--servers', servers], /^kysely-memcache: mode degraded needs --for, e.g. --for 10m$/m],
    ['a bad --for', () => ['mode', 'normal', '--for', '10 minutes', '--servers', servers], /--for must be a positive duration .*got "10 minutes"/],
    ['a --for over 30 days', () => ['mode', 'normal', '--for', '31d', '--servers', servers], /^kysely-memcache: --for must be at most 30d, got "31d"$/m],
    ['a negative --timeout', () => ['status', '--servers', servers, '--timeout', '-1s'], /^kysely-memcache: --timeout must be a positive duration like 250ms, .*, got "-1s"$/m],
    ['a repeated --servers', () => ['status', '--servers', servers, '--servers', '127.0.0.1:1'], /^kysely-memcache: --servers was given 2 times \(".*", "127\.0\.0\.1:1"\); give it once$/m],
    ['a repeated --json', () => ['status', '--servers', servers, '--json', '--json'], /^kysely-memcache: --json was given 2 times; give it once$/m],
    ['--for with auto', () => ['mode', 'auto', '--for', '1m', '--servers', servers], /--for does not apply to mode auto/],
    ['an unknown mode', () => ['mode', 'sideways', '--for', '1m', '--servers', servers], /^kysely-memcache: mode must be degraded, normal or auto, got "sideways"$/m],
    ['no mode', () => ['mode', '--servers', servers], /^kysely-memcache: mode needs one of degraded, normal or auto$/m],
    ['a stray argument', () => ['status', 'now', '--servers', servers], /^kysely-memcache: status takes no arguments, got "now"$/m],
    ['a bad --warmup-concurrency', () => ['monitor', '--servers', servers, '--database-url', 'postgres://x', '--warmup-concurrency', '0'], /^kysely-memcache: --warmup-concurrency must be a positive integer, got "0"$/m],
    ['a bad --warmup-max', () => ['monitor', '--servers', servers, '--database-url', 'postgres://x', '--warmup-max', 'long'], /--warmup-max must be a positive duration .*got "long"/],
    ['--warmup-max without --database-url', () => ['monitor', '--servers', servers, '--manifest', 'hot.json', '--warmup-max', '1m'], /^kysely-memcache: --warmup-max needs --database-url: without it returning nodes are not warmed$/m],
    ['--manifest-every alone', () => ['monitor', '--servers', servers, '--manifest-every', '1m'], /^kysely-memcache: --manifest-every needs --database-url or --manifest/m],
    ['a --manifest in no directory', () => ['monitor', '--servers', servers, '--manifest', '/no/such/dir/hot.json'], /^kysely-memcache: --manifest must be in an existing directory, got "\/no\/such\/dir\/hot\.json"/m],
    ['a bad --limit', () => ['export', '--servers', servers, '--limit', 'all'], /^kysely-memcache: --limit must be a positive integer, got "all"$/m],
    ['export with an argument', () => ['export', 'hot.json', '--servers', servers], /^kysely-memcache: export takes no arguments, got "hot\.json"$/m],
    ['warmup without --from', () => ['warmup', '--servers', servers, '--database-url', 'postgres://x'], /^kysely-memcache: --from is required/m],
    ['warmup without --database-url', () => ['warmup', '--servers', servers, '--from', 'hot.json'], /^kysely-memcache: --database-url is required/m],
    ['warmup without --servers', () => ['warmup', '--from', 'hot.json', '--database-url', 'postgres://x'], /^kysely-memcache: --servers is required/m],
    ['a bad --concurrency', () => ['warmup', '--servers', servers, '--from', 'hot.json', '--database-url', 'postgres://x', '--concurrency', '1.5'], /^kysely-memcache: --concurrency must be a positive integer, got "1\.5"$/m],
    ['a missing --from file', () => ['warmup', '--servers', servers, '--from', '/no/such/hot.json', '--database-url', 'postgres://x'], /^kysely-memcache: --from "\/no\/such\/hot\.json" cannot be read: ENOENT/m],
  ]
  it.each(cases)('exits 2 on %s, with a message naming it', async (_, argv, message) => {
    const { code, stdout, stderr } = await run(argv())
    expect(code).toBe(2)
    expect(stdout).toBe('')
    expect(stderr).toMatch(message)
    expect(stderr).toMatch(/^Run "kysely-memcache (\w+ )?--help" for usage\.$/m)
  })

  it('prints the usage on stderr and exits 2 with no command', async () => {
    const { code, stdout, stderr } = await run([])
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' })
    expect(stderr).toContain('Usage: kysely-memcache <command> [options]')
  })
})

describe('--help', () => {
  it.each([
    [['--help'], 'Usage: kysely-memcache <command> [options]'],
    [['-h'], 'Usage: kysely-memcache <command> [options]'],
    [['help', 'status'], 'Usage: kysely-memcache status --servers <list> [options]'],
    [['monitor', '--help'], 'Usage: kysely-memcache monitor --servers <list> [options]'],
    [['mode', '--help'], 'Usage: kysely-memcache mode <degraded|normal> --for <duration> --servers <list> [options]'],
    [['mode', 'degraded', '-h'], 'Usage: kysely-memcache mode'],
    [['status', '--help'], 'Usage: kysely-memcache status --servers <list> [options]'],
    [['export', '--help'], 'Usage: kysely-memcache export --servers <list> [options]'],
    [['help', 'warmup'], 'Usage: kysely-memcache warmup --from <file> --database-url <url> --servers <list> [options]'],
    [['warmup', '-h'], 'Usage: kysely-memcache warmup --from <file>'],
    [['monitor', '--help'], '--database-url <url>'],
  ])('%j prints the usage and exits 0', async (argv, usage) => {
    const { code, stdout, stderr } = await run(argv)
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    expect(stdout).toContain(usage)
  })
})

describe('the bin', () => {
  it('runs status through node --import tsx src/cli/main.ts', async () => {
    const { code, stdout, stderr } = await spawnCli(['status', '--servers', servers])
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    for (const node of memcached.nodes) expect(stdout).toContain(`${node.address}  up`)
    expect(stdout).toContain('no monitor running (flag absent or expired)')
  })

  it('sets exit code 2 on bad input', async () => {
    const { code, stderr } = await spawnCli(['status', '--servers', 'nohost'])
    expect(code).toBe(2)
    expect(stderr).toContain('--servers[0] must be "host:port", got "nohost"')
  })

  it('runs the monitor until SIGTERM and exits 0', async () => {
    const namespace = freshNamespace()
    const store = reader()
    const result = await spawnCli(['monitor', '--servers', servers, '--namespace', namespace, '--interval', '200ms'], async (child) => {
      await waitFor('the flag', 10_000, () => readTierState(store, namespace))
      child.kill('SIGTERM')
    })
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/monitor: started for 2 nodes/)
    expect(result.stdout).toMatch(/monitor: stopped; the published state expires within 3s\n$/)
  })
})
