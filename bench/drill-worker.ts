/**
 * One web process of the drill (started by bench/drill.ts with `node --import tsx`):
 * its own pool, Kysely and cache client, `vus` virtual users each looping
 * "pick a shape by Zipf popularity → run it (.cached()) → think". Prints `READY`,
 * starts on `GO <t0> <endAt>`, reports one JSON line per second and a final `done` line.
 */
import { createInterface } from 'node:readline'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { createQueryCache, ORIGINAL_SAFE_MODE, type QueryCache, type SafeModeOptions } from '../src/index.js'
import { seededRandom } from './lib/common.js'
import {
  DRILL_SCOPE,
  shapeQuery,
  shapeTtl,
  Zipf,
  type DrillDB,
  type WorkerConfig,
  type WorkerDone,
  type WorkerEvent,
  type WorkerSecond,
} from './lib/drill-shapes.js'

const config = JSON.parse(process.argv[2] ?? '') as WorkerConfig

const STAT_NAMES = ['hits', 'misses', 'coalesced', 'errors', 'lockAcquired', 'lockWaited', 'lockWaitHits', 'lockTimeouts', 'lockUnavailable', 'lockAbandoned'] as const

function send(message: WorkerSecond | WorkerDone | WorkerEvent | { type: 'ready' }): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

let t0 = 0

async function main(): Promise<void> {
  const cacheErrorSamples: string[] = []
  let cache: QueryCache | undefined
  if (config.configuration !== 'nocache') {
    const safeMode: SafeModeOptions | false | undefined =
      config.configuration === 'off' || config.configuration === 'bare'
        ? false
        : config.configuration === 'original'
          ? ORIGINAL_SAFE_MODE
          : undefined
    // What each configuration turns off of the defaults.
    const without = {
      far: { nearCache: false as const },
      unflat: { earlyRefresh: false as const, ttlJitter: 0 },
      bare: { nearCache: false as const, earlyRefresh: false as const, ttlJitter: 0, hotReplicas: 1 },
    }[config.configuration as 'far' | 'unflat' | 'bare']
    cache = createQueryCache({
      servers: config.servers,
      namespace: config.namespace,
      defaultSchema: config.schema,
      modeRefreshMs: config.modeRefreshMs,
      ...(safeMode === undefined ? {} : { safeMode }),
      ...without,
      onError: (error) => {
        if (cacheErrorSamples.length < 5) cacheErrorSamples.push((error as Error).message)
      },
      onEvent: (event) => {
        if (t0 === 0 || event.type === 'error') return
        const detail = event.type === 'mode' ? `${event.from} → ${event.to}: ${event.reason}` : event.type === 'node-down' ? `${event.node}: ${event.reason}` : `${event.node} flushed=${event.flushed}`
        const name = event.type === 'mode' ? `mode ${event.to}` : event.type
        send({ type: 'event', worker: config.workerIndex, at: Math.round(Date.now() - t0) / 1000, event: name, detail })
      },
    })
  }
  const statementTimeout = config.statementTimeoutMs > 0 ? ` -c statement_timeout=${config.statementTimeoutMs}` : ''
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: config.poolMax, options: `-c search_path=${config.schema}${statementTimeout}` })
  const dialect = new PostgresDialect({ pool })
  const db = new Kysely<DrillDB>({ dialect: cache === undefined ? dialect : cache.wrapDialect(dialect, { scope: DRILL_SCOPE }) })
  // Open the pool's connections now, so connection setup does not land in the measurement.
  await Promise.all(Array.from({ length: config.poolMax }, () => pool.query('select 1')))
  if (cache !== undefined) await cache.refreshMode()

  const zipf = new Zipf(config.shapes, config.zipf)
  const ttls = Array.from({ length: config.shapes }, (_, shape) => shapeTtl(shape, config.ttlBase))

  send({ type: 'ready' })
  const lines = createInterface({ input: process.stdin })
  let endAt = 0
  for await (const line of lines) {
    const match = /^GO (\d+) (\d+)$/.exec(line.trim())
    if (match) {
      t0 = Number(match[1])
      endAt = Number(match[2])
      break
    }
  }

  interface Bucket {
    requests: number
    errors: number
    latencies: number[]
  }
  const buckets = new Map<number, Bucket>()
  const bucket = (sec: number): Bucket => {
    let b = buckets.get(sec)
    if (b === undefined) {
      b = { requests: 0, errors: 0, latencies: [] }
      buckets.set(sec, b)
    }
    return b
  }
  const errorSamples: string[] = []
  let lastStats: Record<string, number> = snapshot(cache)
  const flush = (upTo: number): void => {
    const current = snapshot(cache)
    const delta = Object.fromEntries(STAT_NAMES.map((name) => [name, (current[name] ?? 0) - (lastStats[name] ?? 0)]))
    lastStats = current
    const secs = [...buckets.keys()].filter((sec) => sec < upTo).sort((a, b) => a - b)
    // Counters are attributed to the last second flushed (they are read once a second).
    secs.forEach((sec, i) => {
      const b = buckets.get(sec)!
      buckets.delete(sec)
      send({
        type: 'second',
        worker: config.workerIndex,
        sec,
        requests: b.requests,
        errors: b.errors,
        latencies: b.latencies,
        mode: cache?.mode ?? 'none',
        stats: i === secs.length - 1 ? delta : {},
      })
    })
  }

  await sleep(Math.max(0, t0 - Date.now()))
  // One report per second, at each second boundary (counters and mode belong to the second just ended).
  let ticking = true
  let ticker: NodeJS.Timeout | undefined
  const tick = (sec: number): void => {
    ticker = setTimeout(() => {
      if (!ticking) return
      flush(Math.floor((Date.now() - t0) / 1000))
      tick(sec + 1)
    }, Math.max(0, t0 + sec * 1000 + 5 - Date.now()))
  }
  tick(1)

  const virtualUser = async (vu: number): Promise<void> => {
    const random = seededRandom(config.seed * 1_000_003 + config.workerIndex * 1009 + vu)
    // Spread the users' first requests over one think time.
    await sleep(random() * config.thinkMs)
    while (Date.now() < endAt) {
      const shape = zipf.sample(random())
      const started = performance.now()
      let failed = false
      try {
        const query = shapeQuery(db, shape, config.sleepSeconds)
        const row = await (cache === undefined ? query : query.cached({ ttl: ttls[shape]!, swr: config.configuration === 'swr' ? ttls[shape]! : 0 })).executeTakeFirstOrThrow()
        if (row.bucket !== shape) throw new Error(`shape ${shape} answered bucket ${row.bucket}`)
      } catch (error) {
        failed = true
        if (errorSamples.length < 5) errorSamples.push((error as Error).message)
      }
      const ms = performance.now() - started
      const b = bucket(Math.floor((Date.now() - t0) / 1000))
      b.requests++
      if (failed) b.errors++
      b.latencies.push(Math.round(ms * 100) / 100)
      // Think time: uniform over 0.5–1.5 × thinkMs.
      await sleep(config.thinkMs * (0.5 + random()))
    }
  }
  await Promise.all(Array.from({ length: config.vus }, (_, vu) => virtualUser(vu)))
  ticking = false
  clearTimeout(ticker)
  flush(Number.MAX_SAFE_INTEGER)
  send({ type: 'done', worker: config.workerIndex, stats: cache === undefined ? null : { ...cache.stats() }, errorSamples, cacheErrorSamples })
  lines.close()
  await db.destroy()
  await cache?.close()
}

function snapshot(cache: QueryCache | undefined): Record<string, number> {
  if (cache === undefined) return {}
  const stats = cache.stats() as unknown as Record<string, number>
  return Object.fromEntries(STAT_NAMES.map((name) => [name, stats[name] ?? 0]))
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

main().catch((error: unknown) => {
  process.stderr.write(`drill worker ${config.workerIndex} failed: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
