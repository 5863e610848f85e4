import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../src/cli.js'
import type { CliIo, StatusReport } from '../src/cli.js'
import { formatDuration, parseDuration } from '../src/duration.js'
import { startMonitor } from '../src/monitor.js'
import type { Monitor } from '../src/monitor.js'
import { MemcachedStore } from '../src/store/memcached-store.js'
import { readModeOverride, readTierState } from '../src/tier-state.js'
import { startMemcached } from './harness/memcached.js'
import type { MemcachedCluster } from './harness/memcached.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

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

async function run(argv: string[], signal?: AbortSignal): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    ...(signal === undefined ? {} : { signal }),
  }
  const code = await main(argv, io)
  return { code, stdout, stderr }
}

/** Runs the real bin the way a shell would, through tsx. */
function spawnCli(argv: string[], whileRunning?: (child: ReturnType<typeof spawn>, output: () => string) => Promise<void>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
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

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(20)
  }
}

describe('parseDuration', () => {
  it('reads ms, s, m, h, combinations and plain milliseconds', () => {
    expect(parseDuration('250ms', '--x')).toBe(250)
    expect(parseDuration('1s', '--x')).toBe(1000)
    expect(parseDuration('30s', '--x')).toBe(30_000)
    expect(parseDuration('10m', '--x')).toBe(600_000)
    expect(parseDuration('1h', '--x')).toBe(3_600_000)
    expect(parseDuration('1m30s', '--x')).toBe(90_000)
    expect(parseDuration('1.5s', '--x')).toBe(1500)
    expect(parseDuration('1500', '--x')).toBe(1500)
    expect(parseDuration('0', '--settle', { allowZero: true })).toBe(0)
  })

  it('rejects anything else, naming the flag and the value', () => {
    for (const bad of ['', 'soon', '10 m', '-1s', '1d', '1s2', 'ms', '5mm']) {
      expect(() => parseDuration(bad, '--for')).toThrow(`--for must be a positive duration like 250ms, 1s, 30s, 10m or 1h (a plain number is milliseconds), got ${JSON.stringify(bad)}`)
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

describe('bad input', () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ['an unknown command', () => ['frobnicate'], /^kysely-memcache: unknown command "frobnicate"; expected monitor, mode or status$/m],
    ['a flag before the command', () => ['--servers', servers], /^kysely-memcache: expected a command before "--servers": monitor, mode or status$/m],
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
    ['--for with auto', () => ['mode', 'auto', '--for', '1m', '--servers', servers], /--for does not apply to mode auto/],
    ['an unknown mode', () => ['mode', 'sideways', '--for', '1m', '--servers', servers], /^kysely-memcache: mode must be degraded, normal or auto, got "sideways"$/m],
    ['no mode', () => ['mode', '--servers', servers], /^kysely-memcache: mode needs one of degraded, normal or auto$/m],
    ['a stray argument', () => ['status', 'now', '--servers', servers], /^kysely-memcache: status takes no arguments, got "now"$/m],
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
  ])('%j prints the usage and exits 0', async (argv, usage) => {
    const { code, stdout, stderr } = await run(argv)
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    expect(stdout).toContain(usage)
  })
})

describe('the bin', () => {
  it('runs status through node --import tsx src/cli.ts', async () => {
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
