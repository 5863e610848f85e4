/**
 * One web process of the drill (started by bench/drill.ts with `node --import tsx`).
 * Its workload (bench/lib/drill-web-farm.ts, the default, or bench/lib/drill-synthetic.ts)
 * gives it a cache client and `vus` virtual users. Prints `ready`, starts on
 * `GO <t0> <endAt>`, reports one JSON line per second and a final `done` line.
 *
 * Every request is recorded with its page and what the cache did for it (hit, stale,
 * miss, none: from the library's `kysely-memcache:query` diagnostics channel, per
 * request through an AsyncLocalStorage context; see examples/web-farm/cache-outcome.ts).
 */
import { createInterface } from 'node:readline'
import type { QueryCache } from '../src/index.js'
import type { WorkerConfig, WorkerDone, WorkerEvent, WorkerSecond } from './lib/drill-shapes.js'
import { startSynthetic } from './lib/drill-synthetic.js'
import { startWebFarm } from './lib/drill-web-farm.js'
import type { DrillWorkloadRun, RequestRecord, WorkloadHooks } from './lib/drill-workload.js'

const config = JSON.parse(process.argv[2] ?? '') as WorkerConfig

const STAT_NAMES = ['hits', 'misses', 'coalesced', 'errors', 'lockAcquired', 'lockWaited', 'lockWaitHits', 'lockTimeouts', 'lockUnavailable', 'lockAbandoned', 'staleServed', 'earlyRefreshes'] as const

function send(message: WorkerSecond | WorkerDone | WorkerEvent | { type: 'ready' }): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

let t0 = 0

async function main(): Promise<void> {
  const cacheErrorSamples: string[] = []
  const hooks: WorkloadHooks = {
    onError: (error) => {
      if (cacheErrorSamples.length < 5) cacheErrorSamples.push((error as Error).message)
    },
    onEvent: (event) => {
      if (t0 === 0 || event.type === 'error') return
      const detail = event.type === 'mode' ? `${event.from} → ${event.to}: ${event.reason}` : event.type === 'node-down' ? `${event.node}: ${event.reason}` : `${event.node} flushed=${event.flushed}`
      const name = event.type === 'mode' ? `mode ${event.to}` : event.type
      send({ type: 'event', worker: config.workerIndex, at: Math.round(Date.now() - t0) / 1000, event: name, detail })
    },
  }
  const run: DrillWorkloadRun = config.workload === 'web-farm' ? await startWebFarm(config, hooks) : await startSynthetic(config, hooks)
  const cache = run.cache

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
    tags: string[]
    pageErrors: Record<string, number>
  }
  const buckets = new Map<number, Bucket>()
  const bucket = (sec: number): Bucket => {
    let b = buckets.get(sec)
    if (b === undefined) {
      b = { requests: 0, errors: 0, latencies: [], tags: [], pageErrors: {} }
      buckets.set(sec, b)
    }
    return b
  }
  const errorSamples: string[] = []
  let lastStats: Record<string, number> = snapshot(cache)
  let lastDb = run.dbExecutions?.()
  const flush = (upTo: number): void => {
    const current = snapshot(cache)
    const delta = Object.fromEntries(STAT_NAMES.map((name) => [name, (current[name] ?? 0) - (lastStats[name] ?? 0)]))
    lastStats = current
    const db = run.dbExecutions?.()
    const dbDelta =
      db === undefined || lastDb === undefined
        ? undefined
        : {
            dbExecutions: db.total - lastDb.total,
            dbByKind: Object.fromEntries(Object.entries(db.byKind).map(([kind, n]) => [kind, n - (lastDb!.byKind[kind] ?? 0)]).filter(([, n]) => n !== 0)),
          }
    lastDb = db
    const secs = [...buckets.keys()].filter((sec) => sec < upTo).sort((a, b) => a - b)
    // A second without requests still reports the statements counted in it.
    const now = Math.min(upTo, Math.floor((Date.now() - t0) / 1000))
    if (secs.length === 0 && dbDelta !== undefined && now > 0) secs.push(now - 1)
    // Counters are attributed to the last second flushed (they are read once a second).
    secs.forEach((sec, i) => {
      const b = buckets.get(sec) ?? { requests: 0, errors: 0, latencies: [], tags: [], pageErrors: {} }
      buckets.delete(sec)
      const last = i === secs.length - 1
      send({
        type: 'second',
        worker: config.workerIndex,
        sec,
        requests: b.requests,
        errors: b.errors,
        latencies: b.latencies,
        tags: b.tags,
        pageErrors: b.pageErrors,
        mode: cache?.mode ?? 'none',
        stats: last ? delta : {},
        ...(dbDelta === undefined ? {} : last ? dbDelta : { dbExecutions: 0, dbByKind: {} }),
      })
    })
  }

  const record = (request: RequestRecord): void => {
    const b = bucket(Math.floor((Date.now() - t0) / 1000))
    b.requests++
    if (request.error !== undefined) {
      b.errors++
      b.pageErrors[request.page] = (b.pageErrors[request.page] ?? 0) + 1
      if (errorSamples.length < 5) errorSamples.push(request.error)
    }
    b.latencies.push(Math.round(request.ms * 100) / 100)
    b.tags.push(`${request.page} ${request.outcome}`)
  }

  // The coordinator gone (killed, interrupted): its pipe closes, and this process stops with it.
  process.stdin.on('end', () => process.exit(2))
  process.stdin.resume()

  await sleep(Math.max(0, t0 - Date.now()))
  // Statements before t0 (warm-up of the pool, the first scope probes) are not the drill's.
  lastDb = run.dbExecutions?.()
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

  const until = performance.now() + (endAt - Date.now())
  await Promise.all(Array.from({ length: config.vus }, (_, vu) => run.user(vu, until, record)))
  ticking = false
  clearTimeout(ticker)
  flush(Number.MAX_SAFE_INTEGER)
  send({
    type: 'done',
    worker: config.workerIndex,
    stats: cache === undefined ? null : { ...cache.stats() },
    errorSamples,
    cacheErrorSamples,
    logSamples: run.logSamples(),
  })
  lines.close()
  process.stdin.removeAllListeners('end')
  process.stdin.pause()
  await run.close()
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
