/**
 * The web farm: a node:cluster primary and N worker processes serving app.ts on
 * one shared port. Each worker has its own pg pool, cache client and Kysely; the
 * primary only forks, replaces a worker that dies, answers the workers' "what
 * does the farm look like" (for /stats and /metrics) and shuts them down.
 *
 *   npm run example:web-farm -- --servers 127.0.0.1:11211,127.0.0.1:11212 --seed
 *
 * Prints `listening on http://HOST:PORT` once every worker is up. SIGINT or
 * SIGTERM: every worker stops accepting, finishes its requests, destroys its
 * Kysely and closes its cache; the primary then exits 0. `--help` for the flags.
 */
import cluster, { type Worker } from 'node:cluster'
import { parseArgs } from 'node:util'
import { createQueryCache } from '../../src/index.js'
import { createApp, type WorkerReport } from './app.js'
import { checkSchemaName, DEFAULT_DATABASE_URL, DEFAULT_SCHEMA, isSeeded, seed } from './schema.js'

const HELP = `npm run example:web-farm -- [flags]
  --servers H:P,H:P    memcached nodes (required unless --embedded)
  --embedded           the in-process store instead of memcached (one worker only)
  --database-url URL   PostgreSQL (default: $DATABASE_URL or postgres://postgres@127.0.0.1:5432/test)
  --schema web_farm    schema of the farm's tables
  --namespace web-farm cache namespace
  --seed               (re)create and fill the schema, then serve
  --workers 2          worker processes (default 1 with --embedded)
  --port 8080          shared port; 0 picks a free one
  --host 127.0.0.1     address to listen on
  --pool 8             pg connections per worker
  --query-cost-ms 0    database time added to each page query (a pg_sleep), as on a bigger database
  --ttl-scale 1        multiplies the pages' TTL and swr windows`

/** What every worker gets from the primary (through the environment). */
interface FarmConfig {
  servers: string[] | undefined
  databaseUrl: string
  schema: string
  namespace: string
  seed: boolean
  workers: number
  port: number
  host: string
  pool: number
  queryCostMs: number
  ttlScale: number
}

/** Worker → primary. */
type PrimaryMessage =
  | { kind: 'web-farm:ready' }
  | { kind: 'web-farm:reports?'; id: number }
  | { kind: 'web-farm:report'; token: number; report: WorkerReport }
/** Primary → worker. */
type WorkerMessage =
  | { kind: 'web-farm:report?'; token: number }
  | { kind: 'web-farm:reports'; id: number; reports: WorkerReport[] }
  | { kind: 'web-farm:shutdown' }

const CONFIG_ENV = 'WEB_FARM_CONFIG'
const REPORT_TIMEOUT_MS = 1000
const SHUTDOWN_TIMEOUT_MS = 10_000

class UsageError extends Error {}

function parseConfig(argv: string[]): FarmConfig {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      servers: { type: 'string' },
      embedded: { type: 'boolean', default: false },
      'database-url': { type: 'string', default: DEFAULT_DATABASE_URL },
      schema: { type: 'string', default: DEFAULT_SCHEMA },
      namespace: { type: 'string', default: 'web-farm' },
      seed: { type: 'boolean', default: false },
      workers: { type: 'string' },
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      pool: { type: 'string', default: '8' },
      'query-cost-ms': { type: 'string', default: '0' },
      'ttl-scale': { type: 'string', default: '1' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    console.log(HELP)
    process.exit(0)
  }
  const servers = values.servers?.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (values.embedded === (servers !== undefined && servers.length > 0)) {
    throw new UsageError('give either --servers host:port,... or --embedded')
  }
  const workers = integer('workers', values.workers ?? (values.embedded ? '1' : '2'), 1, 64)
  if (values.embedded && workers > 1) {
    // Each process would have its own store: a write in one would not reach the others.
    throw new UsageError('--embedded keeps the cache inside one process; run it with --workers 1, or give --servers')
  }
  return {
    servers: values.embedded ? undefined : servers,
    databaseUrl: values['database-url'],
    schema: usage(() => checkSchemaName(values.schema)),
    namespace: values.namespace,
    seed: values.seed,
    workers,
    port: integer('port', values.port, 0, 65535),
    host: values.host,
    pool: integer('pool', values.pool, 1, 100),
    queryCostMs: integer('query-cost-ms', values['query-cost-ms'], 0, 60_000),
    ttlScale: positive('ttl-scale', values['ttl-scale']),
  }
}

/** `check()`, its TypeError or RangeError reported as a usage error. */
function usage<T>(check: () => T): T {
  try {
    return check()
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

function integer(flag: string, text: string, min: number, max: number): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`)
  }
  return value
}

function positive(flag: string, text: string): number {
  const value = Number(text)
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--${flag} must be a positive number, got ${JSON.stringify(text)}`)
  return value
}

/** The URL with its password masked, for logs. */
const redact = (url: string) => url.replace(/^([a-z]+:\/\/[^:@/]+):[^@/]*@/i, '$1:***@')

async function runPrimary(config: FarmConfig): Promise<void> {
  if (config.seed) {
    const report = await seed(config.databaseUrl, config.schema)
    console.log(`seeded ${report.schema}: ${report.authors} authors, ${report.articles} articles, ${report.comments} comments in ${report.ms} ms`)
    if (config.servers) {
      // The seed ran beside the cache, not through it: results cached from an earlier
      // seed of this schema must go.
      const cache = createQueryCache({ servers: config.servers, namespace: config.namespace })
      const recorded = await cache.invalidate({ all: true })
      await cache.close()
      if (!recorded) console.error(`could not invalidate namespace ${config.namespace}: is memcached up?`)
    }
  } else if (!(await isSeeded(config.databaseUrl, config.schema))) {
    throw new UsageError(`schema ${config.schema} has no web-farm tables at ${redact(config.databaseUrl)}; run with --seed`)
  }
  console.log(
    `web farm: ${config.workers} worker${config.workers === 1 ? '' : 's'}, ` +
      `cache ${config.servers ? `memcached ${config.servers.join(',')}` : 'in-process'} (namespace ${config.namespace}), ` +
      `database ${redact(config.databaseUrl)} (schema ${config.schema})`,
  )

  const workers = new Set<Worker>()
  /** Workers listening for messages: one still loading its modules would miss them. */
  const ready = new Set<Worker>()
  const serving = new Set<Worker>()
  let announced = false
  let stopping = false
  let exitCode = 0
  let nextToken = 0
  const collections = new Map<number, (report: WorkerReport) => void>()

  const tell = (worker: Worker, message: WorkerMessage) => {
    if (worker.isConnected()) worker.send(message, () => {})
  }
  /** Asks every serving worker for its report; answers `from` with those that came within a second. */
  const collect = (from: Worker, id: number) => {
    const token = nextToken++
    const targets = [...serving]
    const reports: WorkerReport[] = []
    const done = () => {
      clearTimeout(timer)
      collections.delete(token)
      tell(from, { kind: 'web-farm:reports', id, reports: reports.sort((a, b) => a.pid - b.pid) })
    }
    const timer = setTimeout(done, REPORT_TIMEOUT_MS)
    collections.set(token, (report) => {
      reports.push(report)
      if (reports.length === targets.length) done()
    })
    for (const worker of targets) tell(worker, { kind: 'web-farm:report?', token })
  }
  const fork = () => {
    const worker = cluster.fork({ [CONFIG_ENV]: JSON.stringify(config) })
    workers.add(worker)
    worker.on('message', (message: PrimaryMessage) => {
      if (message.kind === 'web-farm:ready') {
        ready.add(worker)
        if (stopping) tell(worker, { kind: 'web-farm:shutdown' })
      } else if (message.kind === 'web-farm:reports?') collect(worker, message.id)
      else if (message.kind === 'web-farm:report') collections.get(message.token)?.(message.report)
    })
  }
  const stop = (code: number) => {
    exitCode = Math.max(exitCode, code)
    if (stopping) return
    stopping = true
    if (workers.size === 0) process.exit(exitCode)
    // The others are told as soon as they are ready.
    for (const worker of ready) tell(worker, { kind: 'web-farm:shutdown' })
    setTimeout(() => {
      console.error(`workers still running after ${SHUTDOWN_TIMEOUT_MS} ms; killing them`)
      for (const worker of workers) worker.process.kill('SIGKILL')
    }, SHUTDOWN_TIMEOUT_MS).unref()
  }

  cluster.on('listening', (worker, address) => {
    serving.add(worker)
    if (!announced && !stopping && serving.size === config.workers) {
      announced = true
      console.log(`listening on http://${config.host}:${address.port}`)
    }
  })
  cluster.on('exit', (worker, code, signal) => {
    workers.delete(worker)
    ready.delete(worker)
    const served = serving.delete(worker)
    if (stopping) {
      // Ctrl-C reaches a worker still loading, before it handles signals: that is no failure.
      if (code !== 0 && signal !== 'SIGINT' && signal !== 'SIGTERM') exitCode = 1
      if (workers.size === 0) process.exit(exitCode)
      return
    }
    console.error(`worker ${worker.process.pid} exited (${signal ?? code})`)
    if (served) {
      console.error('starting a replacement')
      fork()
    } else {
      console.error('it never served: stopping the farm')
      stop(1)
    }
  })
  // A repeated signal changes nothing (the tsx command relays Ctrl-C once more when the
  // process is slow to acknowledge it); workers get SHUTDOWN_TIMEOUT_MS before SIGKILL.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(0))
  for (let i = 0; i < config.workers; i++) fork()
}

async function runWorker(config: FarmConfig): Promise<void> {
  const send = (message: PrimaryMessage) => {
    if (process.connected) process.send?.(message, undefined, undefined, () => {})
  }
  const waiting = new Map<number, (reports: WorkerReport[]) => void>()
  let nextId = 0
  const app = createApp({
    databaseUrl: config.databaseUrl,
    schema: config.schema,
    servers: config.servers,
    namespace: config.namespace,
    poolSize: config.pool,
    queryCostMs: config.queryCostMs,
    ttlScale: config.ttlScale,
    farmReports: () =>
      new Promise((resolve) => {
        const id = nextId++
        // Without an answer (the primary is busy or gone), this process speaks for itself.
        const timer = setTimeout(() => {
          waiting.delete(id)
          void app.report().then((own) => resolve([own]))
        }, 2 * REPORT_TIMEOUT_MS)
        waiting.set(id, (reports) => {
          clearTimeout(timer)
          waiting.delete(id)
          resolve(reports)
        })
        send({ kind: 'web-farm:reports?', id })
      }),
  })
  const shutdown = () => {
    void app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`[worker ${process.pid}] shutdown failed:`, error)
        process.exit(1)
      },
    )
  }
  process.on('message', (message: WorkerMessage) => {
    if (message.kind === 'web-farm:report?') {
      void app.report().then((report) => send({ kind: 'web-farm:report', token: message.token, report }))
    } else if (message.kind === 'web-farm:reports') {
      waiting.get(message.id)?.(message.reports)
    } else if (message.kind === 'web-farm:shutdown') {
      shutdown()
    }
  })
  // Ctrl-C reaches every process of the group: the worker closes itself as well.
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)
  send({ kind: 'web-farm:ready' })
  app.server.once('error', (error) => {
    console.error(`[worker ${process.pid}] cannot listen on ${config.host}:${config.port}: ${error.message}`)
    process.exit(1)
  })
  app.server.listen(config.port, config.host)
}

try {
  if (cluster.isPrimary) {
    await runPrimary(parseConfig(process.argv.slice(2)))
  } else {
    await runWorker(JSON.parse(process.env[CONFIG_ENV] ?? '{}') as FarmConfig)
  }
} catch (error) {
  if (error instanceof UsageError || /^ERR_PARSE_ARGS_/.test(String((error as { code?: unknown }).code))) {
    console.error(`${(error as Error).message}\n\n${HELP}`)
    process.exit(2)
  }
  console.error(error)
  process.exit(1)
}
