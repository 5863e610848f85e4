import { hostname, userInfo } from 'node:os'
import { writeModeOverride } from '../../tier/tier-state.js'
import { THIRTY_DAYS_SECONDS } from '../../util/validate.js'
import { formatDuration } from '../../util/duration.js'
import { EXIT, NAME } from '../cli-io.js'
import type { CliIo } from '../cli-io.js'
import { COMMON_FLAGS, COMMON_HELP, TIMEOUT_FLAG, TIMEOUT_HELP } from '../cli-flags.js'
import type { ParsedFlags } from '../cli-flags.js'
import { durationFlag, readTarget, timeoutFlag } from '../flag-values.js'
import { iso, messageOf } from '../format.js'
import { openReachableStore } from '../reachable-store.js'
import { readSasl, SASL_HELP } from '../sasl-flags.js'
import { readSecrets, SECRET_HELP } from '../secret-flags.js'
import { UsageError } from '../usage-error.js'

/** The flags of `kysely-memcache mode`; the mode itself is its one argument. */
export const MODE_FLAGS = { ...COMMON_FLAGS, for: { type: 'string' }, ...TIMEOUT_FLAG } as const

/** What `kysely-memcache mode --help` prints. */
export const MODE_HELP = `Usage: ${NAME} mode <degraded|normal> --for <duration> --servers <list> [options]
       ${NAME} mode auto --servers <list> [options]

Forces the mode of every process (and of the monitor) until the duration is
over; "auto" removes the override and the monitor decides again.

Options:
${COMMON_HELP}
  --for <duration>      how long the override lasts, e.g. 10m (required for degraded and normal)
${TIMEOUT_HELP}

${SASL_HELP}
${SECRET_HELP}
`

/**
 * `kysely-memcache mode`: writes the operator override (degraded or normal
 * for --for) to every node that answers a probe, or removes it (auto).
 * Resolves 0 when it landed on at least one node, 1 when none answered or the
 * write failed; bad input throws a {@link UsageError}.
 */
export async function runMode({ values, positionals }: ParsedFlags<typeof MODE_FLAGS>, io: CliIo): Promise<number> {
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
  const { servers, namespace } = readTarget('mode', values)
  let forMs = 0
  if (mode === 'auto') {
    if (values.for !== undefined) throw new UsageError('--for does not apply to mode auto (it removes the override now)', 'mode')
  } else {
    if (values.for === undefined) throw new UsageError(`mode ${mode} needs --for, e.g. --for 10m`, 'mode')
    forMs = durationFlag(values.for, '--for', 'mode')
    // The override's memcached expiry is relative, which memcached caps at 30 days.
    if (forMs > THIRTY_DAYS_SECONDS * 1000) throw new UsageError(`--for must be at most 30d, got ${JSON.stringify(values.for)}`, 'mode')
  }
  const timeoutMs = timeoutFlag(values.timeout, 'mode')
  const access = { sasl: readSasl('mode', values, io), secrets: readSecrets('mode', values, io) }

  const reachable = await openReachableStore(servers, timeoutMs, io, 'nothing was changed', access)
  if (reachable === undefined) return EXIT.failure
  const { store, probes } = reachable
  try {
    const override = await writeModeOverride(store, namespace, mode, forMs, operatorName())
    const where =
      probes.down.size === 0
        ? servers.length === 1
          ? 'on its one node'
          : `on all ${servers.length} nodes`
        : `on ${servers.length - probes.down.size} of ${servers.length} nodes (unreachable: ${probes.failures})`
    if (override === undefined) {
      io.stdout.write(`${NAME}: override removed for namespace ${JSON.stringify(namespace)} ${where}; the monitor decides the mode again\n`)
    } else {
      io.stdout.write(
        `${NAME}: mode ${override.mode} forced for namespace ${JSON.stringify(namespace)} until ${iso(override.until)} (for ${formatDuration(forMs)}) ${where}, set by ${override.setBy}\n`,
      )
    }
    return EXIT.ok
  } catch (error) {
    io.stderr.write(`${NAME}: could not write the override: ${messageOf(error)}\n`)
    return EXIT.failure
  } finally {
    await store.close()
  }
}

/** Who set the override, as `status` shows it: `cli user@host:pid`. */
function operatorName(): string {
  let user = process.env['USER'] ?? ''
  try {
    user = userInfo().username
  } catch {
    // No passwd entry (some containers): the environment's name, if any.
  }
  return `cli ${user === '' ? '' : `${user}@`}${hostname()}:${process.pid}`
}
