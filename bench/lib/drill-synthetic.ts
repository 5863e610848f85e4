/**
 * The synthetic workload of a drill worker: its own pool, Kysely and cache client,
 * users each looping "pick a shape by Zipf popularity → run it (.cached()) → think".
 * Each request runs in a context of its own (trackCacheOutcome), so the cache's
 * per-query messages tell hits, stale answers and misses apart.
 */
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { createQueryCache } from '../../src/index.js'
import { trackCacheOutcome } from '../../examples/web-farm/cache-outcome.js'
import { seededRandom } from './common.js'
import { cacheOptionsFor } from './drill-configurations.js'
import { DRILL_SCOPE, shapeQuery, shapeTtl, Zipf, type DrillDB, type WorkerConfig } from './drill-shapes.js'
import type { DrillWorkloadRun, WorkloadHooks } from './drill-workload.js'

export async function startSynthetic(config: WorkerConfig, hooks: WorkloadHooks): Promise<DrillWorkloadRun> {
  const options = cacheOptionsFor(config.configuration)
  const cache =
    options === false
      ? undefined
      : createQueryCache({
          ...options,
          servers: config.servers,
          namespace: config.namespace,
          defaultSchema: config.schema,
          modeRefreshMs: config.modeRefreshMs,
          onError: hooks.onError,
          onEvent: hooks.onEvent,
        })
  const statementTimeout = config.statementTimeoutMs > 0 ? ` -c statement_timeout=${config.statementTimeoutMs}` : ''
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: config.poolMax, options: `-c search_path=${config.schema}${statementTimeout}` })
  const dialect = new PostgresDialect({ pool })
  const db = new Kysely<DrillDB>({ dialect: cache === undefined ? dialect : cache.wrapDialect(dialect, { scope: DRILL_SCOPE }) })
  // Open the pool's connections now, so connection setup does not land in the measurement.
  await Promise.all(Array.from({ length: config.poolMax }, () => pool.query('select 1')))
  if (cache !== undefined) await cache.refreshMode()

  const zipf = new Zipf(config.shapes, config.zipf)
  const ttls = Array.from({ length: config.shapes }, (_, shape) => shapeTtl(shape, config.ttlBase))
  const swr = config.configuration === 'swr'

  return {
    cache,
    async user(vu, until, record) {
      const random = seededRandom(config.seed * 1_000_003 + config.workerIndex * 1009 + vu)
      // Spread the users' first requests over one think time.
      await sleep(random() * config.thinkMs)
      while (performance.now() < until) {
        const shape = zipf.sample(random())
        const started = performance.now()
        let error: string | undefined
        const tracked = trackCacheOutcome(async () => {
          const query = shapeQuery(db, shape, config.sleepSeconds)
          const row = await (cache === undefined ? query : query.cached({ ttl: ttls[shape]!, swr: swr ? ttls[shape]! : 0 })).executeTakeFirstOrThrow()
          if (row.bucket !== shape) throw new Error(`shape ${shape} answered bucket ${row.bucket}`)
        })
        try {
          await tracked.result
        } catch (caught) {
          error = (caught as Error).message
        }
        record({ ms: performance.now() - started, page: 'shape', outcome: tracked.outcome(), ...(error === undefined ? {} : { error }) })
        // Think time: uniform over 0.5–1.5 × thinkMs.
        await sleep(config.thinkMs * (0.5 + random()))
      }
    },
    logSamples: () => [],
    async close() {
      await db.destroy()
      await cache?.close()
    },
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
