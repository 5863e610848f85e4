import { readNodeStats } from '../../store/memcached/node-probe.js'
import type { ProbeResult } from '../../store/memcached/node-probe.js'
import type { ServerAddress } from '../../store/memcached/server-address.js'
import { readModeOverride, readTierState } from '../../tier/tier-state.js'
import type { ModeOverride, TierState } from '../../tier/tier-state.js'
import { formatDuration } from '../../util/duration.js'
import { EXIT, NAME } from '../cli-io.js'
import type { CliIo } from '../cli-io.js'
import { COMMON_FLAGS, COMMON_HELP, TIMEOUT_FLAG, TIMEOUT_HELP } from '../cli-flags.js'
import type { ParsedFlags } from '../cli-flags.js'
import { readTarget, timeoutFlag } from '../flag-values.js'
import { formatSpan, iso } from '../format.js'
import { openStoreSkipping, probeNodes, type NodeAccess } from '../reachable-store.js'
import { readSasl, SASL_HELP } from '../sasl-flags.js'
import { readSecrets, SECRET_HELP } from '../secret-flags.js'

/** The flags of `kysely-memcache status`. */
export const STATUS_FLAGS = { ...COMMON_FLAGS, json: { type: 'boolean' }, ...TIMEOUT_FLAG } as const

/** What `kysely-memcache status --help` prints. */
export const STATUS_HELP = `Usage: ${NAME} status --servers <list> [options]

Probes each node and prints its state, the mode the monitor publishes (since
when, why, who set it), the warm-up of a returning node while the monitor runs
one, any operator override and the farm-wide hit ratio.

Options:
${COMMON_HELP}
  --json                print JSON instead of text
${TIMEOUT_HELP}

${SASL_HELP}
${SECRET_HELP}
`

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

/**
 * `kysely-memcache status`: probes each node, reads the published tier state
 * and any override from the nodes that answered, and prints them as text or,
 * with --json, as a {@link StatusReport}. Resolves 0 whatever the farm's
 * state; bad flags throw a {@link UsageError}.
 */
export async function runStatus({ values }: ParsedFlags<typeof STATUS_FLAGS>, io: CliIo): Promise<number> {
  const { servers, namespace } = readTarget('status', values)
  const timeoutMs = timeoutFlag(values.timeout, 'status')
  const access = { sasl: readSasl('status', values, io), secrets: readSecrets('status', values, io) }
  const report = await takeStatus(servers, namespace, timeoutMs, access)
  io.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report))
  return EXIT.ok
}

async function takeStatus(
  servers: readonly ServerAddress[],
  namespace: string,
  timeoutMs: number,
  access: NodeAccess,
): Promise<StatusReport> {
  const probes = await probeNodes(servers, timeoutMs, access.sasl)
  const nodes = await Promise.all(
    servers.map(async (server, i): Promise<NodeStatus> => {
      const probe = probes.results[i] as ProbeResult
      if (!probe.ok) return { address: server.id, up: false, reason: probe.reason, message: probe.message }
      const status: Extract<NodeStatus, { up: true }> = { address: server.id, up: true, latencyMs: round1(probe.latencyMs), version: probe.version }
      try {
        const stats = await readNodeStats(server, timeoutMs, access.sasl)
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
  let state: TierState | undefined
  let override: ModeOverride | undefined
  if (probes.down.size < servers.length) {
    const store = openStoreSkipping(servers, timeoutMs, probes.down, access)
    try {
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
    lines.push(`mode:      ${state.mode} since ${iso(state.since)} (for ${formatSpan(state.since, now)})`)
    lines.push(`reason:    ${state.reason}`)
    lines.push(`set by:    ${state.setBy}, published ${formatSpan(state.at, now)} ago`)
    if (state.down.length > 0) lines.push(`down:      ${state.down.join(', ')} (per the monitor)`)
  }
  const warmup = report.warmup
  if (warmup !== null) {
    lines.push(`warm-up:   warming ${warmup.node}: ${warmup.done}/${warmup.total} since ${formatSpan(warmup.startedAt, now)}`)
  }
  lines.push(
    override === null
      ? 'override:  none'
      : `override:  ${override.mode} until ${iso(override.until)} (${formatSpan(now, override.until)} left), set by ${override.setBy}`,
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

/** Sets `target[key]` from a stats value, leaving it out when the node reported none or garbage. */
function assignNumber<K extends 'items' | 'getHits' | 'getMisses' | 'uptimeSeconds'>(target: { [P in K]?: number }, key: K, text: string | undefined): void {
  if (text !== undefined && /^\d+$/.test(text)) target[key] = Number(text)
}

/** Latency to a tenth of a millisecond: finer is noise. */
function round1(value: number): number {
  return Math.round(value * 10) / 10
}
