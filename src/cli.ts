#!/usr/bin/env node
import { realpathSync } from 'node:fs'
import { hostname, userInfo } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'
import { formatDuration, parseDuration } from './duration.js'
import { validateNamespace } from './key.js'
import { startMonitor } from './monitor.js'
import { probeNode, readNodeStats } from './node-probe.js'
import type { ProbeResult } from './node-probe.js'
import { parseServerList } from './server-address.js'
import type { ServerAddress } from './server-address.js'
import { MemcachedStore } from './store/memcached-store.js'
import { readModeOverride, readTierState, writeModeOverride } from './tier-state.js'
import type { ModeOverride, TierState } from './tier-state.js'

/** Where {@link main} writes, and what ends `monitor`. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown }
  readonly stderr: { write(text: string): unknown }
  /** Ends `kysely-memcache monitor` when aborted. Default: SIGINT or SIGTERM. */
  readonly signal?: AbortSignal
}

/** Exit codes of {@link main}. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const

const NAME = 'kysely-memcache'
const DEFAULT_NAMESPACE = 'kysely'
const DEFAULT_TIMEOUT_MS = 500

const USAGE = `Usage: ${NAME} <command> [options]

Commands:
  monitor   probe every memcached node each interval and publish the tier's mode
  mode      force the mode (degraded | normal) for a while, or give it back (auto)
  status    show each node, the published mode and the farm-wide hit ratio

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
when, why, who set it), any operator override and the farm-wide hit ratio.

Options:
${COMMON_HELP}
  --json                print JSON instead of text
  --timeout <duration>  longest any memcached call may take (default ${DEFAULT_TIMEOUT_MS}ms)
`,
}

type Command = 'monitor' | 'mode' | 'status'

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
  },
  mode: { ...COMMON_OPTIONS, for: { type: 'string' }, timeout: { type: 'string' } },
  status: { ...COMMON_OPTIONS, json: { type: 'boolean' }, timeout: { type: 'string' } },
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
 * @returns The exit code: 0 done, 1 memcached could not be written or read, 2 bad input.
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
          ? `expected a command before ${JSON.stringify(first)}: monitor, mode or status`
          : `unknown command ${JSON.stringify(first)}; expected monitor, mode or status`,
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
  const monitor = startMonitor({
    servers: servers.map((server) => server.id),
    namespace,
    intervalMs,
    settleMs,
    ...(probeTimeoutMs === undefined ? {} : { probeTimeoutMs }),
    log: (line) => io.stdout.write(`${line}\n`),
  })
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
        ? `on all ${servers.length} node${servers.length === 1 ? '' : 's'}`
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
  if (state === null) {
    lines.push('mode:      unknown: no monitor running (flag absent or expired); each process goes by its own view')
  } else {
    lines.push(`mode:      ${state.mode} since ${iso(state.since)} (for ${formatDuration(Math.max(0, now - state.since))})`)
    lines.push(`reason:    ${state.reason}`)
    lines.push(`set by:    ${state.setBy}, published ${formatDuration(Math.max(0, now - state.at))} ago`)
    if (state.down.length > 0) lines.push(`down:      ${state.down.join(', ')} (per the monitor)`)
  }
  const override = report.override
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
}

function parse(command: Command, argv: readonly string[], allowPositionals: boolean): { values: Values; positionals: string[] } {
  let parsed: { values: Values; positionals: string[] }
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS[command], strict: true, allowPositionals: true }) as {
      values: Values
      positionals: string[]
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
  return parsed
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
  return text === 'monitor' || text === 'mode' || text === 'status'
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
