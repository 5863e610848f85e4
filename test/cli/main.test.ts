import { describe, expect, it } from 'vitest'
import { readTierState } from '../../src/tier/tier-state.js'
import { waitFor } from '../harness/wait.js'
import { freshNamespace, useMemcached } from './fixtures.js'
import { run, spawnCli } from './run-cli.js'

const memcached = useMemcached()

describe('bad input', () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ['an unknown command', () => ['frobnicate'], /^kysely-memcache: unknown command "frobnicate"; expected monitor, mode, status, export or warmup$/m],
    ['a flag before the command', () => ['--servers', memcached.servers], /^kysely-memcache: expected a command before "--servers": monitor, mode, status, export or warmup$/m],
    ['no --servers', () => ['status'], /^kysely-memcache: --servers is required, e.g. --servers 10\.0\.0\.1:11211,10\.0\.0\.2:11211$/m],
    ['--servers without a value', () => ['status', '--servers'], /^kysely-memcache: option '--servers <value>' argument missing$/m],
    ['a malformed server', () => ['status', '--servers', `${memcached.servers},nohost`], /^kysely-memcache: --servers\[2\] must be "host:port", got "nohost" \(in --servers ".*,nohost"\)$/m],
    ['a repeated server', () => ['monitor', '--servers', 'a:1,a:1'], /--servers\[1\] repeats --servers\[0\]/],
    ['a port out of range', () => ['status', '--servers', 'a:70000'], /--servers\[0\] port must be an integer from 1 to 65535, got "a:70000"/],
    ['a bad namespace', () => ['status', '--servers', memcached.servers, '--namespace', 'no spaces'], /^kysely-memcache: --namespace must be .*, got "no spaces"$/m],
    ['an unknown flag', () => ['status', '--servers', memcached.servers, '--bogus'], /^kysely-memcache: unknown option '--bogus'$/m],
    ['a flag of another command', () => ['status', '--servers', memcached.servers, '--for', '1m'], /^kysely-memcache: unknown option '--for'$/m],
    ['a bad --interval', () => ['monitor', '--servers', memcached.servers, '--interval', 'fast'], /^kysely-memcache: --interval must be a positive duration like 250ms, .*, got "fast"$/m],
    ['a zero --probe-timeout', () => ['monitor', '--servers', memcached.servers, '--probe-timeout', '0ms'], /--probe-timeout must be a positive duration .*got "0ms"/],
    ['a bad --settle', () => ['monitor', '--servers', memcached.servers, '--settle', 'later'], /--settle must be a duration .*got "later"/],
    ['mode without --for', () => ['mode', 'degraded', '--servers', memcached.servers], /^kysely-memcache: mode degraded needs --for, e.g. --for 10m$/m],
    ['a bad --for', () => ['mode', 'normal', '--for', '10 minutes', '--servers', memcached.servers], /--for must be a positive duration .*got "10 minutes"/],
    ['a --for over 30 days', () => ['mode', 'normal', '--for', '31d', '--servers', memcached.servers], /^kysely-memcache: --for must be at most 30d, got "31d"$/m],
    ['a negative --timeout', () => ['status', '--servers', memcached.servers, '--timeout', '-1s'], /^kysely-memcache: --timeout must be a positive duration like 250ms, .*, got "-1s"$/m],
    ['a repeated --servers', () => ['status', '--servers', memcached.servers, '--servers', '127.0.0.1:1'], /^kysely-memcache: --servers was given 2 times \(".*", "127\.0\.0\.1:1"\); give it once$/m],
    ['a repeated --json', () => ['status', '--servers', memcached.servers, '--json', '--json'], /^kysely-memcache: --json was given 2 times; give it once$/m],
    ['--for with auto', () => ['mode', 'auto', '--for', '1m', '--servers', memcached.servers], /--for does not apply to mode auto/],
    ['an unknown mode', () => ['mode', 'sideways', '--for', '1m', '--servers', memcached.servers], /^kysely-memcache: mode must be degraded, normal or auto, got "sideways"$/m],
    ['no mode', () => ['mode', '--servers', memcached.servers], /^kysely-memcache: mode needs one of degraded, normal or auto$/m],
    ['a stray argument', () => ['status', 'now', '--servers', memcached.servers], /^kysely-memcache: status takes no arguments, got "now"$/m],
    ['a bad --warmup-concurrency', () => ['monitor', '--servers', memcached.servers, '--database-url', 'postgres://x', '--warmup-concurrency', '0'], /^kysely-memcache: --warmup-concurrency must be a positive integer, got "0"$/m],
    ['a bad --warmup-max', () => ['monitor', '--servers', memcached.servers, '--database-url', 'postgres://x', '--warmup-max', 'long'], /--warmup-max must be a positive duration .*got "long"/],
    ['--warmup-max without --database-url', () => ['monitor', '--servers', memcached.servers, '--manifest', 'hot.json', '--warmup-max', '1m'], /^kysely-memcache: --warmup-max needs --database-url: without it returning nodes are not warmed$/m],
    ['--manifest-every alone', () => ['monitor', '--servers', memcached.servers, '--manifest-every', '1m'], /^kysely-memcache: --manifest-every needs --database-url or --manifest/m],
    ['a --manifest in no directory', () => ['monitor', '--servers', memcached.servers, '--manifest', '/no/such/dir/hot.json'], /^kysely-memcache: --manifest must be in an existing directory, got "\/no\/such\/dir\/hot\.json"/m],
    ['a bad --limit', () => ['export', '--servers', memcached.servers, '--limit', 'all'], /^kysely-memcache: --limit must be a positive integer, got "all"$/m],
    ['export with an argument', () => ['export', 'hot.json', '--servers', memcached.servers], /^kysely-memcache: export takes no arguments, got "hot\.json"$/m],
    ['warmup without --from', () => ['warmup', '--servers', memcached.servers, '--database-url', 'postgres://x'], /^kysely-memcache: --from is required/m],
    ['warmup without --database-url', () => ['warmup', '--servers', memcached.servers, '--from', 'hot.json'], /^kysely-memcache: --database-url is required/m],
    ['warmup without --servers', () => ['warmup', '--from', 'hot.json', '--database-url', 'postgres://x'], /^kysely-memcache: --servers is required/m],
    ['a bad --concurrency', () => ['warmup', '--servers', memcached.servers, '--from', 'hot.json', '--database-url', 'postgres://x', '--concurrency', '1.5'], /^kysely-memcache: --concurrency must be a positive integer, got "1\.5"$/m],
    ['a missing --from file', () => ['warmup', '--servers', memcached.servers, '--from', '/no/such/hot.json', '--database-url', 'postgres://x'], /^kysely-memcache: --from "\/no\/such\/hot\.json" cannot be read: ENOENT/m],
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
    const { code, stdout, stderr } = await spawnCli(['status', '--servers', memcached.servers])
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    for (const node of memcached.cluster.nodes) expect(stdout).toContain(`${node.address}  up`)
    expect(stdout).toContain('no monitor running (flag absent or expired)')
  })

  it('sets exit code 2 on bad input', async () => {
    const { code, stderr } = await spawnCli(['status', '--servers', 'nohost'])
    expect(code).toBe(2)
    expect(stderr).toContain('--servers[0] must be "host:port", got "nohost"')
  })

  it('runs the monitor until SIGTERM and exits 0', async () => {
    const namespace = freshNamespace()
    const store = memcached.reader()
    const result = await spawnCli(['monitor', '--servers', memcached.servers, '--namespace', namespace, '--interval', '200ms'], async (child) => {
      await waitFor('the flag', 10_000, () => readTierState(store, namespace))
      child.kill('SIGTERM')
    })
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/monitor: started for 2 nodes/)
    expect(result.stdout).toMatch(/monitor: stopped; the published state expires within 3s\n$/)
  })
})
