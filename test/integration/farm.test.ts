/**
 * The seed's scenario with real OS processes: a monitor, three memcached nodes,
 * four web processes of 25 concurrent requests each, one node killed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Kysely } from 'kysely'
import { lockKey, queryKey } from '../../src/keys.js'
import { startMonitor, type Monitor } from '../../src/monitor/start-monitor.js'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import { createSchema, scopeOf, openPostgres, type DB, type TestDatabase } from '../harness/database.js'
import { executionsSoFar, expensiveQuery } from '../harness/expensive-query.js'
import { closeClient, createClient, freshNamespace } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'
import { percentile, WorkerProcess, type WorkerReport } from '../harness/worker-process.js'

let database: TestDatabase
let memcached: MemcachedCluster
const workers: WorkerProcess[] = []

beforeAll(async () => {
  ;[database, memcached] = await Promise.all([openPostgres(), startMemcached(3)])
  const setup = createClient(database, {})
  await createSchema(setup.db)
  await setup.db.insertInto('person').values({ first_name: 'Ada' }).execute()
  await closeClient(setup)
})

afterAll(async () => {
  for (const worker of workers) worker.kill()
  await Promise.all(workers.map((worker) => worker.exited))
  await memcached?.stopAll()
  await database?.close()
})

function worker(namespace: string, env: Record<string, string> = {}): WorkerProcess {
  const made = new WorkerProcess({
    SERVERS: memcached.servers.join(','),
    NAMESPACE: namespace,
    SCHEMA: database.schema,
    ...env,
  })
  workers.push(made)
  return made
}

/** Starts `count` workers, waits until each sees the tier degraded, then fires them together. */
async function stampede(count: number, namespace: string, env: Record<string, string>): Promise<WorkerReport[]> {
  const farm = Array.from({ length: count }, () => worker(namespace, env))
  await Promise.all(farm.map((w) => w.ready()))
  for (const w of farm) w.go()
  return Promise.all(farm.map((w) => w.report()))
}

describe('a farm of processes with one memcached node killed', () => {
  let monitor: Monitor
  const lines: string[] = []

  beforeAll(async () => {
    await memcached.nodes[2]!.kill()
  })
  afterAll(async () => {
    await monitor?.stop()
    await memcached.nodes[2]!.restart()
  })

  it('runs the cold expensive query once with safe mode, once per process without, and every request gets the rows', async () => {
    const outcomes: Record<string, { executions: number; latencies: number[]; reports: WorkerReport[] }> = {}
    for (const safe of ['1', '0']) {
      const namespace = freshNamespace()
      monitor = startMonitor({ servers: memcached.servers, namespace, intervalMs: 200, settleMs: 60_000, log: (line) => lines.push(line) })
      await monitor.ready
      const before = await executionsSoFar(database.schema)
      const reports = await stampede(4, namespace, { SAFE: safe, REQUESTS: '25', QUERY_SLEEP: '0.3' })
      const executions = (await executionsSoFar(database.schema)) - before
      const results = reports.flatMap((r) => r.results)
      expect(results).toHaveLength(100)
      expect(results.every((r) => r.ok && r.firstName === 'Ada')).toBe(true)
      expect(reports.every((r) => r.mode === 'degraded')).toBe(true)
      outcomes[safe] = { executions, latencies: results.map((r) => r.ms), reports }
      await monitor.stop()
    }
    const perWorker = (safe: string): string => JSON.stringify(outcomes[safe]!.reports.map((r) => r.stats))
    expect(outcomes['1']!.executions, perWorker('1')).toBe(1)
    expect(outcomes['0']!.executions, perWorker('0')).toBe(4)
    // Every request saw the one execution's row.
    expect(new Set(outcomes['1']!.reports.flatMap((r) => r.results.map((q) => q.execution))).size).toBe(1)
    const waits = outcomes['1']!.reports.reduce((sum, r) => sum + r.stats.lockWaited!, 0)
    expect(waits).toBe(3)
    expect(lines.some((line) => line.includes('degraded'))).toBe(true)

    const summary = Object.entries(outcomes).map(([safe, o]) => ({
      safeMode: safe === '1' ? 'on' : 'off',
      executions: o.executions,
      p50: Math.round(percentile(o.latencies, 50)),
      p95: Math.round(percentile(o.latencies, 95)),
      p99: Math.round(percentile(o.latencies, 99)),
      max: Math.round(Math.max(...o.latencies)),
      lockWaitMsTotal: Math.round(o.reports.reduce((sum, r) => sum + r.stats.lockWaitMs!, 0)),
    }))
    console.log(`multi-process stampede (4 processes × 25 requests, 0.3 s query):\n${JSON.stringify(summary, null, 2)}`)
  }, 90_000)

  it('lets the others proceed within the lock TTL and one wait step when the holder process is SIGKILLed mid-query', async () => {
    const namespace = freshNamespace()
    monitor = startMonitor({ servers: memcached.servers, namespace, intervalMs: 200, settleMs: 60_000, log: () => {} })
    await monitor.ready
    const safeMode = { lockTtl: 2, wait: { initialMs: 20, maxMs: 250, maxWaitMs: 10_000 } }
    const env = { SAFE_MODE: JSON.stringify(safeMode), QUERY_SLEEP: '1' }
    const holder = worker(namespace, { ...env, REQUESTS: '1' })
    const waiters = Array.from({ length: 3 }, () => worker(namespace, { ...env, REQUESTS: '5' }))
    await Promise.all([holder, ...waiters].map((w) => w.ready()))

    // The parent knows the lock key the way every process derives it.
    const compiler = new Kysely<DB>({ dialect: database.dialect() })
    const { sql, parameters } = expensiveQuery(compiler, 1).compile()
    await compiler.destroy()
    const lock = lockKey(queryKey(namespace, sql, parameters, [], await scopeOf(database)))
    const probe = new MemcachedStore({ servers: memcached.servers, failureThreshold: 1 })
    try {
      const before = await executionsSoFar(database.schema)
      holder.go()
      const deadline = Date.now() + 10_000
      while ((await probe.get(lock).catch(() => undefined)) === undefined) {
        if (Date.now() > deadline) throw new Error('the holder never took the lock')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      for (const w of waiters) w.go()
      await new Promise((resolve) => setTimeout(resolve, 200))
      const killedAt = performance.now()
      holder.kill('SIGKILL')
      const reports = await Promise.all(waiters.map(async (w) => ({ report: await w.report(), at: performance.now() - killedAt })))
      const results = reports.flatMap(({ report }) => report.results)
      expect(results.every((r) => r.ok && r.firstName === 'Ada')).toBe(true)
      // Lock expiry (≤ 2 s), one wait step (≤ 250 ms), the successor's 1 s query, and slack.
      expect(Math.max(...reports.map((r) => r.at))).toBeLessThan(2000 + 250 + 1000 + 1000)
      // The dead holder's query and one successor's: the others waited instead of stampeding.
      expect((await executionsSoFar(database.schema)) - before).toBeLessThanOrEqual(2)
    } finally {
      await probe.close()
      await monitor.stop()
    }
  }, 60_000)
})
