import { statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { validateNamespace } from '../keys.js'
import { parseServerList } from '../store/memcached/server-address.js'
import type { TierState } from '../tier/tier-state.js'
import { delayMs, describe, positiveInteger, positiveNumber, rejectUnknown, requireOptionsObject, saslCredentials, signingSecrets, wholeSeconds } from '../util/validate.js'
import type { SaslCredentials } from '../util/validate.js'
import type { MonitorConfig, WarmupConfig } from './monitor-config.js'
import { TierMonitor } from './tier-monitor.js'

/**
 * Options of {@link startMonitor}. Only `servers` is required.
 *
 * ```ts
 * const options: MonitorOptions = {
 *   servers: ['10.0.0.1:11211', '10.0.0.2:11211'],
 *   namespace: 'shop',
 *   intervalMs: 1000,
 *   settleMs: 30_000,
 *   onState: (state) => metrics.set({ degraded: state.mode === 'degraded' ? 1 : 0 }),
 * }
 * ```
 */
export interface MonitorOptions {
  /** memcached nodes as `"host:port"`, the same list the processes use. */
  servers: readonly string[]
  /** Namespace of the processes' caches. Default `'kysely'`, as in `createQueryCache`. */
  namespace?: string
  /** Probe interval in ms. Default 1000. */
  intervalMs?: number
  /** Longest a probe (or any memcached call of the monitor) may take, in ms. Default `min(250, intervalMs / 2)`. */
  probeTimeoutMs?: number
  /** How long every node must be healthy before going back to normal, in ms; 0 allowed. Default 30 000. */
  settleMs?: number
  /** Fraction of the pre-incident farm hit ratio that must be back before going normal. Default 0.9. */
  hitRatioRecovery?: number
  /** A window with fewer requests counts as recovered (nothing to protect); 0 allowed. Default 20. */
  minRequests?: number
  /**
   * TTL of the published flag: how long it outlives a monitor that stopped. A
   * whole number of seconds longer than `intervalMs`, so the flag never lapses
   * between two rounds. Default `max(3, ceil(3 * intervalMs / 1000))`.
   */
  flagTtlSeconds?: number
  /**
   * SASL PLAIN credentials for nodes started with `-S`, the ones the processes
   * use: every probe, stats read, flush and store connection authenticates. Logs
   * and errors name the user, never the password.
   */
  sasl?: SaslCredentials
  /**
   * The processes' signing secret (see docs/security.md): the tier state, the
   * override it reads, the statistics and the warm-up entries it writes are
   * signed with it. Never logged. Excludes `secrets`.
   */
  secret?: string | Buffer
  /** `[current, ...previous]`, as the processes have it during a rotation. */
  secrets?: ReadonlyArray<string | Buffer>
  /** Receives one line per transition. Default `console.log`. */
  log?: (line: string) => void
  /** Called with each state after it was published (or failed to be). */
  onState?: (state: TierState) => void
  /**
   * Warm-up of returning nodes (see docs/warmup.md): the monitor keeps a warm-up
   * manifest built from the farm-wide statistics and, before it lists a flushed
   * node up again, replays the manifest entries that node owns.
   */
  warmup?: MonitorWarmupOptions
}

/**
 * The `warmup` option of {@link startMonitor}; give `databaseUrl`, `manifestFile` or both.
 *
 * ```ts
 * const warmup: MonitorWarmupOptions = {
 *   databaseUrl: 'postgres://monitor@db.internal:5432/shop',
 *   manifestFile: '/var/lib/kysely-memcache/shop.json',
 *   maxMs: 30_000,
 * }
 * startMonitor({ servers, namespace: 'shop', warmup })
 * ```
 */
export interface MonitorWarmupOptions {
  /**
   * PostgreSQL connection string the entries are replayed against (each in a
   * READ ONLY transaction, through pg's default type parsers). Without it the
   * monitor only keeps and saves the manifest: returning nodes are listed up cold.
   */
  databaseUrl?: string
  /**
   * Where the manifest is kept across monitor and memcached restarts: loaded at
   * start if it exists, rewritten (write to a temporary file, then rename) every
   * `saveEveryMs` from the farm-wide statistics. Its directory must exist.
   * Without it the manifest lives in the monitor's memory only.
   */
  manifestFile?: string
  /** Entries replayed at once. Default 4. */
  concurrency?: number
  /** Longest a node's warm-up may run before the node is listed up anyway, ms. Default 60 000. */
  maxMs?: number
  /** How often the manifest is rebuilt from the farm-wide statistics (and saved), ms. Default 60 000. */
  saveEveryMs?: number
}

/**
 * A running health monitor (see {@link startMonitor}).
 *
 * ```ts
 * const monitor: Monitor = startMonitor({ servers: ['10.0.0.1:11211'] })
 * await monitor.ready
 * console.log(monitor.state().mode) // 'normal'
 * await monitor.stop()
 * ```
 */
export interface Monitor {
  /** Resolves once the first probe round has been published. Never rejects. */
  readonly ready: Promise<void>
  /** The state published last (before the first round: the starting state). */
  state(): TierState
  /** Stops probing, waits for a round in flight and closes connections. Leaves the flag to expire. */
  stop(): Promise<void>
}

const KNOWN_OPTIONS = [
  'servers',
  'namespace',
  'intervalMs',
  'probeTimeoutMs',
  'settleMs',
  'hitRatioRecovery',
  'minRequests',
  'flagTtlSeconds',
  'sasl',
  'secret',
  'secrets',
  'log',
  'onState',
  'warmup',
]
const WARMUP_OPTIONS = ['databaseUrl', 'manifestFile', 'concurrency', 'maxMs', 'saveEveryMs']

/**
 * Starts the tier's health monitor: every `intervalMs` it probes each memcached
 * node over a fresh connection, decides the tier's mode and publishes it to
 * every live node as a short-lived lease that every process reads.
 *
 * - One failed probe (refused, timeout, garbage) marks a node down; the mode is
 *   `degraded` from that round on.
 * - A down node that answers again is flushed first, and counts as up only once
 *   the flush succeeded: it must not serve values older than the writes made
 *   while it was away.
 * - Back to `normal` only when every node has been up for `settleMs` and the
 *   farm-wide hit ratio (from the counters every process increments) is back
 *   to `hitRatioRecovery` of its pre-incident level.
 * - An operator override (`kysely-memcache mode degraded --for 10m`) decides
 *   the mode while it lasts.
 * - With `warmup`, the monitor keeps a warm-up manifest (loaded from
 *   `manifestFile`, rebuilt every `saveEveryMs` from the farm-wide statistics
 *   and saved there) and, with `databaseUrl`, warms a flushed node before listing
 *   it up: it replays the manifest entries whose key that node owns, in the
 *   background (rounds go on, the node stays down and the tier degraded, the
 *   published state carries `warmup` progress), one node at a time, for at most
 *   `maxMs`. Whatever happens to the warm-up, the node is listed up afterwards.
 *
 * Run exactly one per tier (two would agree on nodes but not on `since`).
 *
 * ```ts
 * const monitor = startMonitor({ servers: ['10.0.0.1:11211', '10.0.0.2:11211'], namespace: 'shop' })
 * await monitor.ready
 * monitor.state() // { version: 1, mode: 'normal', down: [], reason: 'all nodes up', ... }
 * // logs e.g. "2026-11-25T12:00:00.000Z kysely-memcache monitor: degraded (node 10.0.0.2:11211 down: refused)"
 * process.once('SIGTERM', () => void monitor.stop())
 * ```
 *
 * @throws {TypeError | RangeError} When an option is missing, unknown or out of range; the message names it.
 */
export function startMonitor(options: MonitorOptions): Monitor {
  return new TierMonitor(validateOptions(options))
}

function validateOptions(options: MonitorOptions): MonitorConfig {
  rejectUnknown(requireOptionsObject(options, 'startMonitor'), KNOWN_OPTIONS, 'startMonitor')
  const nodes = parseServerList(options.servers, 'servers')
  const namespace = validateNamespace(options.namespace ?? 'kysely')
  const intervalMs = delayMs(options.intervalMs ?? 1000, 'intervalMs')
  const probeTimeoutMs = delayMs(options.probeTimeoutMs ?? Math.min(250, intervalMs / 2), 'probeTimeoutMs')
  // Compared with elapsed time, never given to a timer: no timer limit.
  const settleMs = options.settleMs === 0 ? 0 : positiveNumber(options.settleMs ?? 30_000, 'settleMs', 'milliseconds')
  const hitRatioRecovery = fraction(options.hitRatioRecovery ?? 0.9, 'hitRatioRecovery')
  const minRequests = options.minRequests === 0 ? 0 : positiveInteger(options.minRequests ?? 20, 'minRequests')
  const flagTtlSeconds =
    options.flagTtlSeconds === undefined
      ? Math.max(3, Math.ceil((3 * intervalMs) / 1000))
      : // At least one whole second more than an interval, so the flag never lapses between rounds.
        wholeSeconds(options.flagTtlSeconds, 'flagTtlSeconds', Math.floor(intervalMs / 1000) + 1)
  return {
    nodes,
    servers: nodes.map((node) => node.id),
    namespace,
    intervalMs,
    probeTimeoutMs,
    settleMs,
    hitRatioRecovery,
    minRequests,
    flagTtlSeconds,
    sasl: options.sasl === undefined ? undefined : saslCredentials(options.sasl, 'sasl'),
    secrets: signingSecrets(options.secret, options.secrets),
    log: optionalFunction(options.log, 'log') ?? ((line) => console.log(line)),
    onState: optionalFunction(options.onState, 'onState'),
    warmup: options.warmup === undefined ? undefined : validateWarmup(options.warmup),
  }
}

function validateWarmup(options: MonitorWarmupOptions): WarmupConfig {
  rejectUnknown(requireOptionsObject(options, 'warmup'), WARMUP_OPTIONS, 'warmup')
  const { databaseUrl, manifestFile } = options
  if (databaseUrl !== undefined && (typeof databaseUrl !== 'string' || databaseUrl.trim() === '')) {
    throw new TypeError(`warmup.databaseUrl must be a PostgreSQL connection string like postgres://user@host:5432/db, got ${describe(databaseUrl)}`)
  }
  if (manifestFile !== undefined && (typeof manifestFile !== 'string' || manifestFile.trim() === '')) {
    throw new TypeError(`warmup.manifestFile must be a file path, got ${describe(manifestFile)}`)
  }
  if (databaseUrl === undefined && manifestFile === undefined) {
    throw new TypeError('warmup needs databaseUrl (to warm returning nodes), manifestFile (to keep the manifest across restarts) or both')
  }
  return {
    databaseUrl,
    manifestFile: manifestFile === undefined ? undefined : fileInExistingDirectory(manifestFile, 'warmup.manifestFile'),
    concurrency: positiveInteger(options.concurrency ?? 4, 'warmup.concurrency'),
    maxMs: delayMs(options.maxMs ?? 60_000, 'warmup.maxMs'),
    saveEveryMs: delayMs(options.saveEveryMs ?? 60_000, 'warmup.saveEveryMs'),
  }
}

/** `path` made absolute, once its directory is known to exist: a save must not fail an hour later for a typo. */
function fileInExistingDirectory(path: string, name: string): string {
  const file = resolve(path)
  let directory = false
  try {
    directory = statSync(dirname(file)).isDirectory()
  } catch {
    // Reported below.
  }
  if (!directory) throw new RangeError(`${name} must be in an existing directory, got ${describe(path)} (${dirname(file)} is not a directory)`)
  return file
}

function fraction(value: unknown, name: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new RangeError(`${name} must be a number from 0 to 1, got ${describe(value)}`)
  }
  return value
}

function optionalFunction<T extends (...args: never[]) => unknown>(value: T | undefined, name: string): T | undefined {
  if (value !== undefined && typeof value !== 'function') {
    throw new TypeError(`${name} must be a function, got ${describe(value)}`)
  }
  return value
}
