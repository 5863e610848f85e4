import { readFile } from 'node:fs/promises'
import { Kysely, PostgresDialect } from 'kysely'
import { createQueryCache } from '../../cache/create-query-cache.js'
import type { QueryCache } from '../../cache/create-query-cache.js'
import { redactUrl } from '../../monitor/log-text.js'
import type { ServerAddress } from '../../store/memcached/server-address.js'
import type { SaslCredentials } from '../../util/validate.js'
import { ManifestError, parseManifest } from '../../warmup/manifest.js'
import type { WarmupManifest } from '../../warmup/manifest.js'
import type { WarmupReport } from '../../warmup/replay.js'
import { EXIT, NAME } from '../cli-io.js'
import type { CliIo } from '../cli-io.js'
import { COMMON_FLAGS, DEFAULT_WARMUP_CONCURRENCY } from '../cli-flags.js'
import type { ParsedFlags } from '../cli-flags.js'
import { integerFlag, namespaceFlag, readTarget } from '../flag-values.js'
import { clip, countEntries, formatSpan } from '../format.js'
import { readSasl, SASL_HELP } from '../sasl-flags.js'
import { readSecrets, SECRET_HELP } from '../secret-flags.js'
import { secretsOption } from '../../store/memcached/memcached-store.js'
import { stopSignal } from '../stop-signal.js'
import { UsageError } from '../usage-error.js'
import { warmupProgress } from '../warmup-progress.js'
import type { WarmupCounts, WarmupProgress } from '../warmup-progress.js'

/** Failures listed one by one; the rest are counted. */
const LISTED_FAILURES = 10

/** The flags of `kysely-memcache warmup`. */
export const WARMUP_FLAGS = { ...COMMON_FLAGS, from: { type: 'string' }, 'database-url': { type: 'string' }, concurrency: { type: 'string' } } as const

/** What `kysely-memcache warmup --help` prints. */
export const WARMUP_HELP = `Usage: ${NAME} warmup --from <file> --database-url <url> --servers <list> [options]

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

${SASL_HELP}
${SECRET_HELP}

Exits 0 when every entry ran, 1 when any failed or was interrupted (SIGINT,
SIGTERM), 2 on bad input (an invalid manifest names the field at fault).
`

/**
 * `kysely-memcache warmup`: replays the manifest of --from against
 * --database-url into the nodes of --servers, showing progress, then prints a
 * summary and the first failures. Resolves 0 when every entry ran, 1 when any
 * failed or `io.signal` interrupted it, 2 on an invalid manifest; other bad
 * input throws a {@link UsageError}.
 */
export async function runWarmup({ values }: ParsedFlags<typeof WARMUP_FLAGS>, io: CliIo): Promise<number> {
  const file = values.from
  if (file === undefined) throw new UsageError('--from is required, e.g. --from hot.json (written by "kysely-memcache export")', 'warmup')
  const databaseUrl = values['database-url']
  if (databaseUrl === undefined || databaseUrl.trim() === '') {
    throw new UsageError('--database-url is required, e.g. --database-url postgres://app@db.internal:5432/app', 'warmup')
  }
  // The namespace is the manifest's: --namespace only confirms it.
  const { servers } = readTarget('warmup', { servers: values.servers })
  const concurrency = values.concurrency === undefined ? DEFAULT_WARMUP_CONCURRENCY : integerFlag(values.concurrency, '--concurrency', 'warmup')
  const sasl = readSasl('warmup', values, io)
  const secrets = readSecrets('warmup', values, io)
  const manifest = await readManifest(file, io)
  if (manifest === undefined) return EXIT.usage
  const namespace = values.namespace === undefined ? manifest.namespace : confirmNamespace(values.namespace, manifest, file)

  let pg: typeof import('pg').default
  try {
    pg = (await import('pg')).default
  } catch (error) {
    io.stderr.write(`${NAME}: warmup needs the pg package (npm install pg): ${(error as Error).message}\n`)
    return EXIT.failure
  }
  io.stdout.write(
    `${NAME}: warming ${countEntries(manifest.entries.length)} of namespace ${JSON.stringify(namespace)} from ${file} (made ${formatSpan(Date.parse(manifest.createdAt), Date.now())} ago) into ${servers.map((server) => server.id).join(', ')}, ${concurrency} at a time, from ${redactUrl(databaseUrl)}\n`,
  )
  const report = await replay(manifest, { servers, namespace, databaseUrl, concurrency, pg, sasl, secrets }, io)
  printReport(report, io)
  return report.failed > 0 || report.aborted > 0 ? EXIT.failure : EXIT.ok
}

/** The manifest in `file`; `undefined` once an invalid one has been reported on stderr. */
async function readManifest(file: string, io: CliIo): Promise<WarmupManifest | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new UsageError(`--from ${JSON.stringify(file)} cannot be read: ${(error as Error).message}`, 'warmup')
  }
  try {
    return parseManifest(text)
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error
    io.stderr.write(`${NAME}: ${file}: ${error.message}${error.path === '' ? '' : ` (at ${error.path})`}\n`)
    return undefined
  }
}

/** --namespace when it is the manifest's; anything else is a usage error. */
function confirmNamespace(text: string, manifest: WarmupManifest, file: string): string {
  const namespace = namespaceFlag(text, 'warmup')
  if (namespace !== manifest.namespace) {
    throw new UsageError(
      `--namespace ${JSON.stringify(namespace)} does not match the namespace of ${file} (${JSON.stringify(manifest.namespace)}); omit --namespace to use the manifest's`,
      'warmup',
    )
  }
  return namespace
}

interface ReplayTarget {
  servers: readonly ServerAddress[]
  namespace: string
  databaseUrl: string
  concurrency: number
  pg: typeof import('pg').default
  sasl: SaslCredentials | undefined
  secrets: readonly Buffer[]
}

/** Replays `manifest` through a cache client of its own, showing progress; stops starting entries on `io.signal` (or SIGINT/SIGTERM). */
async function replay(manifest: WarmupManifest, target: ReplayTarget, io: CliIo): Promise<WarmupReport> {
  const stop = stopSignal(io.signal)
  let cache: QueryCache | undefined
  let db: Kysely<any> | undefined
  const counts: WarmupCounts = { warmed: 0, skipped: 0, failed: 0 }
  let progress: WarmupProgress | undefined
  try {
    cache = createQueryCache({
      servers: target.servers.map((server) => server.id),
      namespace: target.namespace,
      statistics: false,
      safeMode: false,
      sasl: target.sasl,
      ...secretsOption(target.secrets),
    })
    // Route as the processes do: nodes the monitor lists down are off the ring from the first entry.
    await cache.refreshMode()
    const pool = new target.pg.Pool({ connectionString: target.databaseUrl, max: target.concurrency })
    pool.on('error', (error: Error) => io.stderr.write(`${NAME}: database connection error: ${error.message}\n`))
    db = new Kysely<any>({ dialect: cache.wrapDialect(new PostgresDialect({ pool })) })
    const shown = warmupProgress(io, manifest.entries.length)
    progress = shown
    return await cache.warmup(manifest, {
      db,
      concurrency: target.concurrency,
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
}

/** The summary line, then the first {@link LISTED_FAILURES} failures with their SQL. */
function printReport(report: WarmupReport, io: CliIo): void {
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
}
