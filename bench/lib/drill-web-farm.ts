/**
 * The web-farm workload of the drill (the default): each worker process runs
 * examples/web-farm's app (createApp: the same pages, queries and cache options as
 * the example, its own pg pool, cache client, Kysely and HTTP server on a loopback
 * port) and its virtual users are the example's load generator (load.ts's
 * requestPlanner and virtualUser) sending to that server.
 *
 * Database executions are counted below the library: the app's pool gets a
 * counting pg Client (counting-client.ts), read by the worker once a second.
 */
import { sql } from 'kysely'
import { namespaceGenerationKey, tableGenerationKey } from '../../src/keys.js'
import { normalizeTableName } from '../../src/kysely/statement.js'
import { createApp } from '../../examples/web-farm/app.js'
import { CACHE_OUTCOMES, type CacheOutcome } from '../../examples/web-farm/cache-outcome.js'
import { keepAliveAgent, LOAD_PAGES, requestPlanner, virtualUser } from '../../examples/web-farm/load.js'
import { DEFAULT_SIZES, seed, type SeedSizes } from '../../examples/web-farm/schema.js'
import { StatementCounter } from './counting-client.js'
import { cacheOptionsFor } from './drill-configurations.js'
import type { WorkerConfig } from './drill-shapes.js'
import type { DrillWorkloadRun, WorkloadHooks } from './drill-workload.js'

/** The pages the users request (load.ts), in report order. */
export const WEB_FARM_PAGES: readonly string[] = LOAD_PAGES

/**
 * What kind of statement the app sent, from its SQL: each page query has its own
 * text. `other` is everything else (the library's one-off session probe per
 * connection, the pool warm-up's `select 1`).
 */
export function statementKind(text: string): string {
  if (/^insert into "comment"/.test(text)) return 'comment insert'
  if (/count\(\*\)/.test(text)) return 'top authors'
  if (/"article"\."body"/.test(text)) return 'article'
  if (/^select "id", "body", "created_at" from "comment"/.test(text)) return 'comment list'
  if (/order by "article"\."published_at" desc/.test(text)) return 'front'
  return 'other'
}

/** Seed sizes for `articles` articles: the example's proportions (200 authors, 10 comments per article). */
export function seedSizes(articles: number): SeedSizes {
  return { ...DEFAULT_SIZES, articles, comments: articles * (DEFAULT_SIZES.comments / DEFAULT_SIZES.articles) }
}

/** (Re)creates and fills the schema: every configuration starts from the same rows. */
export async function seedWebFarm(databaseUrl: string, schema: string, articles: number): Promise<number> {
  const report = await seed(databaseUrl, schema, seedSizes(articles))
  return report.ms
}

/** The generation keys every cached page reads (namespace first), for choosing the node to kill. */
export function webFarmGenerationKeys(namespace: string, schema: string): string[] {
  return [namespaceGenerationKey(namespace), ...['article', 'author', 'comment'].map((table) => tableGenerationKey(namespace, normalizeTableName(table, schema)))]
}

function outcomeOf(header: string | undefined): CacheOutcome {
  return (CACHE_OUTCOMES as readonly string[]).includes(header ?? '') ? (header as CacheOutcome) : 'none'
}

/** A worker of the web-farm workload: the app on a loopback port, and users of load.ts sending to it. */
export async function startWebFarm(config: WorkerConfig, hooks: WorkloadHooks): Promise<DrillWorkloadRun> {
  const farm = config.webFarm
  if (farm === undefined) throw new Error('web-farm workload without its settings')
  const counter = new StatementCounter(statementKind)
  const logs: string[] = []
  const options = cacheOptionsFor(config.configuration)
  const app = createApp({
    databaseUrl: config.databaseUrl,
    schema: config.schema,
    servers: [...config.servers],
    namespace: config.namespace,
    poolSize: config.poolMax,
    cache: options === false ? false : { ...options, modeRefreshMs: config.modeRefreshMs, onEvent: hooks.onEvent, onError: hooks.onError },
    // The example's pages carry swr windows; the drill's `swr` configuration runs them as shipped, the others without.
    swr: config.configuration === 'swr',
    ttlScale: farm.ttlScale,
    queryCostMs: farm.queryCostMs,
    Client: counter.Client,
    log: (line) => {
      if (logs.length < 20) logs.push(line)
    },
  })
  const port = await new Promise<number>((resolve, reject) => {
    app.server.once('error', reject)
    app.server.listen(0, '127.0.0.1', () => {
      const address = app.server.address()
      resolve(typeof address === 'object' && address !== null ? address.port : 0)
    })
  })
  const base = new URL(`http://127.0.0.1:${port}`)
  // Open the pool's connections now, so connection setup does not land in the measurement.
  await Promise.all(Array.from({ length: config.poolMax }, () => sql`select 1`.execute(app.db)))
  if (app.cache !== undefined) await app.cache.refreshMode()

  const plan = requestPlanner({ articles: farm.articles, zipf: config.zipf, writeShare: farm.writeShare })
  const agent = keepAliveAgent(config.vus)
  return {
    cache: app.cache,
    dbExecutions: () => {
      const { total, byKind } = counter.snapshot()
      return { total, byKind }
    },
    user: (vu, until, record) =>
      virtualUser({
        base,
        agent,
        // Users are numbered across the farm, so no two send the same sequence.
        user: config.workerIndex * config.vus + vu,
        seed: config.seed,
        thinkMs: config.thinkMs,
        timeoutMs: farm.timeoutMs,
        plan,
        until,
        spreadStart: true,
        onAnswer: ({ request, ms, error, reply }) =>
          record({ ms, page: request.page, outcome: outcomeOf(reply?.cache), ...(error === undefined ? {} : { error: `${request.page} ${request.path}: ${error.message}` }) }),
      }),
    logSamples: () => logs,
    async close() {
      agent.destroy()
      await app.close()
    },
  }
}
