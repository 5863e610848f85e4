/**
 * npm run bench:drill — the seed's scenario as a repeatable drill: what the database
 * sees when a memcached node dies under load, in four configurations.
 *
 * 4 memcached nodes, PostgreSQL, the health monitor (in this process) and P worker
 * processes × C virtual users requesting K expensive query shapes with Zipf
 * popularity. Timeline: warm-up → steady → kill -9 one node → incident → restart it
 * → recovery. Configurations: no cache; cache with safe mode off; safe mode with
 * the original 5 s × 6 preset; safe mode with the library's defaults.
 *
 * Database executions are counted outside the library: every shape's query calls
 * `nextval` of its own sequence, sampled once a second from here.
 *
 * Writes bench/results/drill-<date>.json and drill-<date>.svg. Run `--help` for the flags.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { MemcachedStore, type TierState } from '../src/index.js'
import { startMonitor, type Monitor } from '../src/monitor.js'
import { namespaceGenerationKey, queryKey, tableGenerationKey } from '../src/keys.js'
import { explicitScopeId } from '../src/kysely/scope.js'
import { normalizeTableName } from '../src/kysely/statement.js'
import { startMemcached, type MemcachedCluster, type MemcachedNode } from '../test/harness/memcached.js'
import {
  couldNotRun,
  DATABASE_URL,
  describeMachine,
  dropStaleSchemas,
  formatTable,
  loadAverageNow,
  machineLine,
  markdownTable,
  percentileSorted,
  round,
  ROOT,
  today,
  writeResult,
} from './lib/common.js'
import {
  compileOnlyDb,
  DRILL_SCOPE,
  probeName,
  ROWS_PER_SHAPE,
  shapeQuery,
  shapeTtl,
  Zipf,
  type DrillConfigurationName,
  type WorkerConfig,
  type WorkerDone,
  type WorkerEvent,
  type WorkerSecond,
} from './lib/drill-shapes.js'
import { CONFIG_INFO, executionsChart, latencyChart } from './lib/drill-charts.js'

const HELP = `npm run bench:drill -- [flags]
  --workers 4          worker processes (P)
  --vus 25             virtual users per worker (C)
  --shapes 200         query shapes (K), Zipf popularity
  --zipf 1             Zipf exponent
  --sleep-ms 40        pg_sleep of each shape's query
  --think-ms 100       mean think time of a virtual user between requests (uniform 0.5–1.5 ×)
  --ttl 10             base TTL, s; each shape gets 0.5–1.5 × this (spread, fixed per shape)
  --warmup 8 --steady 12 --incident 20 --recovery 20
                       phase durations, s: kill at warmup+steady, restart after incident
  --settle-ms 10000    monitor: all nodes up this long before normal again (default of the library: 30000)
  --interval-ms 1000   monitor probe interval
  --mode-refresh-ms 1000  workers: how often they read the shared flag (library default)
  --window 5           s after the kill (and the restart) in which lost-key executions are counted
  --nocache-seconds 20 duration of the no-cache configuration (the database is the bottleneck there)
  --nocache-vus N      virtual users per worker without cache (default: --vus)
  --configs nocache,off,original,default   (also: far = defaults without the near cache; unflat = defaults
                       without early refresh and TTL jitter; swr = defaults with swr = ttl; bare = the cache
                       without any protection: no safe mode, near cache, early refresh, jitter or hot copies)
  --kill-node gen      node to kill: gen (the one holding the namespace generation's first copy, which
                       every cached read needs: the worst case), nogen (largest request share among the
                       nodes holding no generation), auto (largest request share), or an index 0–3
  --pool 4             pg pool size per worker: the database's capacity is workers × pool concurrent queries
  --statement-timeout-ms 0  PostgreSQL statement_timeout of the workers' connections (production-like: a query
                       that queues too long fails); 0 = none
  --seed 1
  --out name           result file base name (default drill-<date>)`

const { values: flags } = parseArgs({
  options: {
    workers: { type: 'string', default: '4' },
    vus: { type: 'string', default: '25' },
    shapes: { type: 'string', default: '200' },
    zipf: { type: 'string', default: '1' },
    'sleep-ms': { type: 'string', default: '40' },
    'think-ms': { type: 'string', default: '100' },
    ttl: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '8' },
    steady: { type: 'string', default: '12' },
    incident: { type: 'string', default: '20' },
    recovery: { type: 'string', default: '20' },
    'settle-ms': { type: 'string', default: '10000' },
    'interval-ms': { type: 'string', default: '1000' },
    'mode-refresh-ms': { type: 'string', default: '1000' },
    window: { type: 'string', default: '5' },
    'nocache-seconds': { type: 'string', default: '20' },
    'nocache-vus': { type: 'string' },
    configs: { type: 'string', default: 'nocache,off,original,default' },
    'kill-node': { type: 'string', default: 'gen' },
    pool: { type: 'string', default: '4' },
    'statement-timeout-ms': { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (flags.help) {
  console.log(HELP)
  process.exit(0)
}

function num(name: keyof typeof flags, min = 0): number {
  const text = flags[name]
  const value = Number(text)
  if (typeof text !== 'string' || !Number.isFinite(value) || value < min) couldNotRun(new RangeError(`--${name} must be a number ≥ ${min}, got ${String(text)}`))
  return value
}

const S = {
  workers: num('workers', 1),
  vus: num('vus', 1),
  shapes: num('shapes', 4),
  zipf: num('zipf'),
  sleepMs: num('sleep-ms'),
  thinkMs: num('think-ms', 1),
  ttlBase: num('ttl', 1),
  warmup: num('warmup', 1),
  steady: num('steady', 1),
  incident: num('incident', 1),
  recovery: num('recovery', 1),
  settleMs: num('settle-ms', 1),
  intervalMs: num('interval-ms', 100),
  modeRefreshMs: num('mode-refresh-ms', 10),
  window: num('window', 1),
  nocacheSeconds: num('nocache-seconds', 2),
  nocacheVus: flags['nocache-vus'] === undefined ? num('vus', 1) : num('nocache-vus', 1),
  pool: num('pool', 1),
  statementTimeoutMs: num('statement-timeout-ms'),
  seed: num('seed'),
}
const CONFIGS = (flags.configs ?? '').split(',').map((c) => c.trim()) as DrillConfigurationName[]
for (const c of CONFIGS) if (!(c in CONFIG_INFO)) couldNotRun(new Error(`unknown configuration ${c}`))
const NAMESPACE = 'drill'
const WORKER = fileURLToPath(new URL('./drill-worker.ts', import.meta.url))
const KILL_SEC = S.warmup + S.steady
const RESTART_SEC = KILL_SEC + S.incident
const CACHE_SECONDS = RESTART_SEC + S.recovery
/** Kill and restart happen this far into their second, after the workers' per-second reports. */
const EVENT_OFFSET_MS = 250

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

class Worker {
  readonly child: ChildProcessWithoutNullStreams
  readonly stderr: string[] = []
  readonly ready: Promise<void>
  readonly done: Promise<WorkerDone>
  readonly exited: Promise<number | string>

  constructor(config: WorkerConfig, onSecond: (second: WorkerSecond) => void, onEvent: (event: WorkerEvent) => void) {
    this.child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(config)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stderr.on('data', (chunk: Buffer) => {
      if (this.stderr.join('').length < 8000) this.stderr.push(chunk.toString())
    })
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')))
    let readyResolve: () => void = () => {}
    let doneResolve: (done: WorkerDone) => void = () => {}
    this.ready = new Promise((resolve) => (readyResolve = resolve))
    this.done = new Promise((resolve) => (doneResolve = resolve))
    const failed = this.exited.then((code) => {
      throw new Error(`drill worker ${config.workerIndex} exited (${code}): ${this.stderr.join('').slice(0, 2000)}`)
    })
    failed.catch(() => {})
    this.ready = Promise.race([this.ready, failed])
    this.done = Promise.race([this.done, failed])
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      let message: WorkerSecond | WorkerDone | WorkerEvent | { type: 'ready' }
      try {
        message = JSON.parse(line)
      } catch {
        this.stderr.push(`stdout: ${line}\n`)
        return
      }
      if (message.type === 'ready') readyResolve()
      else if (message.type === 'second') onSecond(message)
      else if (message.type === 'event') onEvent(message)
      else if (message.type === 'done') doneResolve(message)
    })
  }

  go(t0: number, endAt: number): void {
    this.child.stdin.write(`GO ${t0} ${endAt}\n`)
  }
}

interface Placement {
  servers: string[]
  killed: { index: number; address: string; rule: string; requestShare: number; shapes: number }
  nodeShares: Array<{ address: string; shapes: number; requestShare: number }>
  lostShapes: number[]
  generationKeys: Array<{ key: string; firstCopyOn: string; onKilledNode: boolean }>
}

/** The node with the largest request share among those holding no generation key's first copy. */
function largestShareWithout(nodeShares: Array<{ address: string; requestShare: number }>, excluded: ReadonlySet<string>): number {
  let best = -1
  nodeShares.forEach((node, i) => {
    if (!excluded.has(node.address) && (best < 0 || node.requestShare > nodeShares[best]!.requestShare)) best = i
  })
  return best < 0 ? 0 : best
}

async function placementOf(cluster: MemcachedCluster, schema: string, zipf: Zipf): Promise<Placement> {
  const compiler = compileOnlyDb()
  const store = new MemcachedStore({ servers: cluster.servers })
  try {
    const nodeOfShape = Array.from({ length: S.shapes }, (_, shape) => {
      const compiled = shapeQuery(compiler, shape, S.sleepMs / 1000).compile()
      return store.nodeFor(queryKey(NAMESPACE, compiled.sql, compiled.parameters, [], explicitScopeId(DRILL_SCOPE)))
    })
    const nodeShares = cluster.servers.map((address) => ({
      address,
      shapes: nodeOfShape.filter((node) => node === address).length,
      requestShare: round(nodeOfShape.reduce((sum, node, shape) => sum + (node === address ? zipf.weights[shape]! : 0), 0), 4),
    }))
    const generationKeyNames = [namespaceGenerationKey(NAMESPACE), tableGenerationKey(NAMESPACE, normalizeTableName('drill_item', schema))]
    const requested = flags['kill-node'] ?? 'auto'
    const index =
      requested === 'auto'
        ? nodeShares.reduce((best, node, i) => (node.requestShare > nodeShares[best]!.requestShare ? i : best), 0)
        : requested === 'gen'
          ? cluster.servers.indexOf(store.nodeFor(generationKeyNames[0]!))
          : requested === 'nogen'
            ? largestShareWithout(nodeShares, new Set(generationKeyNames.map((key) => store.nodeFor(key))))
            : Number(requested)
    if (!Number.isSafeInteger(index) || index < 0 || index >= cluster.servers.length) throw new RangeError(`--kill-node ${requested} is not a node index`)
    const address = cluster.servers[index]!
    const generationKeys = generationKeyNames.map((key) => {
      const firstCopyOn = store.nodeFor(key)
      return { key, firstCopyOn, onKilledNode: firstCopyOn === address }
    })
    return {
      servers: cluster.servers,
      killed: { index, address, rule: requested, requestShare: nodeShares[index]!.requestShare, shapes: nodeShares[index]!.shapes },
      nodeShares,
      lostShapes: nodeOfShape.flatMap((node, shape) => (node === address ? [shape] : [])),
      generationKeys,
    }
  } finally {
    await store.close()
    await compiler.destroy()
  }
}

interface Second {
  t: number
  dbExecutions: number
  requests: number
  errors: number
  p50Ms: number | null
  p99Ms: number | null
  maxMs: number | null
  monitorMode: string
  degradedWorkers: number
  hits: number
  misses: number
  coalesced: number
  lockWaited: number
  lockTimeouts: number
  cacheErrors: number
}

async function runConfiguration(
  name: DrillConfigurationName,
  cluster: MemcachedCluster,
  victim: MemcachedNode,
  schema: string,
  placement: Placement,
  readProbes: () => Promise<Float64Array>,
) {
  const cached = name !== 'nocache'
  const duration = cached ? CACHE_SECONDS : S.nocacheSeconds
  const vus = cached ? S.vus : S.nocacheVus
  const label = CONFIG_INFO[name].label
  console.log(`\n── ${label}: ${S.workers} workers × ${vus} users, ${duration} s`)
  // Every configuration starts from the same state: all nodes up and empty.
  await Promise.all(cluster.nodes.map((node) => (node.running ? node.flush() : node.restart())))

  const states: Array<{ at: number | null; mode: string; down: number; reason: string }> = []
  const monitorLog: Array<{ at: number | null; line: string }> = []
  let t0: number | undefined
  /** Seconds since the configuration's t0; `null` before it is set (monitor start-up). */
  const rel = (): number | null => (t0 === undefined ? null : round((Date.now() - t0) / 1000, 2))
  let monitor: Monitor | undefined
  if (cached) {
    monitor = startMonitor({
      servers: cluster.servers,
      namespace: NAMESPACE,
      intervalMs: S.intervalMs,
      settleMs: S.settleMs,
      log: (line) => {
        monitorLog.push({ at: rel(), line })
        if (!/started for|stopped;/.test(line)) console.log(`   [monitor t=${rel() ?? '-'}s] ${line.replace(/^\S+ kysely-memcache monitor: /, '')}`)
      },
      onState: (state: TierState) => states.push({ at: rel(), mode: state.mode, down: state.down.length, reason: state.reason }),
    })
    await monitor.ready
  }

  const seconds = new Map<number, { requests: number; errors: number; latencies: number[]; modes: string[]; stats: Record<string, number> }>()
  const workerEvents: WorkerEvent[] = []
  const workers: Worker[] = []
  try {
    for (let i = 0; i < S.workers; i++) {
      const config: WorkerConfig = {
        configuration: name,
        workerIndex: i,
        servers: cluster.servers,
        namespace: NAMESPACE,
        schema,
        databaseUrl: DATABASE_URL,
        vus,
        thinkMs: S.thinkMs,
        shapes: S.shapes,
        zipf: S.zipf,
        sleepSeconds: S.sleepMs / 1000,
        ttlBase: S.ttlBase,
        seed: S.seed,
        poolMax: S.pool,
        statementTimeoutMs: S.statementTimeoutMs,
        modeRefreshMs: S.modeRefreshMs,
      }
      workers.push(
        new Worker(config, (second) => {
          let s = seconds.get(second.sec)
          if (s === undefined) {
            s = { requests: 0, errors: 0, latencies: [], modes: [], stats: {} }
            seconds.set(second.sec, s)
          }
          s.requests += second.requests
          s.errors += second.errors
          for (const ms of second.latencies) s.latencies.push(ms)
          s.modes.push(second.mode)
          for (const [k, v] of Object.entries(second.stats)) s.stats[k] = (s.stats[k] ?? 0) + v
        }, (event) => workerEvents.push(event)),
      )
    }
    await Promise.all(workers.map((w) => w.ready))
    const start = Date.now() + 1000
    t0 = start
    const endAt = start + duration * 1000
    for (const w of workers) w.go(start, endAt)

    const snapshots: Float64Array[] = []
    const sampler = (async () => {
      for (let k = 0; k <= duration; k++) {
        await sleep(start + k * 1000 - Date.now())
        snapshots[k] = await readProbes()
      }
    })()
    const events: Record<string, number> = {}
    const waves: Record<string, { before: Float64Array; after: Float64Array }> = {}
    const incident = cached
      ? (async () => {
          await sleep(start + KILL_SEC * 1000 + EVENT_OFFSET_MS - Date.now())
          const beforeKill = await readProbes()
          events.kill = round((Date.now() - start) / 1000, 2)
          await victim.kill()
          console.log(`   [t=${events.kill}s] kill -9 ${victim.address}`)
          await sleep(start + (KILL_SEC + S.window) * 1000 - Date.now())
          waves.kill = { before: beforeKill, after: await readProbes() }
          await sleep(start + RESTART_SEC * 1000 + EVENT_OFFSET_MS - Date.now())
          const beforeRestart = await readProbes()
          events.restart = round((Date.now() - start) / 1000, 2)
          await victim.restart()
          console.log(`   [t=${events.restart}s] restarted ${victim.address} (empty)`)
          await sleep(start + (RESTART_SEC + S.window) * 1000 - Date.now())
          waves.restart = { before: beforeRestart, after: await readProbes() }
        })()
      : Promise.resolve()
    const dones = await Promise.all(workers.map((w) => w.done))
    await Promise.all([sampler, incident])
    await Promise.all(workers.map((w) => Promise.race([w.exited, sleep(5000)])))

    const sum = (values: Float64Array): number => values.reduce((a, b) => a + b, 0)
    const perSecond: Second[] = []
    for (let t = 0; t < duration; t++) {
      const s = seconds.get(t) ?? { requests: 0, errors: 0, latencies: [], modes: [], stats: {} }
      const sorted = Float64Array.from(s.latencies).sort()
      const state = states.filter((x) => x.at !== null && x.at <= t + 1).at(-1)
      perSecond.push({
        t,
        dbExecutions: sum(snapshots[t + 1]!) - sum(snapshots[t]!),
        requests: s.requests,
        errors: s.errors,
        p50Ms: sorted.length > 0 ? round(percentileSorted(sorted, 50), 1) : null,
        p99Ms: sorted.length > 0 ? round(percentileSorted(sorted, 99), 1) : null,
        maxMs: sorted.length > 0 ? round(sorted[sorted.length - 1]!, 1) : null,
        monitorMode: state?.mode ?? (cached ? 'starting' : 'none'),
        degradedWorkers: s.modes.filter((m) => m === 'degraded').length,
        hits: s.stats.hits ?? 0,
        misses: s.stats.misses ?? 0,
        coalesced: s.stats.coalesced ?? 0,
        lockWaited: s.stats.lockWaited ?? 0,
        lockTimeouts: s.stats.lockTimeouts ?? 0,
        cacheErrors: s.stats.errors ?? 0,
      })
    }
    const latenciesIn = (from: number, to: number): Float64Array => {
      const all: number[] = []
      for (let t = from; t < to; t++) for (const ms of seconds.get(t)?.latencies ?? []) all.push(ms)
      return Float64Array.from(all).sort()
    }
    const latencySummary = (from: number, to: number) => {
      const sorted = latenciesIn(from, to)
      return sorted.length === 0
        ? null
        : {
            requests: sorted.length,
            p50Ms: round(percentileSorted(sorted, 50), 1),
            p99Ms: round(percentileSorted(sorted, 99), 1),
            p999Ms: round(percentileSorted(sorted, 99.9), 1),
            maxMs: round(sorted[sorted.length - 1]!, 1),
          }
    }
    const range = (from: number, to: number): Second[] => perSecond.slice(from, to)
    const meanOf = (xs: number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)
    const steadyFrom = cached ? S.warmup : Math.min(S.warmup, Math.floor(duration / 4))
    const steadyTo = cached ? KILL_SEC : duration
    const steady = range(steadyFrom, steadyTo)
    const steadyRate = meanOf(steady.map((s) => s.dbExecutions))
    const lost = new Set(placement.lostShapes)
    // Executions per second of the shapes the kill did not touch, in steady state: what the wave windows would see anyway.
    let steadyOther = 0
    let steadyLost = 0
    for (let shape = 0; shape < S.shapes; shape++) {
      const executed = snapshots[steadyTo]![shape]! - snapshots[steadyFrom]![shape]!
      if (lost.has(shape)) steadyLost += executed
      else steadyOther += executed
    }
    const steadyOtherRate = steadyOther / Math.max(1, steadyTo - steadyFrom)
    // The lost shapes' own steady refreshes (TTL expiry) land in the window whether or not a node dies.
    const steadyLostRate = steadyLost / Math.max(1, steadyTo - steadyFrom)
    const wave = (w: { before: Float64Array; after: Float64Array } | undefined) => {
      if (w === undefined) return null
      let executions = 0
      let distinct = 0
      let otherExecutions = 0
      for (let shape = 0; shape < S.shapes; shape++) {
        const delta = w.after[shape]! - w.before[shape]!
        if (lost.has(shape)) {
          executions += delta
          if (delta > 0) distinct++
        } else {
          otherExecutions += delta
        }
      }
      return {
        windowSeconds: S.window,
        lostShapes: lost.size,
        distinctLostExecuted: distinct,
        lostExecutions: executions,
        executionsPerDistinctLostKey: distinct === 0 ? null : round(executions / distinct, 2),
        executionsPerLostKey: lost.size === 0 ? null : round(executions / lost.size, 2),
        lostExpectedFromSteady: round(steadyLostRate * S.window, 1),
        excessExecutionsPerLostKey: lost.size === 0 ? null : round(Math.max(0, executions - steadyLostRate * S.window) / lost.size, 2),
        otherShapesExecutions: otherExecutions,
        otherShapesExpectedFromSteady: round(steadyOtherRate * S.window, 1),
      }
    }
    const totalErrors = perSecond.reduce((a, s) => a + s.errors, 0)
    const totalRequests = perSecond.reduce((a, s) => a + s.requests, 0)
    const summary = {
      durationSeconds: duration,
      virtualUsers: S.workers * vus,
      requests: totalRequests,
      errors: totalErrors,
      cacheErrors: perSecond.reduce((a, s) => a + s.cacheErrors, 0),
      steady: {
        fromSecond: steadyFrom,
        toSecond: steadyTo,
        dbExecutionsPerSecond: round(steadyRate, 1),
        // How much the rate swings second to second: the expiry waves.
        dbExecutionsCv: round(coefficientOfVariation(steady.map((s) => s.dbExecutions)), 3),
        requestsPerSecond: round(meanOf(steady.map((s) => s.requests)), 1),
        hitRatio: cached ? round(meanOf(steady.map((s) => s.hits)) / Math.max(1, meanOf(steady.map((s) => s.hits + s.misses))), 4) : null,
        latency: latencySummary(steadyFrom, steadyTo),
      },
      afterKill: cached
        ? {
            peakDbExecutionsPerSecond: Math.max(...range(KILL_SEC, duration).map((s) => s.dbExecutions)),
            peakDuringIncident: Math.max(...range(KILL_SEC, RESTART_SEC).map((s) => s.dbExecutions)),
            peakAfterRestart: Math.max(...range(RESTART_SEC, duration).map((s) => s.dbExecutions)),
            peakOverSteady: steadyRate > 0 ? round(Math.max(...range(KILL_SEC, duration).map((s) => s.dbExecutions)) / steadyRate, 2) : null,
            dbExecutions: range(KILL_SEC, duration).reduce((a, s) => a + s.dbExecutions, 0),
            latency: latencySummary(KILL_SEC, duration),
            latencyFirstWindow: latencySummary(KILL_SEC, KILL_SEC + S.window),
            latencyAfterRestart: latencySummary(RESTART_SEC, duration),
          }
        : null,
      killWave: wave(waves.kill),
      restartWave: wave(waves.restart),
    }
    const workerStats = dones.map((d) => d.stats)
    const errorSamples = [...new Set(dones.flatMap((d) => d.errorSamples))]
    const cacheErrorSamples = [...new Set(dones.flatMap((d) => d.cacheErrorSamples))]
    // How long each worker took to take the killed node out of its ring, and to put it back.
    const detection = cached
      ? {
          nodeDownAfterKillSeconds: workerEvents
            .filter((e) => e.event === 'node-down' && events.kill !== undefined && e.at >= events.kill)
            .map((e) => round(e.at - events.kill!, 3)),
          nodeUpAfterRestartSeconds: workerEvents
            .filter((e) => e.event === 'node-up' && events.restart !== undefined && e.at >= events.restart)
            .map((e) => round(e.at - events.restart!, 3)),
        }
      : null
    return {
      name,
      label,
      events,
      summary,
      detection,
      perSecond,
      monitorLog,
      workerEvents,
      workerStats,
      errorSamples,
      cacheErrorSamples,
      loadAverageAtEnd: loadAverageNow(),
    }
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL')
    await monitor?.stop()
  }
}

type ConfigurationResult = Awaited<ReturnType<typeof runConfiguration>>

async function main(): Promise<void> {
  const started = Date.now()
  const machine = await describeMachine()
  console.log(`bench:drill — ${machineLine(machine)}`)
  const schema = `bench_drill_${process.pid}`
  const admin = new pg.Client({ connectionString: DATABASE_URL })
  await admin.connect()
  await dropStaleSchemas(admin, 'bench_drill_')
  let cluster: MemcachedCluster | undefined
  const sampler = new pg.Client({ connectionString: DATABASE_URL })
  try {
    await admin.query(`create schema ${schema}`)
    await admin.query(`create table ${schema}.drill_item (
      id serial primary key, bucket integer not null, amount numeric(12, 2) not null,
      updated_at timestamptz not null, label text not null)`)
    await admin.query(
      `insert into ${schema}.drill_item (bucket, amount, updated_at, label)
       select b, (b * 7 + r) * 1.25, timestamptz '2026-01-01' + (b * 100 + r) * interval '1 minute', 'item ' || b || '/' || r
       from generate_series(0, $1::int - 1) as b, generate_series(1, $2::int) as r`,
      [S.shapes, ROWS_PER_SHAPE],
    )
    await admin.query(`create index on ${schema}.drill_item (bucket)`)
    for (let shape = 0; shape < S.shapes; shape++) await admin.query(`create sequence ${schema}.${probeName(shape)}`)
    // nextval() behind a function of ours: a query calling nextval() itself is never cached.
    await admin.query(`create function ${schema}.drill_probe(seq regclass) returns bigint volatile language sql as 'select nextval(seq)'`)
    await admin.query(`analyze ${schema}.drill_item`)
    await sampler.connect()
    const shapeOfSequence = new Map(Array.from({ length: S.shapes }, (_, shape) => [probeName(shape), shape]))
    const readProbes = async (): Promise<Float64Array> => {
      const { rows } = await sampler.query<{ name: string; value: string }>(
        `select sequencename as name, coalesce(last_value, 0)::text as value from pg_sequences where schemaname = $1`,
        [schema],
      )
      const counts = new Float64Array(S.shapes)
      for (const row of rows) {
        const shape = shapeOfSequence.get(row.name)
        if (shape !== undefined) counts[shape] = Number(row.value)
      }
      return counts
    }

    cluster = await startMemcached(4)
    const zipf = new Zipf(S.shapes, S.zipf)
    const placement = await placementOf(cluster, schema, zipf)
    const victim = cluster.nodes[placement.killed.index]!
    console.log(
      `nodes ${cluster.servers.join(', ')}; kill ${placement.killed.address}: ${placement.killed.shapes} of ${S.shapes} shapes, ${round(100 * placement.killed.requestShare, 1)} % of requests; ` +
        `generation keys on it: ${placement.generationKeys.filter((g) => g.onKilledNode).map((g) => g.key).join(', ') || 'none'}`,
    )

    const results: ConfigurationResult[] = []
    for (const name of CONFIGS) {
      results.push(await runConfiguration(name, cluster, victim, schema, placement, readProbes))
    }
    report(machine, placement, results, (Date.now() - started) / 1000)
  } finally {
    await sampler.end().catch(() => {})
    await admin.query(`drop schema if exists ${schema} cascade`).catch(() => {})
    await admin.end().catch(() => {})
    await cluster?.stopAll()
  }
}

function report(machine: Awaited<ReturnType<typeof describeMachine>>, placement: Placement, results: ConfigurationResult[], elapsed: number): void {
  const byName = new Map(results.map((r) => [r.name, r]))
  const ours = byName.get('default')
  const off = byName.get('off')
  const latencyBudget = S.sleepMs + 50
  const targets = ours?.summary.afterKill
    ? {
        peakOverSteady: { value: ours.summary.afterKill.peakOverSteady, target: 1.3, met: (ours.summary.afterKill.peakOverSteady ?? Infinity) <= 1.3 },
        lostKeyExecutionsPerLostKey: {
          value: ours.summary.killWave?.executionsPerLostKey ?? null,
          target: 0.3,
          met: (ours.summary.killWave?.executionsPerLostKey ?? Infinity) <= 0.3,
        },
        excessLostKeyExecutionsPerLostKey: {
          value: ours.summary.killWave?.excessExecutionsPerLostKey ?? null,
          target: 0.3,
          met: (ours.summary.killWave?.excessExecutionsPerLostKey ?? Infinity) <= 0.3,
        },
        p99AfterKillMs: { value: ours.summary.afterKill.latency?.p99Ms ?? null, target: latencyBudget, met: (ours.summary.afterKill.latency?.p99Ms ?? Infinity) <= latencyBudget },
        errors: { value: ours.summary.errors, target: 0, met: ours.summary.errors === 0 },
        steadyCv: { value: ours.summary.steady.dbExecutionsCv, target: 0.15, met: ours.summary.steady.dbExecutionsCv <= 0.15 },
        ...saturationTargets(byName),
      }
    : null
  const peakRatioOffOverDefault =
    off?.summary.afterKill && ours?.summary.afterKill && ours.summary.afterKill.peakDbExecutionsPerSecond > 0
      ? round(off.summary.afterKill.peakDbExecutionsPerSecond / ours.summary.afterKill.peakDbExecutionsPerSecond, 2)
      : null

  const header = [
    'configuration',
    'req/s',
    'steady DB/s',
    'steady CV',
    'peak DB/s after kill',
    'peak/steady',
    'lost-key execs / lost keys (excess over steady)',
    'return-wave execs / distinct',
    'p99 steady ms',
    'p99 after kill ms',
    'p99.9 after kill ms',
    'max after kill ms',
    'errors',
  ]
  const rows = results.map((r) => {
    const s = r.summary
    return [
      r.label,
      s.steady.requestsPerSecond,
      s.steady.dbExecutionsPerSecond,
      s.steady.dbExecutionsCv,
      s.afterKill?.peakDbExecutionsPerSecond ?? '–',
      s.afterKill?.peakOverSteady ?? '–',
      s.killWave ? `${s.killWave.lostExecutions} / ${s.killWave.lostShapes} = ${s.killWave.executionsPerLostKey} (${s.killWave.excessExecutionsPerLostKey})` : '–',
      s.restartWave ? `${s.restartWave.lostExecutions} / ${s.restartWave.distinctLostExecuted} = ${s.restartWave.executionsPerDistinctLostKey}` : '–',
      s.steady.latency?.p99Ms ?? '–',
      s.afterKill?.latency?.p99Ms ?? '–',
      s.afterKill?.latency?.p999Ms ?? '–',
      s.afterKill?.latency?.maxMs ?? '–',
      s.errors,
    ]
  })
  console.log(`\nbench:drill — ${machineLine(machine)}; ${round(elapsed, 0)} s`)
  console.log(
    `${S.workers} workers × ${S.vus} users, think ${S.thinkMs} ms, ${S.shapes} shapes Zipf(${S.zipf}), query pg_sleep ${S.sleepMs} ms, TTL ${S.ttlBase} s × 0.5–1.5; ` +
      `kill at ${KILL_SEC} s, restart at ${RESTART_SEC} s; lost shapes ${placement.lostShapes.length}\n`,
  )
  console.log(formatTable(header, rows))
  console.log('\nDB executions per second:')
  for (const r of results) console.log(`  ${r.label.padEnd(30)} ${r.perSecond.map((s) => s.dbExecutions).join(' ')}`)
  console.log('\nworkers: node out of the ring after the kill / back after the restart (s):')
  for (const r of results) {
    if (r.detection !== null) console.log(`  ${r.label.padEnd(30)} ${r.detection.nodeDownAfterKillSeconds.join(' ')} / ${r.detection.nodeUpAfterRestartSeconds.join(' ')}`)
  }
  if (targets !== null) {
    console.log('\ntargets (library defaults):')
    for (const [name, t] of Object.entries(targets)) console.log(`  ${name.padEnd(34)} ${String(t.value).padStart(8)}  target ${t.target}  ${t.met ? 'met' : 'NOT met'}`)
  }
  if (peakRatioOffOverDefault !== null) console.log(`  peak after kill, safe mode off / defaults: ${peakRatioOffOverDefault}`)
  console.log(`\n${markdownTable(header, rows)}\n`)

  const base = flags.out ?? `drill-${today()}`
  const settings = { ...S, configs: CONFIGS, killSecond: KILL_SEC, restartSecond: RESTART_SEC, cacheSeconds: CACHE_SECONDS, namespace: NAMESPACE }
  const chartInput = { settings, placement, configurations: results }
  const svgPath = writeResult(`${base}.svg`, executionsChart(chartInput))
  const latencySvgPath = writeResult(`${base}-latency.svg`, latencyChart(chartInput))
  const jsonPath = writeResult(`${base}.json`, {
    benchmark: 'drill',
    date: new Date().toISOString(),
    machine,
    elapsedSeconds: round(elapsed, 0),
    settings,
    placement,
    targets,
    peakRatioOffOverDefault,
    configurations: results,
    charts: { dbExecutions: svgPath, p99Latency: latencySvgPath },
  })
  console.log(`wrote ${jsonPath}, ${svgPath} and ${latencySvgPath}`)
}

main().catch(couldNotRun)

/** Standard deviation over mean (0 for a flat or empty series). */
function coefficientOfVariation(values: readonly number[]): number {
  if (values.length === 0) return 0
  const mean = values.reduce((a, b) => a + b, 0) / values.length
  if (mean === 0) return 0
  const variance = values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / values.length
  return Math.sqrt(variance) / mean
}

/**
 * The saturating drill's targets, when it ran `bare` and `default`: without protection the
 * database saturates (p99 after the kill ≥ 10 × steady); with the defaults it does not
 * (p99 after the kill ≤ 2 × steady, 0 errors).
 */
function saturationTargets(byName: ReadonlyMap<string, ConfigurationResult>): Record<string, { value: number | null; target: number; met: boolean }> {
  const bare = byName.get('bare')?.summary
  const ours = byName.get('default')?.summary
  if (bare?.afterKill === undefined || bare.afterKill === null || ours?.afterKill === undefined || ours.afterKill === null) return {}
  const ratio = (s: typeof bare): number | null => {
    const steady = s.steady.latency?.p99Ms
    const after = s.afterKill?.latency?.p99Ms
    return steady === undefined || after === undefined || steady === 0 ? null : round(after / steady, 2)
  }
  const bareRatio = ratio(bare)
  const ourRatio = ratio(ours)
  return {
    bareP99AfterKillOverSteady: { value: bareRatio, target: 10, met: (bareRatio ?? 0) >= 10 },
    defaultP99AfterKillOverSteady: { value: ourRatio, target: 2, met: (ourRatio ?? Infinity) <= 2 },
  }
}
