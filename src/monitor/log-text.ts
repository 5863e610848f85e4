import { formatDuration } from '../util/duration.js'
import type { MonitorConfig } from './monitor-config.js'

/**
 * A count with its noun, for log lines.
 *
 * ```ts
 * plural(1, 'entry', 'entries') // '1 entry'
 * ```
 */
export function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`
}

/**
 * What an error says, for log lines.
 *
 * ```ts
 * errorMessage(new Error('ECONNREFUSED')) // 'ECONNREFUSED'
 * ```
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * A time (ms since the epoch) as log lines show it.
 *
 * ```ts
 * iso(0) // '1970-01-01T00:00:00.000Z'
 * ```
 */
export function iso(ms: number): string {
  return new Date(ms).toISOString()
}

/**
 * The URL without its password, for logs.
 *
 * ```ts
 * redactUrl('postgres://app:secret@db/shop') // 'postgres://app:***@db/shop'
 * ```
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(the database URL)'
  }
}

/**
 * The lines a monitor logs when it starts: what it watches and how it warms returning nodes.
 *
 * ```ts
 * for (const line of startLines(config)) log(line)
 * // 'started for 2 nodes (10.0.0.1:11211, 10.0.0.2:11211), namespace "shop", every 1s, settle 30s'
 * ```
 */
export function startLines(config: MonitorConfig): string[] {
  const lines = [
    `started for ${plural(config.nodes.length, 'node', 'nodes')} (${config.servers.join(', ')}), namespace ${JSON.stringify(config.namespace)}, every ${formatDuration(config.intervalMs)}, settle ${formatDuration(config.settleMs)}`,
  ]
  // The user only: the password never reaches a log line.
  if (config.sasl !== undefined) lines.push(`authenticating to memcached as ${JSON.stringify(config.sasl.username)} (SASL PLAIN)`)
  // That values are signed, and with how many secrets: never anything of a secret.
  if (config.secrets.length > 0) lines.push(`signing values with a secret${config.secrets.length > 1 ? ` (accepting ${plural(config.secrets.length - 1, 'previous secret', 'previous secrets')})` : ''}`)
  const warmup = config.warmup
  if (warmup !== undefined) {
    const kept = warmup.manifestFile === undefined ? 'kept in memory' : `kept in ${warmup.manifestFile}`
    lines.push(
      warmup.databaseUrl === undefined
        ? `warm-up manifest ${kept}, rebuilt every ${formatDuration(warmup.saveEveryMs)}; returning nodes are not warmed (no database URL)`
        : `returning nodes are warmed from ${redactUrl(warmup.databaseUrl)} before they are listed up (concurrency ${warmup.concurrency}, at most ${formatDuration(warmup.maxMs)} each); manifest ${kept}, rebuilt every ${formatDuration(warmup.saveEveryMs)}`,
    )
  }
  return lines
}
