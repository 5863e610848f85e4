import { hotStatisticsKey } from '../../keys.js'
import { FarmStatistics } from '../../statistics/farm-statistics.js'
import { hotQueriesOf } from '../../statistics/hot-query-score.js'
import { QueryStatistics } from '../../statistics/query-statistics.js'
import { createManifest, serializeManifest } from '../../warmup/manifest.js'
import type { WarmupManifest } from '../../warmup/manifest.js'
import { EXIT, NAME } from '../cli-io.js'
import type { CliIo } from '../cli-io.js'
import { COMMON_FLAGS, COMMON_HELP, TIMEOUT_FLAG, TIMEOUT_HELP } from '../cli-flags.js'
import type { ParsedFlags } from '../cli-flags.js'
import { integerFlag, readTarget, timeoutFlag } from '../flag-values.js'
import { countEntries, formatSpan, messageOf } from '../format.js'
import { openReachableStore } from '../reachable-store.js'
import { readSasl, SASL_HELP } from '../sasl-flags.js'
import { readSecrets, SECRET_HELP } from '../secret-flags.js'
import { UsageError } from '../usage-error.js'
import { writeAtomically } from '../write-atomically.js'

const DEFAULT_EXPORT_LIMIT = 500

/** The flags of `kysely-memcache export`. */
export const EXPORT_FLAGS = { ...COMMON_FLAGS, limit: { type: 'string' }, out: { type: 'string' }, ...TIMEOUT_FLAG } as const

/** What `kysely-memcache export --help` prints. */
export const EXPORT_HELP = `Usage: ${NAME} export --servers <list> [options]

Reads the farm-wide query statistics (the document every process merges its
own into, at <namespace>:hot) and writes a warm-up manifest of the most
valuable queries, highest score (requests x mean database time) first.

Options:
${COMMON_HELP}
  --limit <n>           entries at most (default ${DEFAULT_EXPORT_LIMIT})
  --out <file>          write the manifest there (atomically) instead of stdout
${TIMEOUT_HELP}

${SASL_HELP}
${SECRET_HELP}

Exits 1, writing nothing, when no node holds statistics for the namespace.
`

/**
 * `kysely-memcache export`: reads the farm-wide query statistics from the
 * nodes that answer a probe and writes a warm-up manifest of the --limit
 * highest-scoring queries to stdout or, atomically, to --out. Resolves 1,
 * writing nothing, when no node answered, the statistics could not be read or
 * there are none; bad flags throw a {@link UsageError}.
 */
export async function runExport({ values }: ParsedFlags<typeof EXPORT_FLAGS>, io: CliIo): Promise<number> {
  const { servers, namespace } = readTarget('export', values)
  const limit = values.limit === undefined ? DEFAULT_EXPORT_LIMIT : integerFlag(values.limit, '--limit', 'export')
  if (values.out !== undefined && values.out.trim() === '') throw new UsageError('--out must be a file path', 'export')
  const timeoutMs = timeoutFlag(values.timeout, 'export')
  const access = { sasl: readSasl('export', values, io), secrets: readSecrets('export', values, io) }

  const reachable = await openReachableStore(servers, timeoutMs, io, 'nothing was exported', access)
  if (reachable === undefined) return EXIT.failure
  const { store } = reachable
  let manifest: WarmupManifest
  let mergedAt: number | undefined
  try {
    const snapshot = await new FarmStatistics({ store, namespace, local: new QueryStatistics() }).readSnapshot()
    mergedAt = snapshot?.at
    manifest = createManifest(namespace, snapshot === undefined ? [] : hotQueriesOf(snapshot).slice(0, limit))
  } catch (error) {
    io.stderr.write(`${NAME}: could not read the farm-wide statistics: ${messageOf(error)}\n`)
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
  const what = `${countEntries(manifest.entries.length)} of namespace ${JSON.stringify(namespace)}`
  const age = mergedAt === undefined ? '' : ` (statistics last merged ${formatSpan(mergedAt, Date.now())} ago)`
  if (values.out === undefined) {
    io.stdout.write(text)
    io.stderr.write(`${NAME}: exported ${what}${age}\n`)
    return EXIT.ok
  }
  try {
    await writeAtomically(values.out, text)
  } catch (error) {
    io.stderr.write(`${NAME}: could not write ${values.out}: ${messageOf(error)}\n`)
    return EXIT.failure
  }
  io.stdout.write(`${NAME}: exported ${what} to ${values.out}${age}\n`)
  return EXIT.ok
}
