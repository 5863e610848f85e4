import { statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { validateNamespace } from '../keys.js'
import { parseServerList } from '../store/memcached/server-address.js'
import type { TierState } from '../tier/tier-state.js'
import { describe, MAX_TIMER_MS, requireOptionsObject, THIRTY_DAYS_SECONDS } from '../util/validate.js'
import { TierMonitor } from './tier-monitor.js'
import type { MonitorConfig, WarmupConfig } from './monitor-config.js'

/** Options of {@link startMonitor}. */
export interface MonitorOptions {
  /** memcached nodes as `"host:port"`, the same list the processes use. */
  servers: readonly string[]
  /** Namespace of the processes' caches. Default `'kysely'`, as in `createQueryCache`. */
  namespace?: string
  /** Probe interval in ms. Default 1000. */
  intervalMs?: number
  /** Longest a probe (or any memcached call of the monitor) may take, in ms. Default `min(250, intervalMs / 2)`. */
  probeTimeoutMs?: number
  /** How long every node must be healthy before going back to normal, in ms. Default 30 000. */
  settleMs?: number
  /** Fraction of the pre-incident farm hit ratio that must be back before going normal. Default 0.9. */
  hitRatioRecovery?: number
  /** A window with fewer requests counts as recovered (nothing to protect). Default 20. */
  minRequests?: number
  /** TTL of the published flag: how long it outlives a monitor that stopped. Default `max(3, ceil(3 * intervalMs / 1000))`. */
  flagTtlSeconds?: number
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

/** The `warmup` option of {@link startMonitor}; give `databaseUrl`, `manifestFile` or both. */
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

/** A running health monitor (see {@link startMonitor}). */
export interface Monitor {
  /** Resolves once the first probe round has been published. Never rejects. */
  readonly ready: Promise<void>
  /** The state published last (before the first round: the starting state). */
  state(): TierState
  /** Stops probing, waits for a round in flight and closes connections. Leaves the flag to expire. */
  stop(): Promise<void>
}

const WARMUP_OPTIONS = new Set(['databaseUrl', 'manifestFile', 'concurrency', 'maxMs', 'saveEveryMs'])
const KNOWN_OPTIONS = new Set([
  'servers',
  'namespace',
  'intervalMs',
  'probeTimeoutMs',
  'settleMs',
  'hitRatioRecovery',
  'minRequests',
  'flagTtlSeconds',
  'log',
  'onState',
  'warmup',
])

/**
 * Starts the tier's health monitor: every `intervalMs` it probes each memcached
 * node over a fresh connection, decides the tier's mode and publishes it (with
 * {@link publish}) to every live node as a short-lived lease that every
 * process reads.
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
  requireOptionsObject(options, 'startMonitor')
  for (const name of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(name)) {
      throw new TypeError(`startMonitor got unknown option ${JSON.stringify(name)}; known options: ${[...KNOWN_OPTIONS].join(', ')}`)
    }
  }
  const nodes = parseServerList(options.servers, 'servers')
  const namespace = validateNamespace(options.namespace ?? 'kysely')
  const intervalMs = number(options.intervalMs, 1000, 'intervalMs', 'a positive number of milliseconds', (v) => v > 0 && v <= MAX_TIMER_MS)
  const probeTimeoutMs = number(
    options.probeTimeoutMs,
    Math.min(250, intervalMs / 2),
    'probeTimeoutMs',
    'a positive number of milliseconds',
    (v) => v > 0 && v <= MAX_TIMER_MS,
  )
  const settleMs = number(options.settleMs, 30_000, 'settleMs', 'a non-negative number of milliseconds', (v) => v >= 0)
  const hitRatioRecovery = number(options.hitRatioRecovery, 0.9, 'hitRatioRecovery', 'a number from 0 to 1', (v) => v >= 0 && v <= 1)
  const minRequests = number(options.minRequests, 20, 'minRequests', 'a non-negative integer', (v) => Number.isSafeInteger(v) && v >= 0)
  const flagTtlSeconds = number(
    options.flagTtlSeconds,
    Math.max(3, Math.ceil((3 * intervalMs) / 1000)),
    'flagTtlSeconds',
    `an integer number of seconds above intervalMs (${intervalMs} ms), at most ${THIRTY_DAYS_SECONDS}`,
    (v) => Number.isSafeInteger(v) && v * 1000 > intervalMs && v <= THIRTY_DAYS_SECONDS,
  )
  if (options.log !== undefined && typeof options.log !== 'function') {
    throw new TypeError(`log must be a function, got ${describe(options.log)}`)
  }
  if (options.onState !== undefined && typeof options.onState !== 'function') {
    throw new TypeError(`onState must be a function, got ${describe(options.onState)}`)
  }
  const warmup = options.warmup === undefined ? undefined : validateWarmup(options.warmup)
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
    log: options.log ?? ((line) => console.log(line)),
    onState: options.onState,
    warmup,
  }
}

function validateWarmup(options: MonitorWarmupOptions): WarmupConfig {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`warmup must be an object like { databaseUrl, manifestFile }, got ${describe(options)}`)
  }
  for (const name of Object.keys(options)) {
    if (!WARMUP_OPTIONS.has(name)) {
      throw new TypeError(`warmup got unknown option ${JSON.stringify(name)}; known options: ${[...WARMUP_OPTIONS].join(', ')}`)
    }
  }
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
  let file: string | undefined
  if (manifestFile !== undefined) {
    file = resolve(manifestFile)
    let directory = false
    try {
      directory = statSync(dirname(file)).isDirectory()
    } catch {
      // Reported below.
    }
    if (!directory) throw new RangeError(`warmup.manifestFile must be in an existing directory, got ${describe(manifestFile)} (${dirname(file)} is not a directory)`)
  }
  const concurrency = number(options.concurrency, 4, 'warmup.concurrency', 'a positive integer', (v) => Number.isSafeInteger(v) && v > 0)
  const maxMs = number(options.maxMs, 60_000, 'warmup.maxMs', 'a positive number of milliseconds', (v) => v > 0 && v <= MAX_TIMER_MS)
  const saveEveryMs = number(options.saveEveryMs, 60_000, 'warmup.saveEveryMs', 'a positive number of milliseconds', (v) => v > 0 && v <= MAX_TIMER_MS)
  return { databaseUrl, manifestFile: file, concurrency, maxMs, saveEveryMs }
}

function number(value: unknown, fallback: number, name: string, expected: string, valid: (value: number) => boolean): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number') throw new TypeError(`${name} must be ${expected}, got ${describe(value)}`)
  if (!Number.isFinite(value) || !valid(value)) throw new RangeError(`${name} must be ${expected}, got ${describe(value)}`)
  return value
}
