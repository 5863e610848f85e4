/**
 * One web process of the farm: a node:http app whose pages each run one or two
 * Kysely queries through a wrapped dialect with `.cached()`. It owns its pg
 * pool, its cache client and its Kysely, as a real web process would. Every
 * response is JSON (but /metrics, which is Prometheus text).
 *
 *   GET  /                        latest 20 articles with their authors (a join)
 *   GET  /authors/top             the 20 authors with the most comments (an aggregate)
 *   GET  /articles/:id            an article and its latest 50 comments, tagged article:ID
 *   POST /articles/:id/comments   {"body": "..."}: adds a comment; the insert invalidates
 *                                 every cached read of `comment`, in every process
 *   POST /articles/:id/purge      cache.invalidate({ tags: ['article:ID'] }), for changes
 *                                 made behind Kysely's back (psql, another service)
 *   GET  /healthz                 this process is up
 *   GET  /stats                   cache.stats() of this process and of the whole farm
 *   GET  /metrics                 the cache's Prometheus metrics, summed over the farm
 *
 * Every page's response says what the cache did for it in `x-cache`: `hit`, `stale`
 * (served past its TTL by swr), `miss` or `none` (see cache-outcome.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { Kysely, PostgresDialect, sql, type Expression, type SqlBool } from 'kysely'
import pg from 'pg'
import { AggregatorRegistry, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import {
  createQueryCache,
  type CachedOptions,
  type CacheMode,
  type CacheStats,
  type QueryCache,
  type QueryCacheOptions,
} from '../../src/index.js'
import { trackCacheOutcome, type CacheOutcome } from './cache-outcome.js'
import { searchPathOption, type Database } from './schema.js'

export interface AppOptions {
  databaseUrl: string
  /** Schema of the farm's tables; the pool's `search_path`. */
  schema: string
  /** memcached nodes, `host:port`; none: the in-process store (one process only). */
  servers?: string[] | undefined
  namespace: string
  /** Connections of this process's pg pool. Default 8. */
  poolSize?: number | undefined
  /** Reports of every process of the farm, this one included (main.ts asks them over IPC). */
  farmReports?: (() => Promise<WorkerReport[]>) | undefined
  /** Where cache events and errors are logged. Default: stderr with the pid. */
  log?: ((line: string) => void) | undefined
  /**
   * More options of the cache client (safe mode, near cache, early refresh, …), over
   * the app's own; their `onEvent` and `onError` are called after the app logged.
   * `false`: no cache at all, every page's queries go to the database (a baseline).
   */
  cache?: Omit<QueryCacheOptions, 'servers' | 'namespace' | 'defaultSchema' | 'metrics'> | false | undefined
  /** Whether pages may be served past their TTL while refreshed (their `swr` windows). Default true. */
  swr?: boolean | undefined
  /** Multiplies every page's `ttl` and `swr` (rounded up to whole seconds), to fit a drill in minutes. Default 1. */
  ttlScale?: number | undefined
  /**
   * Database time each page query costs on top of its own work, ms: a `pg_sleep` the
   * database runs once per execution, holding a connection as a heavier query on a
   * bigger database would, without using this machine's CPU. Default 0.
   */
  queryCostMs?: number | undefined
  /** The pool's connection class (pg.Pool's `Client` option), e.g. one that counts statements. Default `pg.Client`. */
  Client?: typeof pg.Client | undefined
}

export const PAGES = ['front', 'topAuthors', 'article', 'comment', 'purge'] as const
export type PageName = (typeof PAGES)[number]

/** What one process tells the farm about itself. */
export interface WorkerReport {
  pid: number
  /** `uncached` for an app without a cache (`cache: false`). */
  mode: CacheMode | 'uncached'
  /** Requests answered per page since start. */
  requests: Record<PageName, number>
  /** `null` without a cache. */
  stats: CacheStats | null
  metrics: Array<MetricObjectWithValues<MetricValue<string>>>
}

export interface App {
  readonly server: Server
  /** `undefined` when created with `cache: false`. */
  readonly cache: QueryCache | undefined
  readonly db: Kysely<Database>
  report(): Promise<WorkerReport>
  /** Stops accepting, lets requests in flight finish (5 s at most), then closes Kysely and the cache. */
  close(): Promise<void>
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

interface Reply {
  status: number
  /** Sent as JSON, or as it is when `contentType` is given. */
  body: unknown
  contentType?: string
  /** What the cache did for a page (the `x-cache` header). */
  cache?: CacheOutcome
}

const ARTICLE_PATH = /^\/articles\/([1-9]\d{0,8})(\/comments|\/purge)?$/
const MAX_BODY_BYTES = 16 * 1024
const CLOSE_GRACE_MS = 5000

export function createApp(options: AppOptions): App {
  const log = options.log ?? ((line: string) => process.stderr.write(`[worker ${process.pid}] ${line}\n`))
  // Checked before anything opens a connection.
  const ttlScale = positive(options.ttlScale ?? 1, 'ttlScale')
  const costMs = options.queryCostMs ?? 0
  if (!(costMs >= 0 && costMs <= 60_000)) throw new RangeError(`queryCostMs must be from 0 to 60000, got ${costMs}`)
  const registry = new Registry()
  const extra = options.cache === false ? undefined : options.cache
  const logError = throttled(log, 'cache error (the query went to the database)')
  const cache =
    options.cache === false
      ? undefined
      : createQueryCache({
          ...extra,
          servers: options.servers,
          namespace: options.namespace,
          // Connections run with search_path = the farm's schema, so unqualified names live there.
          defaultSchema: options.schema,
          metrics: { registry },
          onError: (error) => {
            logError(error)
            extra?.onError?.(error)
          },
          onEvent: (event) => {
            if (event.type === 'mode') log(`cache mode ${event.to}: ${event.reason}`)
            else if (event.type === 'node-down') log(`memcached ${event.node} out of the ring: ${event.reason}`)
            else if (event.type === 'node-up') log(`memcached ${event.node} back in the ring`)
            extra?.onEvent?.(event)
          },
        })
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: options.poolSize ?? 8,
    options: searchPathOption(options.schema),
    application_name: `web-farm ${options.schema}`,
    ...(options.Client === undefined ? {} : { Client: options.Client }),
  })
  // An idle connection the server dropped (a restart, say): pg reports it here, not to a query.
  pool.on('error', (error) => log(`idle database connection failed: ${error.message}`))
  const dialect = new PostgresDialect({ pool })
  const db = new Kysely<Database>({ dialect: cache === undefined ? dialect : cache.wrapDialect(dialect) })
  const requests = Object.fromEntries(PAGES.map((page) => [page, 0])) as Record<PageName, number>

  /** A page query's cache options as this app runs them: scaled, without swr if asked, or none without a cache. */
  const caching = (settings: { ttl: number; swr: number; tags?: string[] }): CachedOptions | false => {
    if (cache === undefined) return false
    const scale = (seconds: number) => Math.ceil(seconds * ttlScale)
    return { ...settings, ttl: scale(settings.ttl), swr: options.swr === false ? 0 : scale(settings.swr) }
  }
  /** The extra database time of a page query (`queryCostMs`): an InitPlan the database runs once per execution. */
  const cost: Expression<SqlBool> = sql<SqlBool>`(select pg_sleep(${costMs / 1000})) is not null`

  const frontPage = () =>
    db
      .selectFrom('article')
      .innerJoin('author', 'author.id', 'article.author_id')
      .select(['article.id', 'article.title', 'article.published_at', 'author.id as author_id', 'author.name as author_name'])
      .orderBy('article.published_at', 'desc')
      .orderBy('article.id', 'desc')
      .limit(20)
      .$if(costMs > 0, (qb) => qb.where(cost))
      .cached(caching({ ttl: 10, swr: 30 }))
      .execute()

  const topAuthors = async () => {
    const rows = await db
      .selectFrom('comment')
      .innerJoin('article', 'article.id', 'comment.article_id')
      .innerJoin('author', 'author.id', 'article.author_id')
      .select((eb) => ['author.id', 'author.name', eb.fn.countAll<string>().as('comments')])
      .groupBy(['author.id', 'author.name'])
      .orderBy('comments', 'desc')
      .orderBy('author.id')
      .limit(20)
      .$if(costMs > 0, (qb) => qb.where(cost))
      .cached(caching({ ttl: 30, swr: 60 }))
      .execute()
    return rows.map((row) => ({ ...row, comments: Number(row.comments) }))
  }

  const articlePage = async (id: number) => {
    const tags = [`article:${id}`]
    const [article, comments] = await Promise.all([
      db
        .selectFrom('article')
        .innerJoin('author', 'author.id', 'article.author_id')
        .select(['article.id', 'article.title', 'article.body', 'article.published_at', 'author.id as author_id', 'author.name as author_name'])
        .where('article.id', '=', id)
        .$if(costMs > 0, (qb) => qb.where(cost))
        .cached(caching({ ttl: 60, swr: 300, tags }))
        .executeTakeFirst(),
      db
        .selectFrom('comment')
        .select(['id', 'body', 'created_at'])
        .where('article_id', '=', id)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(50)
        .$if(costMs > 0, (qb) => qb.where(cost))
        .cached(caching({ ttl: 30, swr: 60, tags }))
        .execute(),
    ])
    if (article === undefined) throw new HttpError(404, `no article ${id}`)
    return { ...article, comments }
  }

  const addComment = async (id: number, input: unknown) => {
    const body = (input as { body?: unknown } | null)?.body
    if (typeof body !== 'string' || body.trim() === '' || body.length > 2000) {
      throw new HttpError(400, 'expected {"body": "..."} with 1 to 2000 characters')
    }
    try {
      // A write through Kysely: once it commits, every cached read of `comment` is invalid farm-wide.
      return await db
        .insertInto('comment')
        .values({ article_id: id, body })
        .returning(['id', 'article_id', 'body', 'created_at'])
        .executeTakeFirstOrThrow()
    } catch (error) {
      if ((error as { code?: unknown }).code === '23503') throw new HttpError(404, `no article ${id}`)
      throw error
    }
  }

  const report = async (): Promise<WorkerReport> => ({
    pid: process.pid,
    mode: cache?.mode ?? 'uncached',
    requests: { ...requests },
    stats: cache?.stats() ?? null,
    metrics: await registry.getMetricsAsJSON(),
  })

  const farm = async () => (options.farmReports ? await options.farmReports() : [await report()])

  /** The page a request is for, and how to answer it. */
  const route = async (request: IncomingMessage): Promise<Reply> => {
    const path = new URL(request.url ?? '/', 'http://farm').pathname
    const method = request.method ?? 'GET'
    const expect = (wanted: 'GET' | 'POST') => {
      if (method !== wanted) throw new HttpError(405, `${path} takes ${wanted}`)
    }
    const page = async (name: PageName, run: () => Promise<unknown>, status = 200): Promise<Reply> => {
      const body = await run()
      requests[name]++
      return { status, body }
    }
    if (path === '/') {
      expect('GET')
      return page('front', frontPage)
    }
    if (path === '/authors/top') {
      expect('GET')
      return page('topAuthors', topAuthors)
    }
    const article = ARTICLE_PATH.exec(path)
    if (article) {
      const id = Number(article[1])
      if (article[2] === '/comments') {
        expect('POST')
        const input = await readJson(request)
        return page('comment', () => addComment(id, input), 201)
      }
      if (article[2] === '/purge') {
        expect('POST')
        return page('purge', async () => ({ invalidated: (await cache?.invalidate({ tags: [`article:${id}`] })) ?? false }))
      }
      expect('GET')
      return page('article', () => articlePage(id))
    }
    if (path === '/healthz') return { status: 200, body: { ok: true, pid: process.pid, mode: cache?.mode ?? 'uncached' } }
    if (path === '/stats') return { status: 200, body: statsBody(await report(), await farm()) }
    if (path === '/metrics') {
      const metrics = (await farm()).map((r) => r.metrics)
      return { status: 200, body: await AggregatorRegistry.aggregate(metrics).metrics(), contentType: registry.contentType }
    }
    throw new HttpError(404, `no page ${path}`)
  }

  const server = createServer((request, response) => {
    // Its own context, so the cache's per-query messages are told to this request (x-cache).
    const tracked = trackCacheOutcome(() => route(request))
    tracked.result.then(
      (reply) => send(response, { ...reply, cache: tracked.outcome() }),
      (error: unknown) => {
        const cache = tracked.outcome()
        if (error instanceof HttpError) return send(response, { status: error.status, body: { error: error.message }, cache })
        log(`${request.method} ${request.url} failed: ${(error as Error).stack ?? String(error)}`)
        send(response, { status: 500, body: { error: (error as Error).message }, cache })
      },
    )
  })

  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      const grace = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS)
      await closed
      clearTimeout(grace)
      await db.destroy()
      await cache?.close()
    })())

  return { server, cache, db, report, close }
}

/** `/stats`: this process's counters, then the farm's: per process and summed. */
function statsBody(self: WorkerReport, reports: WorkerReport[]) {
  const strip = ({ metrics: _metrics, ...rest }: WorkerReport) => ({ ...rest, hitRatio: hitRatio(rest.stats) })
  const total = {} as Record<keyof CacheStats, number>
  for (const { stats } of reports) {
    for (const [key, value] of Object.entries(stats ?? {}) as Array<[keyof CacheStats, number]>) total[key] = (total[key] ?? 0) + value
  }
  const requests = Object.fromEntries(PAGES.map((page) => [page, reports.reduce((sum, r) => sum + r.requests[page], 0)]))
  return {
    ...strip(self),
    farm: { workers: reports.map(strip), requests, stats: total, hitRatio: hitRatio(total) },
  }
}

/** hits / (hits + misses), rounded to 3 places; null before the first cached query. */
function hitRatio(stats: Pick<CacheStats, 'hits' | 'misses'> | null): number | null {
  if (stats === null || stats.hits === undefined) return null
  const all = stats.hits + stats.misses
  return all === 0 ? null : Math.round((stats.hits / all) * 1000) / 1000
}

function send(response: ServerResponse, reply: Reply): void {
  const text = reply.contentType === undefined ? JSON.stringify(reply.body) : String(reply.body)
  response.writeHead(reply.status, {
    'content-type': reply.contentType ?? 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-served-by': String(process.pid),
    ...(reply.cache === undefined ? {} : { 'x-cache': reply.cache }),
  })
  response.end(text)
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body over ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
  } catch {
    throw new HttpError(400, 'body must be JSON')
  }
}

function positive(value: number, name: string): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name} must be a positive number, got ${value}`)
  return value
}

/** Logs the first failure at once, then at most one line (with the count) per 5 s. */
function throttled(log: (line: string) => void, what: string): (error: unknown) => void {
  let last = 0
  let unreported = 0
  return (error) => {
    unreported++
    const now = Date.now()
    if (now - last < 5000) return
    log(`${what}${unreported > 1 ? ` (×${unreported})` : ''}: ${(error as Error).message ?? String(error)}`)
    last = now
    unreported = 0
  }
}
