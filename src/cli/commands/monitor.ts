import type { Monitor, MonitorWarmupOptions } from '../../monitor/start-monitor.js'
import { startMonitor } from '../../monitor/start-monitor.js'
import { EXIT, NAME } from '../cli-io.js'
import type { CliIo } from '../cli-io.js'
import { COMMON_FLAGS, COMMON_HELP, DEFAULT_WARMUP_CONCURRENCY } from '../cli-flags.js'
import type { FlagValues, ParsedFlags } from '../cli-flags.js'
import { durationFlag, integerFlag, readTarget } from '../flag-values.js'
import { readSasl, SASL_HELP } from '../sasl-flags.js'
import { readSecrets, SECRET_HELP } from '../secret-flags.js'
import { secretsOption } from '../../store/memcached/memcached-store.js'
import { untilStopped } from '../stop-signal.js'
import { UsageError, usageCheck } from '../usage-error.js'

/** The flags of `kysely-memcache monitor`. */
export const MONITOR_FLAGS = {
  ...COMMON_FLAGS,
  interval: { type: 'string' },
  settle: { type: 'string' },
  'probe-timeout': { type: 'string' },
  'database-url': { type: 'string' },
  manifest: { type: 'string' },
  'manifest-every': { type: 'string' },
  'warmup-concurrency': { type: 'string' },
  'warmup-max': { type: 'string' },
} as const

/** What `kysely-memcache monitor --help` prints. */
export const MONITOR_HELP = `Usage: ${NAME} monitor --servers <list> [options]

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

${SASL_HELP}
${SECRET_HELP}

Durations: 250ms, 1s, 30s, 10m, 1h, 1m30s; a plain number is milliseconds.
`

/**
 * `kysely-memcache monitor`: runs the tier monitor on the nodes of --servers,
 * logging to stdout, until `io.signal` aborts (SIGINT or SIGTERM by default),
 * then stops it and resolves 0. Bad flags throw a {@link UsageError}.
 */
export async function runMonitor({ values }: ParsedFlags<typeof MONITOR_FLAGS>, io: CliIo): Promise<number> {
  const { servers, namespace } = readTarget('monitor', values)
  const intervalMs = values.interval === undefined ? 1000 : durationFlag(values.interval, '--interval', 'monitor')
  const settleMs = values.settle === undefined ? 30_000 : durationFlag(values.settle, '--settle', 'monitor', true)
  const probeTimeoutMs = values['probe-timeout'] === undefined ? undefined : durationFlag(values['probe-timeout'], '--probe-timeout', 'monitor')
  const warmup = monitorWarmup(values)
  const sasl = readSasl('monitor', values, io)
  const secrets = readSecrets('monitor', values, io)
  const monitor: Monitor = usageCheck(
    'monitor',
    () =>
      startMonitor({
        servers: servers.map((server) => server.id),
        namespace,
        intervalMs,
        settleMs,
        ...(probeTimeoutMs === undefined ? {} : { probeTimeoutMs }),
        ...(warmup === undefined ? {} : { warmup }),
        sasl,
        ...secretsOption(secrets),
        log: (line) => io.stdout.write(`${line}\n`),
      }),
    // What the flags could not check themselves, e.g. a --manifest in a directory that does not exist.
    (message) => message.replace(/^warmup\.manifestFile/, '--manifest'),
  )
  await untilStopped(io.signal)
  await monitor.stop()
  return EXIT.ok
}

/** The monitor's `warmup` option from its flags; `undefined` without --database-url and --manifest. */
function monitorWarmup(values: FlagValues<typeof MONITOR_FLAGS>): MonitorWarmupOptions | undefined {
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
    ...(values['warmup-concurrency'] === undefined ? {} : { concurrency: integerFlag(values['warmup-concurrency'], '--warmup-concurrency', 'monitor') }),
    ...(values['warmup-max'] === undefined ? {} : { maxMs: durationFlag(values['warmup-max'], '--warmup-max', 'monitor') }),
    ...(values['manifest-every'] === undefined ? {} : { saveEveryMs: durationFlag(values['manifest-every'], '--manifest-every', 'monitor') }),
  }
}
