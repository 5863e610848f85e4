#!/usr/bin/env node
import { realpathSync } from 'node:fs'
import { readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { hostname, userInfo } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'
import cliProgress from 'cli-progress'
import { Kysely, PostgresDialect } from 'kysely'
import { createQueryCache } from '../cache/create-query-cache.js'
import type { QueryCache } from '../cache/create-query-cache.js'
import { formatDuration, parseDuration } from '../util/duration.js'
import { THIRTY_DAYS_SECONDS } from '../util/validate.js'
import { FarmStatistics, hotStatisticsKey } from '../statistics/farm-statistics.js'
import { validateNamespace } from '../keys.js'
import { startMonitor } from '../monitor/start-monitor.js'
import { redactUrl } from '../monitor/tier-monitor.js'
import type { Monitor, MonitorWarmupOptions } from '../monitor/start-monitor.js'
import { probeNode, readNodeStats } from '../store/memcached/node-probe.js'
import type { ProbeResult } from '../store/memcached/node-probe.js'
import { hotQueriesOf } from '../statistics/hot-query-score.js'
import { QueryStatistics } from '../statistics/query-statistics.js'
import { parseServerList } from '../store/memcached/server-address.js'
import type { ServerAddress } from '../store/memcached/server-address.js'
import { MemcachedStore } from '../store/memcached/memcached-store.js'
import { readModeOverride, readTierState, writeModeOverride } from '../tier/tier-state.js'
import type { ModeOverride, TierState } from '../tier/tier-state.js'
import { createManifest, ManifestError, parseManifest, serializeManifest } from '../warmup/manifest.js'
import type { WarmupManifest } from '../warmup/manifest.js'
import type { WarmupReport } from '../warmup/replay.js'

/** Where {@link main} writes, and what ends `monitor` (and interrupts `warmup`). */
export interface CliIo {
  /** `warmup` draws a progress bar when `isTTY` is true (then it must be a TTY stream such as `process.stdout`), plain lines otherwise. */
  readonly stdout: { write(text: string): unknown; readonly isTTY?: boolean }
  readonly stderr: { write(text: string): unknown }
  /** Ends `kysely-memcache monitor`, or stops `warmup` from starting more entries, when aborted. Default: SIGINT or SIGTERM. */
  readonly signal?: AbortSignal
}

/** Exit codes of {@link main}. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const

const NAME = 'kysely-memcache'
const DEFAULT_NAMESPACE = 'kysely'
const DEFAULT_TIMEOUT_MS = 500
const DEFAULT_EXPORT_LIMIT = 500
const DEFAULT_WARMUP_CONCURRENCY = 4
/** Failures `warmup` lists one by one; the rest are counted. */
const LISTED_FAILURES = 10
const COMMANDS = ['monitor', 'mode', 'status', 'export', 'warmup'] as const
const COMMAND_LIST = 'monitor, mode, status, export or warmup'

const USAGE = `Usage: ${NAME} <command> [options]

Commands:
  monitor   probe every memcached node each interval and publish the tier's mode;
            optionally warm returning nodes and keep a warm-up manifest
  mode      force the mode (degraded | normal) for a while, or give it back (auto)
  status    show each node, the published mode, any warm-up and the farm-wide hit ratio
  export    write a warm-up manifest of the farm's most valuable queries
  warmup    replay a warm-up manifest into memcached, read-only, with progress

Run "${NAME} <command> --help" for a command's options.
`

const COMMON_HELP = `  --servers <list>      memcached nodes, comma-separated: 10.0.0.1:11211,10.0.0.2:11211 (required)
  --namespace <name>    the caches' namespace (default "${DEFAULT_NAMESPACE}")
  -h, --help            show this help`

const HELP: Readonly<Record<Command, string>> = {
  monitor: `Usage: ${NAME} monitor --servers <list> [options]

Probes every node each interval over a fresh connection; a node that fails one
probe is down and the tier is degraded at once. A node that answers again is
flushed before it counts as up. Back to normal once every node has been up for
--settle and the farm-wide hit ratio has recovered. Publishes the state to every
live node as a short-lived lease; runs until SIGINT or SIGTERM.

Options:
${COMMON_HELP}
  --interval <duration>       probe interval (default 1s)
  --settle <duration>         how long every node must be up before normal (default 30s)
  --probe-timeout <duration>  longest a probe may take (default min(250ms, interval/2))

Warm-up (see docs/warmup.md):
  --database-url <url>        PostgreSQL to replay against: a node that comes back is
                              flushed, then gets the manifest entries it owns replayed
                              (read-only) before it is listed up. Without it returning
                              nodes are listed up cold.
  --manifest <file>           keep the warm-up manifest in this file: loaded at start,
                              rewritten from the farm-wide statistics every
                              --manifest-every, so it survives restarts of the monitor
                              and of memcached. Alone, it only keeps the file.
  --manifest-every <duration> how often the manifest is rebuilt and saved (default 1m)
  --warmup-concurrency <n>    entries replayed at once (default ${DEFAULT_WARMUP_CONCURRENCY})
  --warmup-max <duration>     longest a node's warm-up may take; it is listed up then
                              anyway (default 1m)

Durations: 250ms, 1s, 30s, 10m, 1h, 1m30s; a plain number is milliseconds.
`,
  mode: `Usage: ${NAME} mode <degraded|normal> --for <duration> --servers <list> [options]
       ${NAME} mode auto --servers <list> [options]

Forces the mode of every process (and of the monitor) until the duration is
over; "auto" removes the override and the monitor decides again.

Options:
${COMMON_HELP}
  --for <duration>      how long the override lasts, e.g. 10m (required for degraded and normal)
  --timeout <duration>  longest any memcached call may take (default ${DEFAULT_TIMEOUT_MS}ms)
`,
  status: `Usage: ${NAME} status --servers <list> [options]

Probes each node and prints its state, the mode the monitor publishes (since
when, why, who set it), the warm-up of a returning node while the monitor runs
one, any operator override and the farm-wide hit ratio.

Options:
${COMMON_HELP}
  --json                print JSON instead of text
  --timeout <duration>  longest any memcached call may take (default ${DEFAULT_TIMEOUT_MS}ms)
`,
  export: `Usage: ${NAME} export --servers <list> [options]

Reads the farm-wide query statistics (the document every process merges its
own into, at <namespace>:hot) and writes a warm-up manifest of the most
valuable queries, highest score (requests x mean database time) first.

Options:
${COMMON_HELP}
  --limit <n>           entries at most (default ${DEFAULT_EXPORT_LIMIT})
  --out <file>          write the manifest there (atomically) instead of stdout
  --timeout <duration>  longest any memcached call may take (default ${DEFAULT_TIMEOUT_MS}ms)

Exits 1, writing nothing, when no node holds statistics for the namespace.
`,
  warmup: `Usage: ${NAME} warmup --from <file> --database-url <url> --servers <list> [options]

Replays a warm-up manifest into memcached, highest score first: each entry runs
in a READ ONLY transaction and is stored under the current generations, as a
miss would store it. Shows a progress bar on a terminal, plain lines otherwise,
then a summary and the entries that failed.

Options:
  --from <file>         the manifest, as written by "${NAME} export" (required)
  --database-url <url>  PostgreSQL to run the entries on (required)
  --servers <list>      memcached nodes, comma-separated: 10.0.0.1:11211,10.0.0.2:11211 (required)
  --namespace <name>    must match the manifest's namespace (default: the manifest's)
  --concurrency <n>     entries replayed at once (default ${DEFAULT_WARMUP_CONCURRENCY})
  -h, --help            show this help

Exits 0 when every entry ran, 1 when any failed or was interrupted (SIGINT,
SIGTERM), 2 on bad input (an invalid manifest names the field at fault).
`,
}

type Command = (typeof COMMANDS)[number]

const COMMON_OPTIONS = {
  servers: { type: 'string' },
  namespace: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options']

const OPTIONS = {
  monitor: {
    ...COMMON_OPTIONS,
    interval: { type: 'string' },
    settle: { type: 'string' },
    'probe-timeout': { type: 'string' },
    'database-url': { type: 'string' },
    manifest: { type: 'string' },
    'manifest-every': { type: 'string' },
    'warmup-concurrency': { type: 'string' },
    'warmup-max': { type: 'string' },
  },
  mode: { ...COMMON_OPTIONS, for: { type: 'string' }, timeout: { type: 'string' } },
  status: { ...COMMON_OPTIONS, json: { type: 'boolean' }, timeout: { type: 'string' } },
  export: { ...COMMON_OPTIONS, limit: { type: 'string' }, out: { type: 'string' }, timeout: { type: 'string' } },
  warmup: { ...COMMON_OPTIONS, from: { type: 'string' }, 'database-url': { type: 'string' }, concurrency: { type: 'string' } },
} as const satisfies Record<Command, ParseArgsConfig['options']>

/** Bad command-line input: exit code 2. */
class UsageError extends Error {
  override readonly name = 'UsageError'
  constructor(
    message: string,
    readonly command?: Command,
  ) {
    super(message)
  }
}

/**
 * The `kysely-memcache` command line, callable without spawning a process.
 *
 * @example
 * // What the bin does:
 * process.exitCode = await main(process.argv.slice(2))
 * // In a test:
 * let out = ''
 * const code = await main(['status', '--servers', '127.0.0.1:11211'], { stdout: { write: (t) => (out += t) }, stderr: process.stderr })
 *
 * @param argv Arguments after the program name.
 * @returns The exit code: 0 done, 1 memcached could not be written or read (or a warm-up entry failed), 2 bad input.
 */
export async function main(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let command: Command | undefined
  try {
    const [first, ...rest] = argv
    if (first === undefined) {
      io.stderr.write(USAGE)
      return EXIT.usage
    }
    if (first === '--help' || first === '-h' || first === 'help') {
      const topic = rest[0]
      io.stdout.write(topic !== undefined && isCommand(topic) ? HELP[topic] : USAGE)
      return EXIT.ok
    }
    if (!isCommand(first)) {
      throw new UsageError(
        first.startsWith('-')
          ? `expected a command before ${JSON.stringify(first)}: ${COMMAND_LIST}`
          : `unknown command ${JSON.stringify(first)}; expected ${COMMAND_LIST}`,
      )
    }
    command = first
    switch (command) {
      case 'monitor':
        return await runMonitor(rest, io)
      case 'mode':
        return await runMode(rest, io)
      case 'status':
        return await runStatus(rest, io)
      case 'export':
        return await runExport(rest, io)
      case 'warmup':
        return await runWarmupCommand(rest, io)
    }
  } catch (error) {
    if (error instanceof UsageError) {
      const topic = error.command ?? command
      io.stderr.write(`${NAME}: ${error.message}\nRun "${NAME} ${topic ?? ''}${topic === undefined ? '' : ' '}--help" for usage.\n`)
      return EXIT.usage
    }
    io.stderr.write(`${NAME}: ${error instanceof Error ? error.message : String(error)}\n`)
    return EXIT.failure
  }
}

async function runMonitor(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parse('monitor', argv, false)
  if (values.help === true) {
    io.stdout.write(HELP.monitor)
    return EXIT.ok
  }
  const { servers, namespace } = target('monitor', values)
  const intervalMs = values.interval === undefined ? 1000 : duration(values.interval, '--interval', 'monitor')
  const settleMs = values.settle === undefined ? 30_000 : duration(values.settle, '--settle', 'monitor', true)
  const probeTimeoutMs = values['probe-timeout'] === undefined ? undefined : duration(values['probe-timeout'], '--probe-timeout', 'monitor')
  const warmup = monitorWarmup(values)
  let monitor: Monitor
  try {
    monitor = startMonitor({
      servers: servers.map((server) => server.id),
      namespace,
      intervalMs,
      settleMs,
      ...(probeTimeoutMs === undefined ? {} : { probeTimeoutMs }),
      ...(warmup === undefined ? {} : { warmup }),
      log: (line) => io.stdout.write(`${line}\n`),
    })
  } catch (error) {
    // What the flags could not check themselves, e.g. a --manifest in a directory that does not exist.
    const message = (error as Error).message.replace(/^warmup\.manifestFile/, '--manifest')
    throw new UsageError(message, 'monitor')
  }
  await untilStopped(io.signal)
  await monitor.stop()
  return EXIT.ok
}

async function runMode(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('mode', argv, true)
  if (values.help === true) {
    io.stdout.write(HELP.mode)
    return EXIT.ok
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? 'mode needs one of degraded, normal or auto'
        : `mode takes one of degraded, normal or auto, got ${positionals.map((p) => JSON.stringify(p)).join(' ')}`,
      'mode',
    )
  }
  const mode = positionals[0] ?? ''
  if (mode !== 'degraded' && mode !== 'normal' && mode !== 'auto') {
    throw new UsageError(`mode must be degraded, normal or auto, got ${JSON.stringify(mode)}`, 'mode')
  }
  const { servers, namespace } = target('mode', values)
  let forMs = 0
  if (mode === 'auto') {
    if (values.for !== undefined) throw new UsageError('--for does not apply to mode auto (it removes the override now)', 'mode')
  } else {
    if (values.for === undefined) throw new UsageError(`mode ${mode} needs --for, e.g. --for 10m`, 'mode')
    forMs = duration(values.for, '--for', 'mode')
    // The override's memcached expiry is relative, which memcached caps at 30 days.
    if (forMs > THIRTY_DAYS_SECONDS * 1000) throw new UsageError(`--for must be at most 30d, got ${JSON.stringify(values.for)}`, 'mode')
  }
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : duration(values.timeout, '--timeout', 'mode')

  const probes = await Promise.all(servers.map((server) => probeNode(server, timeoutMs)))
  const unreachable = servers.filter((_, i) => probes[i]?.ok !== true)
  if (unreachable.length === servers.length) {
    io.stderr.write(`${NAME}: no memcached node answered (${describeFailures(servers, probes)}); nothing was changed\n`)
    return EXIT.failure
  }
  const store = new MemcachedStore({ servers: servers.map((server) => server.id), timeoutMs })
  try {
    // Write only where it can land: a hung node would only cost the timeout.
    store.holdDown(new Set(unreachable.map((server) => server.id)), 'probe')
    const override = await writeModeOverride(store, namespace, mode, forMs, operatorName())
    const where =
      unreachable.length === 0
        ? servers.length === 1
          ? 'on its one node'
          : `on all ${servers.length} nodes`
        : `on ${servers.length - unreachable.length} of ${servers.length} nodes (unreachable: ${describeFailures(servers, probes)})`
    if (override === undefined) {
      io.stdout.write(`${NAME}: override removed for namespace ${JSON.stringify(namespace)} ${where}; the monitor decides the mode again\n`)
    } else {
      io.stdout.write(
        `${NAME}: mode ${override.mode} forced for namespace ${JSON.stringify(namespace)} until ${iso(override.until)} (for ${formatDuration(forMs)}) ${where}, set by ${override.setBy}\n`,
      )
    }
    return EXIT.ok
  } catch (error) {
    io.stderr.write(`${NAME}: could not write the override: ${error instanceof Error ? error.message : String(error)}\n`)
    return EXIT.failure
  } finally {
    await store.close()
  }
}

/** One node in `status --json`. */
export type NodeStatus =
  | {
      address: string
      up: true
      latencyMs: number
      version: string
      items?: number
      getHits?: number
      getMisses?: number
      uptimeSeconds?: number
    }
  | { address: string; up: false; reason: string; message: string }

/** What `status --json` prints. */
export interface StatusReport {
  namespace: string
  /** When the status was taken, ms since the epoch. */
  at: number
  nodes: NodeStatus[]
  /** Whether a monitor's flag is present (a monitor published within its TTL). */
  monitor: boolean
  /** The published tier state, `null` when no monitor is running. */
  state: TierState | null
  /** The operator override in force, if any (also when no monitor runs). */
  override: ModeOverride | null
  /** Farm-wide hit ratio from the monitor's last window; `null` when unknown. */
  hitRatio: number | null
  /** The warm-up of a returning node the monitor runs now, if any (as in `state.warmup`). */
  warmup: NonNullable<TierState['warmup']> | null
}

async function runStatus(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parse('status', argv, false)
  if (values.help === true) {
    io.stdout.write(HELP.status)
    return EXIT.ok
  }
  const { servers, namespace } = target('status', values)
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : duration(values.timeout, '--timeout', 'status')
  const report = await takeStatus(servers, namespace, timeoutMs)
  io.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report))
  return EXIT.ok
}

async function takeStatus(servers: readonly ServerAddress[], namespace: string, timeoutMs: number): Promise<StatusReport> {
  const probes = await Promise.all(servers.map((server) => probeNode(server, timeoutMs)))
  const nodes = await Promise.all(
    servers.map(async (server, i): Promise<NodeStatus> => {
      const probe = probes[i] as ProbeResult
      if (!probe.ok) return { address: server.id, up: false, reason: probe.reason, message: probe.message }
      const status: Extract<NodeStatus, { up: true }> = { address: server.id, up: true, latencyMs: round1(probe.latencyMs), version: probe.version }
      try {
        const stats = await readNodeStats(server, timeoutMs)
        assignNumber(status, 'items', stats['curr_items'])
        assignNumber(status, 'getHits', stats['get_hits'])
        assignNumber(status, 'getMisses', stats['get_misses'])
        assignNumber(status, 'uptimeSeconds', stats['uptime'])
      } catch {
        // Up but no stats in time: show it up, without numbers.
      }
      return status
    }),
  )
  const at = Date.now()
  const down = new Set(nodes.filter((node) => !node.up).map((node) => node.address))
  let state: TierState | undefined
  let override: ModeOverride | undefined
  if (down.size < servers.length) {
    const store = new MemcachedStore({ servers: servers.map((server) => server.id), timeoutMs })
    try {
      store.holdDown(down, 'probe')
      ;[state, override] = await Promise.all([
        readTierState(store, namespace).catch(() => undefined),
        readModeOverride(store, namespace, at).catch(() => undefined),
      ])
    } finally {
      await store.close()
    }
  }
  return {
    namespace,
    at,
    nodes,
    monitor: state !== undefined,
    state: state ?? null,
    override: override ?? null,
    hitRatio: state?.hitRatio ?? null,
    warmup: state?.warmup ?? null,
  }
}

function formatStatus(report: StatusReport): string {
  const lines: string[] = []
  const now = report.at
  const upCount = report.nodes.filter((node) => node.up).length
  lines.push(`namespace ${JSON.stringify(report.namespace)}: ${upCount} of ${report.nodes.length} nodes up`)
  const width = Math.max(...report.nodes.map((node) => node.address.length))
  for (const node of report.nodes) {
    if (node.up) {
      const parts = [`up    ${node.latencyMs.toFixed(1)}ms`]
      if (node.items !== undefined) parts.push(`${node.items} items`)
      if (node.getHits !== undefined && node.getMisses !== undefined) parts.push(`${node.getHits} hits / ${node.getMisses} misses`)
      if (node.uptimeSeconds !== undefined) parts.push(`uptime ${formatDuration(node.uptimeSeconds * 1000)}`)
      lines.push(`  ${node.address.padEnd(width)}  ${parts.join(', ')}`)
    } else {
      lines.push(`  ${node.address.padEnd(width)}  down  ${node.reason}: ${node.message}`)
    }
  }
  const state = report.state
  const override = report.override
  if (state === null) {
    lines.push(
      override === null
        ? 'mode:      unknown: no monitor running (flag absent or expired); each process goes by its own view'
        : `mode:      ${override.mode}, forced by the operator override (no monitor running)`,
    )
  } else {
    lines.push(`mode:      ${state.mode} since ${iso(state.since)} (for ${formatDuration(Math.max(0, now - state.since))})`)
    lines.push(`reason:    ${state.reason}`)
    lines.push(`set by:    ${state.setBy}, published ${formatDuration(Math.max(0, now - state.at))} ago`)
    if (state.down.length > 0) lines.push(`down:      ${state.down.join(', ')} (per the monitor)`)
  }
  const warmup = report.warmup
  if (warmup !== null) {
    lines.push(`warm-up:   warming ${warmup.node}: ${warmup.done}/${warmup.total} since ${formatDuration(Math.max(0, now - warmup.startedAt))}`)
  }
  lines.push(
    override === null
      ? 'override:  none'
      : `override:  ${override.mode} until ${iso(override.until)} (${formatDuration(Math.max(0, override.until - now))} left), set by ${override.setBy}`,
  )
  lines.push(
    report.hitRatio !== null
      ? `hit ratio: ${report.hitRatio.toFixed(3)} (farm-wide, last 5s)`
      : state === null
        ? 'hit ratio: unknown (no monitor)'
        : 'hit ratio: unknown (no traffic reported)',
  )
  return `${lines.join('\n')}\n`
}

/** The monitor's `warmup` option from its flags; `undefined` without --database-url and --manifest. */
function monitorWarmup(values: Values): MonitorWarmupOptions | undefined {
  const databaseUrl = values['database-url']
  const manifestFile = values.manifest
  if (databaseUrl === undefined && manifestFile === undefined) {
    for (const flag of ['manifest-every', 'warmup-concurrency', 'warmup-max'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --database-url or --manifest (warm-up is off without them)`, 'monitor')
    }
    return undefined
  }
  if (databaseUrl !== undefined && databaseUrl.trim() === '') throw new UsageError('--database-url must not be empty', 'monitor')
  if (manifestFile !== undefined && manifestFile.trim() === '') throw new UsageError('--manifest must not be empty', 'monitor')
  if (databaseUrl === undefined) {
    for (const flag of ['warmup-concurrency', 'warmup-max'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --database-url: without it returning nodes are not warmed`, 'monitor')
    }
  }
  return {
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    ...(manifestFile === undefined ? {} : { manifestFile }),
    ...(values['warmup-concurrency'] === undefined ? {} : { concurrency: positiveInteger(values['warmup-concurrency'], '--warmup-concurrency', 'monitor') }),
    ...(values['warmup-max'] === undefined ? {} : { maxMs: duration(values['warmup-max'], '--warmup-max', 'monitor') }),
    ...(values['manifest-every'] === undefined ? {} : { saveEveryMs: duration(values['manifest-every'], '--manifest-every', 'monitor') }),
  }
}

async function runExport(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parse('export', argv, false)
  if (values.help === true) {
    io.stdout.write(HELP.export)
    return EXIT.ok
  }
  const { servers, namespace } = target('export', values)
  const limit = values.limit === undefined ? DEFAULT_EXPORT_LIMIT : positiveInteger(values.limit, '--limit', 'export')
  if (values.out !== undefined && values.out.trim() === '') throw new UsageError('--out must be a file path', 'export')
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : duration(values.timeout, '--timeout', 'export')

  const probes = await Promise.all(servers.map((server) => probeNode(server, timeoutMs)))
  const unreachable = servers.filter((_, i) => probes[i]?.ok !== true)
  if (unreachable.length === servers.length) {
    io.stderr.write(`${NAME}: no memcached node answered (${describeFailures(servers, probes)}); nothing was exported\n`)
    return EXIT.failure
  }
  const store = new MemcachedStore({ servers: servers.map((server) => server.id), timeoutMs })
  let manifest: WarmupManifest
  let mergedAt: number | undefined
  try {
    store.holdDown(new Set(unreachable.map((server) => server.id)), 'probe')
    const snapshot = await new FarmStatistics({ store, namespace, local: new QueryStatistics() }).readSnapshot()
    mergedAt = snapshot?.at
    manifest = createManifest(namespace, snapshot === undefined ? [] : hotQueriesOf(snapshot).slice(0, limit))
  } catch (error) {
    io.stderr.write(`${NAME}: could not read the farm-wide statistics: ${error instanceof Error ? error.message : String(error)}\n`)
    return EXIT.failure
  } finally {
    await store.close()
  }
  if (manifest.entries.length === 0) {
    io.stderr.write(
      `${NAME}: no farm-wide statistics for namespace ${JSON.stringify(namespace)} (key ${hotStatisticsKey(namespace)}); processes merge theirs every 10s when they cache through memcached with statistics on${values.out === undefined ? '' : `; ${values.out} was left as it was`}\n`,
    )
    return EXIT.failure
  }
  const text = serializeManifest(manifest)
  const what = `${manifest.entries.length} ${manifest.entries.length === 1 ? 'entry' : 'entries'} of namespace ${JSON.stringify(namespace)}`
  const age = mergedAt === undefined ? '' : ` (statistics last merged ${formatDuration(Math.max(0, Date.now() - mergedAt))} ago)`
  if (values.out === undefined) {
    io.stdout.write(text)
    io.stderr.write(`${NAME}: exported ${what}${age}\n`)
    return EXIT.ok
  }
  try {
    await writeAtomically(values.out, text)
  } catch (error) {
    io.stderr.write(`${NAME}: could not write ${values.out}: ${error instanceof Error ? error.message : String(error)}\n`)
    return EXIT.failure
  }
  io.stdout.write(`${NAME}: exported ${what} to ${values.out}${age}\n`)
  return EXIT.ok
}

async function runWarmupCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parse('warmup', argv, false)
  if (values.help === true) {
    io.stdout.write(HELP.warmup)
    return EXIT.ok
  }
  if (values.from === undefined) throw new UsageError('--from is required, e.g. --from hot.json (written by "kysely-memcache export")', 'warmup')
  const databaseUrl = values['database-url']
  if (databaseUrl === undefined || databaseUrl.trim() === '') {
    throw new UsageError('--database-url is required, e.g. --database-url postgres://app@db.internal:5432/app', 'warmup')
  }
  const { servers } = target('warmup', { ...values, namespace: undefined })
  const concurrency = values.concurrency === undefined ? DEFAULT_WARMUP_CONCURRENCY : positiveInteger(values.concurrency, '--concurrency', 'warmup')
  const file = values.from
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new UsageError(`--from ${JSON.stringify(file)} cannot be read: ${(error as Error).message}`, 'warmup')
  }
  let manifest: WarmupManifest
  try {
    manifest = parseManifest(text)
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error
    io.stderr.write(`${NAME}: ${file}: ${error.message}${error.path === '' ? '' : ` (at ${error.path})`}\n`)
    return EXIT.usage
  }
  let namespace = manifest.namespace
  if (values.namespace !== undefined) {
    try {
      namespace = validateNamespace(values.namespace)
    } catch (error) {
      throw new UsageError(`--${(error as Error).message}`, 'warmup')
    }
    if (namespace !== manifest.namespace) {
      throw new UsageError(
        `--namespace ${JSON.stringify(namespace)} does not match the namespace of ${file} (${JSON.stringify(manifest.namespace)}); omit --namespace to use the manifest's`,
        'warmup',
      )
    }
  }

  let pg: typeof import('pg').default
  try {
    pg = (await import('pg')).default
  } catch (error) {
    io.stderr.write(`${NAME}: warmup needs the pg package (npm install pg): ${(error as Error).message}\n`)
    return EXIT.failure
  }
  const total = manifest.entries.length
  const age = formatDuration(Math.max(0, Date.now() - Date.parse(manifest.createdAt)))
  io.stdout.write(
    `${NAME}: warming ${total} ${total === 1 ? 'entry' : 'entries'} of namespace ${JSON.stringify(namespace)} from ${file} (made ${age} ago) into ${servers.map((server) => server.id).join(', ')}, ${concurrency} at a time, from ${redactUrl(databaseUrl)}\n`,
  )

  const stop = stopSignal(io.signal)
  let cache: QueryCache | undefined
  let db: Kysely<any> | undefined
  const counts = { warmed: 0, skipped: 0, failed: 0 }
  let progress: Progress | undefined
  let report: WarmupReport
  try {
    cache = createQueryCache({ servers: servers.map((server) => server.id), namespace, statistics: false, safeMode: false })
    // Route as the processes do: nodes the monitor lists down are off the ring from the first entry.
    await cache.refreshMode()
    const pool = new pg.Pool({ connectionString: databaseUrl, max: concurrency })
    pool.on('error', (error: Error) => io.stderr.write(`${NAME}: database connection error: ${error.message}\n`))
    db = new Kysely<any>({ dialect: cache.wrapDialect(new PostgresDialect({ pool })) })
    const shown = io.stdout.isTTY === true ? barProgress(io, total) : lineProgress(io, total, performance.now())
    progress = shown
    report = await cache.warmup(manifest, {
      db,
      concurrency,
      signal: stop.signal,
      onProgress: (step) => {
        counts[step.outcome]++
        shown.update(step.done, counts)
      },
    })
  } finally {
    progress?.stop()
    stop.dispose()
    await db?.destroy().catch(() => {})
    await cache?.close().catch(() => {})
  }

  const seconds = report.durationMs / 1000
  const done = report.warmed + report.skipped + report.failed
  const rate = seconds > 0 ? done / seconds : 0
  io.stdout.write(
    `${NAME}: ${report.warmed} warmed, ${report.skipped} skipped, ${report.failed} failed of ${report.total} entries in ${seconds.toFixed(1)}s (${rate.toFixed(1)} entries/s)${report.aborted > 0 ? `; ${report.aborted} not run: interrupted` : ''}\n`,
  )
  for (const failure of report.failures.slice(0, LISTED_FAILURES)) {
    io.stdout.write(`  failed ${failure.key}: ${failure.error}\n    ${clip(failure.sql.replace(/\s+/g, ' '), 160)}\n`)
  }
  if (report.failures.length > LISTED_FAILURES) io.stdout.write(`  … and ${report.failures.length - LISTED_FAILURES} more failures\n`)
  return report.failed > 0 || report.aborted > 0 ? EXIT.failure : EXIT.ok
}

interface Progress {
  update(done: number, counts: { warmed: number; skipped: number; failed: number }): void
  stop(): void
}

/** A cli-progress bar on a terminal. */
function barProgress(io: CliIo, total: number): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream: io.stdout as unknown as NodeJS.WritableStream,
      format: 'warming [{bar}] {value}/{total} | {warmed} warmed, {skipped} skipped, {failed} failed | {duration_formatted} | eta {eta_formatted}',
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  )
  bar.start(total, 0, { warmed: 0, skipped: 0, failed: 0 })
  return {
    update: (done, counts) => bar.update(done, { ...counts }),
    stop: () => bar.stop(),
  }
}

/** Plain lines for logs and pipes: one at each tenth of the way and at the end. */
function lineProgress(io: CliIo, total: number, started: number): Progress {
  const step = Math.max(1, Math.ceil(total / 10))
  let next = step
  return {
    update: (done, counts) => {
      if (done < next && done !== total) return
      next = done + step - (done % step)
      io.stdout.write(
        `${done}/${total} done: ${counts.warmed} warmed, ${counts.skipped} skipped, ${counts.failed} failed (${((performance.now() - started) / 1000).toFixed(1)}s)\n`,
      )
    },
    stop: () => {},
  }
}

/** Aborts on `signal`, or on SIGINT/SIGTERM when none is given. */
function stopSignal(signal: AbortSignal | undefined): { signal: AbortSignal; dispose(): void } {
  if (signal !== undefined) return { signal, dispose: () => {} }
  const controller = new AbortController()
  const abort = (): void => controller.abort()
  process.once('SIGINT', abort)
  process.once('SIGTERM', abort)
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', abort)
      process.off('SIGTERM', abort)
    },
  }
}

/** Writes a temporary file next to `file`, then renames it: readers never see half a manifest. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`
  try {
    await writeFile(temporary, text, 'utf8')
    await rename(temporary, file)
  } catch (error) {
    await unlink(temporary).catch(() => {})
    throw error
  }
}

/** A flag's positive integer; bad input is a usage error. */
function positiveInteger(text: string, flag: string, command: Command): number {
  const value = /^\d{1,9}$/.test(text.trim()) ? Number(text.trim()) : Number.NaN
  if (!(value >= 1)) throw new UsageError(`${flag} must be a positive integer, got ${JSON.stringify(text)}`, command)
  return value
}

function clip(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text
}

/** Every flag of every command; parseArgs only lets through the ones of the command at hand. */
interface Values {
  servers?: string
  namespace?: string
  help?: boolean
  interval?: string
  settle?: string
  'probe-timeout'?: string
  for?: string
  timeout?: string
  json?: boolean
  'database-url'?: string
  manifest?: string
  'manifest-every'?: string
  'warmup-concurrency'?: string
  'warmup-max'?: string
  limit?: string
  out?: string
  from?: string
  concurrency?: string
}

function parse(command: Command, argv: readonly string[], allowPositionals: boolean): { values: Values; positionals: string[] } {
  let parsed: { values: Values; positionals: string[]; tokens: Array<{ kind: string; name?: string; value?: string }> }
  try {
    parsed = parseArgs({ args: attachNegativeValues(command, argv), options: OPTIONS[command], strict: true, allowPositionals: true, tokens: true }) as {
      values: Values
      positionals: string[]
      tokens: Array<{ kind: string; name?: string; value?: string }>
    }
  } catch (error) {
    const code = (error as { code?: unknown }).code
    let message = (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ')
    // Node's hint about "--" only confuses here: no command takes arguments that start with "-".
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') message = message.replace(/\. To specify a positional.*$/, '')
    throw new UsageError(message.charAt(0).toLowerCase() + message.slice(1), command)
  }
  if (!allowPositionals && parsed.positionals.length > 0 && parsed.values.help !== true) {
    throw new UsageError(`${command} takes no arguments, got ${parsed.positionals.map((p) => JSON.stringify(p)).join(' ')}`, command)
  }
  // parseArgs keeps the last of a repeated flag; a second --servers is more likely a mistake than an override.
  const given = new Map<string, Array<string | undefined>>()
  for (const token of parsed.tokens) {
    if (token.kind === 'option' && token.name !== undefined) given.set(token.name, [...(given.get(token.name) ?? []), token.value])
  }
  for (const [name, values] of given) {
    if (values.length > 1) {
      const shown = values.every((value) => value === undefined) ? '' : ` (${values.map((value) => JSON.stringify(value)).join(', ')})`
      throw new UsageError(`--${name} was given ${values.length} times${shown}; give it once`, command)
    }
  }
  return { values: parsed.values, positionals: parsed.positionals }
}

/**
 * Joins `--timeout -1s` into `--timeout=-1s`: parseArgs takes a value starting
 * with "-" for a flag, while the flag's own check names it and says what is wrong.
 */
function attachNegativeValues(command: Command, argv: readonly string[]): string[] {
  const options: Readonly<Record<string, { readonly type: string }>> = OPTIONS[command]
  const args: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    const next = argv[i + 1]
    if (arg.startsWith('--') && options[arg.slice(2)]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      args.push(`${arg}=${next}`)
      i++
    } else {
      args.push(arg)
    }
  }
  return args
}

function target(command: Command, values: Values): { servers: ServerAddress[]; namespace: string } {
  if (values.servers === undefined) {
    throw new UsageError('--servers is required, e.g. --servers 10.0.0.1:11211,10.0.0.2:11211', command)
  }
  let servers: ServerAddress[]
  try {
    servers = parseServerList(values.servers.split(',').map((entry) => entry.trim()), '--servers')
  } catch (error) {
    throw new UsageError(`${(error as Error).message} (in --servers ${JSON.stringify(values.servers)})`, command)
  }
  let namespace: string
  try {
    namespace = validateNamespace(values.namespace ?? DEFAULT_NAMESPACE)
  } catch (error) {
    throw new UsageError(`--${(error as Error).message}`, command)
  }
  return { servers, namespace }
}

/** A flag's duration in ms; bad input is a usage error. */
function duration(text: string, flag: string, command: Command, allowZero = false): number {
  try {
    return parseDuration(text, flag, { allowZero })
  } catch (error) {
    throw new UsageError((error as Error).message, command)
  }
}

/** Resolves on abort, or on SIGINT/SIGTERM when no signal is given; keeps the process alive meanwhile. */
function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    // The monitor's timers are unref'd; this one holds the process open until told to stop.
    const keepAlive = setInterval(() => {}, 1 << 30)
    const done = (): void => {
      clearInterval(keepAlive)
      signal?.removeEventListener('abort', done)
      process.off('SIGINT', done)
      process.off('SIGTERM', done)
      resolve()
    }
    if (signal !== undefined) {
      if (signal.aborted) return done()
      signal.addEventListener('abort', done, { once: true })
    } else {
      process.once('SIGINT', done)
      process.once('SIGTERM', done)
    }
  })
}

function operatorName(): string {
  let user = process.env['USER'] ?? ''
  try {
    user = userInfo().username
  } catch {
    // No passwd entry (some containers): the environment's name, if any.
  }
  return `cli ${user === '' ? '' : `${user}@`}${hostname()}:${process.pid}`
}

function describeFailures(servers: readonly ServerAddress[], probes: readonly ProbeResult[]): string {
  return servers
    .flatMap((server, i) => {
      const probe = probes[i]
      return probe === undefined || probe.ok ? [] : [`${server.id} ${probe.reason}`]
    })
    .join(', ')
}

function assignNumber<K extends 'items' | 'getHits' | 'getMisses' | 'uptimeSeconds'>(target: { [P in K]?: number }, key: K, text: string | undefined): void {
  if (text !== undefined && /^\d+$/.test(text)) target[key] = Number(text)
}

function isCommand(text: string): text is Command {
  return (COMMANDS as readonly string[]).includes(text)
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function round1(value: number): number {
  return Math.round(value * 10) / 10
}

/** True when this file is the program being run (directly, through tsx, or through npm's bin symlink). */
function isEntryPoint(): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (error: unknown) => {
      process.stderr.write(`${NAME}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
      process.exitCode = EXIT.failure
    },
  )
}
