/**
 * npm run bench:drill — the seed's scenario as a repeatable drill: what the database
 * sees when a memcached node dies under load, in several configurations.
 *
 * 4 memcached nodes, PostgreSQL, the health monitor (in this process) and P worker
 * processes × C virtual users. Timeline: warm-up → steady → kill -9 one node →
 * incident → restart it → recovery. Configurations: no cache; cache with safe mode
 * off; the library's defaults; the defaults without early refresh and jitter; with
 * swr; … (see --help).
 *
 * Two workloads:
 * - `web-farm` (the default): each worker runs examples/web-farm's app (createApp:
 *   its pages, queries and cache options, its own pool, cache client, Kysely and HTTP
 *   server) and its virtual users are the example's load generator (load.ts) sending
 *   to it. Database executions are counted below the library by a counting pg Client
 *   in the app's pool (bench/lib/counting-client.ts), reported by each worker per second.
 * - `synthetic`: K expensive query shapes with Zipf popularity, run directly; every
 *   shape's query calls `nextval` of its own sequence, sampled once a second from here.
 *
 * Every request is classified hit / stale / miss from the library's query diagnostics
 * channel, so the swr configuration's stale answers are timed apart from hits.
 *
 * Writes bench/results/drill-<date>[-web-farm].json, .svg and -latency.svg. `--help` for the flags.
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
  Zipf,
  type DrillConfigurationName,
  type DrillWorkload,
  type WorkerConfig,
  type WorkerDone,
  type WorkerEvent,
  type WorkerSecond,
} from './lib/drill-shapes.js'
import { CONFIG_INFO, configLabel, executionsChart, latencyChart } from './lib/drill-charts.js'
import { seedSizes, seedWebFarm, WEB_FARM_PAGES, webFarmGenerationKeys } from './lib/drill-web-farm.js'
import { CACHE_OUTCOMES } from '../examples/web-farm/cache-outcome.js'

const HELP = `npm run bench:drill -- [flags]
  --workload web-farm  web-farm: each worker runs examples/web-farm's app and the example's load generator's
                       users against it (the default); synthetic: K query shapes run directly (below)
  --workers 4          worker processes (P)
  --vus 25             virtual users per worker (C) (web-farm: 20)
  --think-ms 100       mean think time of a virtual user between requests (uniform 0.5–1.5 ×) (web-farm: 400)
  --zipf 1             Zipf exponent (of article popularity, or of shape popularity)
  --warmup 8 --steady 12 --incident 20 --recovery 20   (web-farm: --warmup 20 --steady 20)
                       phase durations, s: kill at warmup+steady, restart after incident
  --settle-ms 10000    monitor: all nodes up this long before normal again (default of the library: 30000)
  --interval-ms 1000   monitor probe interval
  --mode-refresh-ms 1000  workers: how often they read the shared flag (library default)
  --window 5           s after the kill (and the restart) in which executions are counted apart
  --nocache-seconds 20 duration of the no-cache configuration (the database is the bottleneck there)
  --nocache-vus N      virtual users per worker without cache (default: --vus)
  --configs …          web-farm: nocache,off,default,unflat,swr; synthetic: nocache,off,original,default.
                       nocache = no cache; off = safe mode off; original = safe mode 5 s × 6; default = the
                       library's defaults; far = defaults without the near cache; unflat = defaults without early
                       refresh and TTL jitter; swr = defaults with swr (web-farm: the pages' swr windows as the
                       example ships them, which every other configuration runs without; synthetic: swr = ttl);
                       bare = the cache without any protection: no safe mode, near cache, early refresh, jitter
                       or hot copies
  --kill-node gen      node to kill: gen (the one holding the namespace generation's first copy, which
                       every cached read needs: the worst case), nogen (synthetic: largest request share among
                       the nodes holding no generation; web-farm: the first node holding no generation's first
                       copy), auto (synthetic only: largest request share), or an index 0–3
  --pool 4             pg pool size per worker: the database's capacity is workers × pool concurrent queries
  --seed 1
  --out name           result file base name (default drill-<date>-web-farm, or drill-<date> for synthetic)
 web-farm workload:
  --articles 5000      articles seeded (10 comments each, 200 authors: the example's proportions)
  --write-share 0.002  fraction of requests that post a comment (load.ts's default)
  --query-cost-ms 40   database time added to every page query (app.ts queryCostMs: a pg_sleep per execution)
  --ttl-scale 0.25     multiplies the pages' TTL and swr windows (app.ts ttlScale), so a run holds several TTLs
  --timeout-ms 5000    a request without an answer by then is an error (load.ts's default)
 synthetic workload:
  --shapes 200         query shapes (K), Zipf popularity
  --sleep-ms 40        pg_sleep of each shape's query
  --ttl 10             base TTL, s; each shape gets 0.5–1.5 × this (spread, fixed per shape)
  --statement-timeout-ms 0  PostgreSQL statement_timeout of the workers' connections (production-like: a query
                       that queues too long fails); 0 = none`

const { values: flags } = parseArgs({
  options: {
    workload: { type: 'string', default: 'web-farm' },
    workers: { type: 'string', default: '4' },
    vus: { type: 'string' },
    shapes: { type: 'string' },
    zipf: { type: 'string', default: '1' },
    'sleep-ms': { type: 'string' },
    'think-ms': { type: 'string' },
    ttl: { type: 'string' },
    warmup: { type: 'string' },
    steady: { type: 'string' },
    incident: { type: 'string', default: '20' },
    recovery: { type: 'string', default: '20' },
    'settle-ms': { type: 'string', default: '10000' },
    'interval-ms': { type: 'string', default: '1000' },
    'mode-refresh-ms': { type: 'string', default: '1000' },
    window: { type: 'string', default: '5' },
    'nocache-seconds': { type: 'string', default: '20' },
    'nocache-vus': { type: 'string' },
    configs: { type: 'string' },
    'kill-node': { type: 'string', default: 'gen' },
    pool: { type: 'string', default: '4' },
    'statement-timeout-ms': { type: 'string' },
    articles: { type: 'string' },
    'write-share': { type: 'string' },
    'query-cost-ms': { type: 'string' },
    'ttl-scale': { type: 'string' },
    'timeout-ms': { type: 'string' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (flags.help) {
  console.log(HELP)
  process.exit(0)
}
const WORKLOAD = flags.workload as DrillWorkload
if (WORKLOAD !== 'web-farm' && WORKLOAD !== 'synthetic') couldNotRun(new RangeError(`--workload must be web-farm or synthetic, got ${flags.workload}`))
const WEB_FARM = WORKLOAD === 'web-farm'
/** Flags of one workload only: given with the other, they would be ignored. */
const SYNTHETIC_FLAGS = ['shapes', 'sleep-ms', 'ttl', 'statement-timeout-ms'] as const
const WEB_FARM_FLAGS = ['articles', 'write-share', 'query-cost-ms', 'ttl-scale', 'timeout-ms'] as const
for (const name of WEB_FARM ? SYNTHETIC_FLAGS : WEB_FARM_FLAGS) {
  if (flags[name] !== undefined) couldNotRun(new RangeError(`--${name} is a flag of the ${WEB_FARM ? 'synthetic' : 'web-farm'} workload: add --workload ${WEB_FARM ? 'synthetic' : 'web-farm'}`))
}
flags.shapes ??= '200'
flags['sleep-ms'] ??= '40'
flags.ttl ??= '10'
flags['statement-timeout-ms'] ??= '0'
flags.articles ??= '5000'
flags['write-share'] ??= '0.002'
flags['query-cost-ms'] ??= '40'
flags['ttl-scale'] ??= '0.25'
flags['timeout-ms'] ??= '5000'
/** Defaults that differ by workload. */
flags.vus ??= WEB_FARM ? '20' : '25'
flags['think-ms'] ??= WEB_FARM ? '400' : '100'
flags.warmup ??= WEB_FARM ? '20' : '8'
flags.steady ??= WEB_FARM ? '20' : '12'
flags.configs ??= WEB_FARM ? 'nocache,off,default,unflat,swr' : 'nocache,off,original,default'

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
  workload: WORKLOAD,
  articles: num('articles', 1),
  writeShare: num('write-share'),
  queryCostMs: num('query-cost-ms'),
  ttlScale: num('ttl-scale', 0.01),
  timeoutMs: num('timeout-ms', 1),
}
if (S.writeShare > 1) couldNotRun(new RangeError(`--write-share must be from 0 to 1, got ${S.writeShare}`))
if (WEB_FARM && flags['kill-node'] === 'auto') couldNotRun(new RangeError('--kill-node auto needs the synthetic workload (its keys are known in advance); use gen, nogen or an index'))
const CONFIGS = (flags.configs ?? '').split(',').map((c) => c.trim()) as DrillConfigurationName[]
for (const c of CONFIGS) if (!(c in CONFIG_INFO)) couldNotRun(new Error(`unknown configuration ${c}`))
const NAMESPACE = WEB_FARM ? 'drill-web-farm' : 'drill'
/** The pages requests are reported by: the web farm's, or one for the synthetic shapes. */
const PAGES: readonly string[] = WEB_FARM ? WEB_FARM_PAGES : ['shape']
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
  /** `requestShare` and `shapes`: synthetic only (the web farm's keys are not known in advance). */
  killed: { index: number; address: string; rule: string; requestShare: number | null; shapes: number | null }
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

/** The web farm's placement: only the generation keys are known in advance. */
async function webFarmPlacementOf(cluster: MemcachedCluster, schema: string): Promise<Placement> {
  const store = new MemcachedStore({ servers: cluster.servers })
  try {
    const keys = webFarmGenerationKeys(NAMESPACE, schema)
    const holders = new Set(keys.map((key) => store.nodeFor(key)))
    const requested = flags['kill-node'] ?? 'gen'
    const index =
      requested === 'gen'
        ? cluster.servers.indexOf(store.nodeFor(keys[0]!))
        : requested === 'nogen'
          ? cluster.servers.findIndex((address) => !holders.has(address))
          : Number(requested)
    if (!Number.isSafeInteger(index) || index < 0 || index >= cluster.servers.length) throw new RangeError(`--kill-node ${requested}: no such node`)
    const address = cluster.servers[index]!
    return {
      servers: cluster.servers,
      killed: { index, address, rule: requested, requestShare: null, shapes: null },
      nodeShares: [],
      lostShapes: [],
      generationKeys: keys.map((key) => {
        const firstCopyOn = store.nodeFor(key)
        return { key, firstCopyOn, onKilledNode: firstCopyOn === address }
      }),
    }
  } finally {
    await store.close()
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
  staleServed: number
  earlyRefreshes: number
  /** Web farm: the statements counted, by kind. */
  dbByKind?: Record<string, number>
}

/** A sorted latency set's summary. */
function summarize(sorted: Float64Array) {
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

async function runConfiguration(
  name: DrillConfigurationName,
  cluster: MemcachedCluster,
  victim: MemcachedNode,
  schema: string,
  placement: Placement,
  readProbes: (() => Promise<Float64Array>) | undefined,
) {
  const cached = name !== 'nocache'
  const duration = cached ? CACHE_SECONDS : S.nocacheSeconds
  const vus = cached ? S.vus : S.nocacheVus
  const label = configLabel(name, WORKLOAD)
  console.log(`\n── ${label}: ${S.workers} workers × ${vus} users, ${duration} s`)
  // Every configuration starts from the same state: all nodes up and empty (and, for the web farm, the same rows).
  await Promise.all(cluster.nodes.map((node) => (node.running ? node.flush() : node.restart())))
  if (WEB_FARM) await seedWebFarm(DATABASE_URL, schema, S.articles)

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

  interface Accumulated {
    requests: number
    errors: number
    latencies: number[]
    tags: string[]
    pageErrors: Record<string, number>
    modes: string[]
    stats: Record<string, number>
    dbExecutions: number
    dbByKind: Record<string, number>
  }
  const seconds = new Map<number, Accumulated>()
  const empty = (): Accumulated => ({ requests: 0, errors: 0, latencies: [], tags: [], pageErrors: {}, modes: [], stats: {}, dbExecutions: 0, dbByKind: {} })
  const workerEvents: WorkerEvent[] = []
  const workers: Worker[] = []
  try {
    for (let i = 0; i < S.workers; i++) {
      const config: WorkerConfig = {
        workload: WORKLOAD,
        ...(WEB_FARM
          ? { webFarm: { articles: S.articles, writeShare: S.writeShare, queryCostMs: S.queryCostMs, ttlScale: S.ttlScale, timeoutMs: S.timeoutMs } }
          : {}),
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
            s = empty()
            seconds.set(second.sec, s)
          }
          s.requests += second.requests
          s.errors += second.errors
          for (const ms of second.latencies) s.latencies.push(ms)
          for (const tag of second.tags) s.tags.push(tag)
          for (const [page, n] of Object.entries(second.pageErrors)) s.pageErrors[page] = (s.pageErrors[page] ?? 0) + n
          s.modes.push(second.mode)
          for (const [k, v] of Object.entries(second.stats)) s.stats[k] = (s.stats[k] ?? 0) + v
          s.dbExecutions += second.dbExecutions ?? 0
          for (const [k, v] of Object.entries(second.dbByKind ?? {})) s.dbByKind[k] = (s.dbByKind[k] ?? 0) + v
        }, (event) => workerEvents.push(event)),
      )
    }
    await Promise.all(workers.map((w) => w.ready))
    const start = Date.now() + 1000
    t0 = start
    const endAt = start + duration * 1000
    for (const w of workers) w.go(start, endAt)

    // Synthetic: the shapes' sequences, read once a second (the web farm's workers count their own statements).
    const snapshots: Float64Array[] = []
    const sampler =
      readProbes === undefined
        ? Promise.resolve()
        : (async () => {
            for (let k = 0; k <= duration; k++) {
              await sleep(start + k * 1000 - Date.now())
              snapshots[k] = await readProbes()
            }
          })()
    const events: Record<string, number> = {}
    const waves: Record<string, { before: Float64Array; after: Float64Array }> = {}
    const probe = async () => (readProbes === undefined ? new Float64Array(0) : readProbes())
    const incident = cached
      ? (async () => {
          await sleep(start + KILL_SEC * 1000 + EVENT_OFFSET_MS - Date.now())
          const beforeKill = await probe()
          events.kill = round((Date.now() - start) / 1000, 2)
          await victim.kill()
          console.log(`   [t=${events.kill}s] kill -9 ${victim.address}`)
          await sleep(start + (KILL_SEC + S.window) * 1000 - Date.now())
          waves.kill = { before: beforeKill, after: await probe() }
          await sleep(start + RESTART_SEC * 1000 + EVENT_OFFSET_MS - Date.now())
          const beforeRestart = await probe()
          events.restart = round((Date.now() - start) / 1000, 2)
          await victim.restart()
          console.log(`   [t=${events.restart}s] restarted ${victim.address} (empty)`)
          await sleep(start + (RESTART_SEC + S.window) * 1000 - Date.now())
          waves.restart = { before: beforeRestart, after: await probe() }
        })()
      : Promise.resolve()
    const dones = await Promise.all(workers.map((w) => w.done))
    await Promise.all([sampler, incident])
    await Promise.all(workers.map((w) => Promise.race([w.exited, sleep(5000)])))

    const sum = (values: Float64Array): number => values.reduce((a, b) => a + b, 0)
    const perSecond: Second[] = []
    for (let t = 0; t < duration; t++) {
      const s = seconds.get(t) ?? empty()
      const sorted = Float64Array.from(s.latencies).sort()
      const state = states.filter((x) => x.at !== null && x.at <= t + 1).at(-1)
      perSecond.push({
        t,
        dbExecutions: readProbes === undefined ? s.dbExecutions : sum(snapshots[t + 1]!) - sum(snapshots[t]!),
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
        staleServed: s.stats.staleServed ?? 0,
        earlyRefreshes: s.stats.earlyRefreshes ?? 0,
        ...(WEB_FARM ? { dbByKind: s.dbByKind } : {}),
      })
    }
    /** Latencies of the requests completed in seconds [from, to) whose tag `keep` accepts, sorted. */
    const latenciesIn = (from: number, to: number, keep?: (page: string, outcome: string) => boolean): Float64Array => {
      const all: number[] = []
      for (let t = from; t < to; t++) {
        const s = seconds.get(t)
        if (s === undefined) continue
        s.latencies.forEach((ms, i) => {
          if (keep === undefined) return void all.push(ms)
          const [page = '', outcome = ''] = (s.tags[i] ?? '').split(' ')
          if (keep(page, outcome)) all.push(ms)
        })
      }
      return Float64Array.from(all).sort()
    }
    const latencySummary = (from: number, to: number, keep?: (page: string, outcome: string) => boolean) => summarize(latenciesIn(from, to, keep))
    const range = (from: number, to: number): Second[] => perSecond.slice(from, to)
    const meanOf = (xs: number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)
    const steadyFrom = cached ? S.warmup : Math.min(S.warmup, Math.floor(duration / 4))
    const steadyTo = cached ? KILL_SEC : duration
    const steady = range(steadyFrom, steadyTo)
    const steadyRate = meanOf(steady.map((s) => s.dbExecutions))
    const lost = new Set(placement.lostShapes)
    // Synthetic: executions per second of the shapes the kill did not touch, in steady state: what the wave windows would see anyway.
    let steadyOther = 0
    let steadyLost = 0
    if (readProbes !== undefined) {
      for (let shape = 0; shape < S.shapes; shape++) {
        const executed = snapshots[steadyTo]![shape]! - snapshots[steadyFrom]![shape]!
        if (lost.has(shape)) steadyLost += executed
        else steadyOther += executed
      }
    }
    const steadyOtherRate = steadyOther / Math.max(1, steadyTo - steadyFrom)
    // The lost shapes' own steady refreshes (TTL expiry) land in the window whether or not a node dies.
    const steadyLostRate = steadyLost / Math.max(1, steadyTo - steadyFrom)
    const wave = (w: { before: Float64Array; after: Float64Array } | undefined) => {
      if (w === undefined || readProbes === undefined) return null
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
    /** All executions in the whole seconds [from, from + window), against the steady rate: what the web farm can tell. */
    const windowAfter = (from: number) => {
      const executions = range(from, from + S.window).reduce((a, s) => a + s.dbExecutions, 0)
      const expected = steadyRate * S.window
      return { fromSecond: from, windowSeconds: S.window, executions, expectedFromSteady: round(expected, 1), excess: round(executions - expected, 1), overSteady: expected > 0 ? round(executions / expected, 2) : null }
    }
    const totalErrors = perSecond.reduce((a, s) => a + s.errors, 0)
    const totalRequests = perSecond.reduce((a, s) => a + s.requests, 0)
    const pageErrors = (from: number, to: number, page: string) => {
      let n = 0
      for (let t = from; t < to; t++) n += seconds.get(t)?.pageErrors[page] ?? 0
      return n
    }
    const requestsOf = (from: number, to: number, keep: (page: string, outcome: string) => boolean) => latenciesIn(from, to, keep).length
    const pages = Object.fromEntries(
      PAGES.map((page) => [
        page,
        {
          requests: requestsOf(0, duration, (p) => p === page),
          errors: pageErrors(0, duration, page),
          steady: latencySummary(steadyFrom, steadyTo, (p) => p === page),
          afterKill: cached ? latencySummary(KILL_SEC, duration, (p) => p === page) : null,
          errorsAfterKill: cached ? pageErrors(KILL_SEC, duration, page) : null,
        },
      ]),
    )
    // Requests by what the cache did for them (the query diagnostics channel, per request).
    const outcomes = Object.fromEntries(
      CACHE_OUTCOMES.map((outcome) => [
        outcome,
        {
          whole: latencySummary(0, duration, (_, o) => o === outcome),
          steady: latencySummary(steadyFrom, steadyTo, (_, o) => o === outcome),
          afterWarmup: latencySummary(steadyFrom, duration, (_, o) => o === outcome),
          byPage: Object.fromEntries(PAGES.map((page) => [page, latencySummary(0, duration, (p, o) => p === page && o === outcome)])),
        },
      ]),
    )
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
        // What independent (Poisson) executions at this rate would swing anyway: 1 / √rate.
        poissonCvFloor: steadyRate > 0 ? round(1 / Math.sqrt(steadyRate), 3) : null,
        requestsPerSecond: round(meanOf(steady.map((s) => s.requests)), 1),
        hitRatio: cached ? round(meanOf(steady.map((s) => s.hits)) / Math.max(1, meanOf(steady.map((s) => s.hits + s.misses))), 4) : null,
        latency: latencySummary(steadyFrom, steadyTo),
        dbByKind: WEB_FARM ? kindsPerSecond(steady) : null,
      },
      afterKill: cached
        ? {
            peakDbExecutionsPerSecond: Math.max(...range(KILL_SEC, duration).map((s) => s.dbExecutions)),
            peakDuringIncident: Math.max(...range(KILL_SEC, RESTART_SEC).map((s) => s.dbExecutions)),
            peakAfterRestart: Math.max(...range(RESTART_SEC, duration).map((s) => s.dbExecutions)),
            peakOverSteady: steadyRate > 0 ? round(Math.max(...range(KILL_SEC, duration).map((s) => s.dbExecutions)) / steadyRate, 2) : null,
            // The same measure on the steady seconds themselves: how high a second goes with no kill at all.
            steadyPeakOverSteady: steadyRate > 0 ? round(Math.max(...steady.map((s) => s.dbExecutions)) / steadyRate, 2) : null,
            dbExecutions: range(KILL_SEC, duration).reduce((a, s) => a + s.dbExecutions, 0),
            errors: range(KILL_SEC, duration).reduce((a, s) => a + s.errors, 0),
            latency: latencySummary(KILL_SEC, duration),
            latencyFirstWindow: latencySummary(KILL_SEC, KILL_SEC + S.window),
            latencyAfterRestart: latencySummary(RESTART_SEC, duration),
            killWindow: windowAfter(KILL_SEC),
            restartWindow: windowAfter(RESTART_SEC),
          }
        : null,
      killWave: wave(waves.kill),
      restartWave: wave(waves.restart),
      pages,
      outcomes,
    }
    const workerStats = dones.map((d) => d.stats)
    const errorSamples = [...new Set(dones.flatMap((d) => d.errorSamples))]
    const cacheErrorSamples = [...new Set(dones.flatMap((d) => d.cacheErrorSamples))]
    const appLogSamples = dones.flatMap((d) => d.logSamples ?? []).slice(0, 40)
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
      appLogSamples,
      loadAverageAtEnd: loadAverageNow(),
    }
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL')
    await monitor?.stop()
  }
}

/** Mean statements per second by kind over `seconds`. */
function kindsPerSecond(seconds: readonly Second[]): Record<string, number> {
  const total: Record<string, number> = {}
  for (const s of seconds) for (const [kind, n] of Object.entries(s.dbByKind ?? {})) total[kind] = (total[kind] ?? 0) + n
  return Object.fromEntries(Object.entries(total).map(([kind, n]) => [kind, round(n / Math.max(1, seconds.length), 1)]))
}

type ConfigurationResult = Awaited<ReturnType<typeof runConfiguration>>

async function main(): Promise<void> {
  const started = Date.now()
  const machine = await describeMachine()
  console.log(`bench:drill (${WORKLOAD}) — ${machineLine(machine)}`)
  const prefix = WEB_FARM ? 'bench_drill_farm_' : 'bench_drill_'
  const schema = `${prefix}${process.pid}`
  const admin = new pg.Client({ connectionString: DATABASE_URL })
  await admin.connect()
  await dropStaleSchemas(admin, prefix)
  let cluster: MemcachedCluster | undefined
  const sampler = new pg.Client({ connectionString: DATABASE_URL })
  // Ctrl-C: the finally below drops the schema and stops memcached (the workers die with their pipes).
  const interrupted = new Promise<never>((_, reject) => {
    const stop = (signal: string) => reject(new Error(`interrupted by ${signal}`))
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  interrupted.catch(() => {})
  try {
    let readProbes: (() => Promise<Float64Array>) | undefined
    if (WEB_FARM) {
      const ms = await seedWebFarm(DATABASE_URL, schema, S.articles)
      const sizes = seedSizes(S.articles)
      console.log(`seeded ${schema}: ${sizes.authors} authors, ${sizes.articles} articles, ${sizes.comments} comments in ${ms} ms (again before each configuration)`)
    } else {
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
      readProbes = async (): Promise<Float64Array> => {
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
    }

    cluster = await startMemcached(4)
    const zipf = new Zipf(S.shapes, S.zipf)
    const placement = WEB_FARM ? await webFarmPlacementOf(cluster, schema) : await placementOf(cluster, schema, zipf)
    const victim = cluster.nodes[placement.killed.index]!
    console.log(
      `nodes ${cluster.servers.join(', ')}; kill ${placement.killed.address}` +
        (placement.killed.shapes === null ? '' : `: ${placement.killed.shapes} of ${S.shapes} shapes, ${round(100 * placement.killed.requestShare!, 1)} % of requests`) +
        `; generation keys on it: ${placement.generationKeys.filter((g) => g.onKilledNode).map((g) => g.key).join(', ') || 'none'}`,
    )

    const results: ConfigurationResult[] = []
    for (const name of CONFIGS) {
      results.push(await Promise.race([runConfiguration(name, cluster, victim, schema, placement, readProbes), interrupted]))
    }
    report(machine, placement, results, (Date.now() - started) / 1000)
  } finally {
    await sampler.end().catch(() => {})
    await admin.query(`drop schema if exists ${schema} cascade`).catch(() => {})
    await admin.end().catch(() => {})
    await cluster?.stopAll()
  }
}

/** The swr target: requests served stale (past their TTL) against hits, p99, in the swr configuration. */
function swrTarget(result: ConfigurationResult | undefined) {
  if (result === undefined) return null
  const { hit, stale, miss } = result.summary.outcomes
  const from = (o: typeof hit) => o?.afterWarmup ?? null
  const staleP99 = from(stale)?.p99Ms ?? null
  const hitP99 = from(hit)?.p99Ms ?? null
  return {
    window: `seconds ${result.summary.steady.fromSecond}–${result.summary.durationSeconds} (after warm-up, the incident included)`,
    hit: from(hit),
    stale: from(stale),
    miss: from(miss),
    steadyOnly: { hit: hit?.steady ?? null, stale: stale?.steady ?? null, miss: miss?.steady ?? null },
    value: staleP99 === null || hitP99 === null ? null : round(staleP99 - hitP99, 1),
    target: 5,
    met: staleP99 !== null && hitP99 !== null && staleP99 <= hitP99 + 5,
  }
}

function report(machine: Awaited<ReturnType<typeof describeMachine>>, placement: Placement, results: ConfigurationResult[], elapsed: number): void {
  const byName = new Map(results.map((r) => [r.name, r]))
  const ours = byName.get('default')
  const off = byName.get('off')
  const unflat = byName.get('unflat')
  const swr = swrTarget(byName.get('swr'))
  const latencyBudget = S.sleepMs + 50
  const cvTarget = ours
    ? {
        value: ours.summary.steady.dbExecutionsCv,
        target: 0.15,
        met: ours.summary.steady.dbExecutionsCv <= 0.15,
        unflat: unflat?.summary.steady.dbExecutionsCv ?? null,
        poissonFloor: ours.summary.steady.poissonCvFloor,
      }
    : null
  const targets = ours?.summary.afterKill
    ? {
        peakOverSteady: { value: ours.summary.afterKill.peakOverSteady, target: 1.3, met: (ours.summary.afterKill.peakOverSteady ?? Infinity) <= 1.3 },
        ...(WEB_FARM
          ? {}
          : {
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
            }),
        errors: { value: ours.summary.errors, target: 0, met: ours.summary.errors === 0 },
        steadyCv: cvTarget!,
        ...(swr === null ? {} : { swrStaleP99OverHitP99Ms: { value: swr.value, target: swr.target, met: swr.met } }),
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
    'hit ratio',
    'steady DB/s',
    'steady CV',
    'peak DB/s after kill',
    'peak/steady',
    WEB_FARM ? 'DB execs 5 s after kill / steady' : 'lost-key execs / lost keys (excess over steady)',
    WEB_FARM ? 'DB execs 5 s after restart / steady' : 'return-wave execs / distinct',
    'p99 steady ms',
    'p99 after kill ms',
    'p99.9 after kill ms',
    'max after kill ms',
    'errors',
  ]
  const rows = results.map((r) => {
    const s = r.summary
    const w = (x: { executions: number; expectedFromSteady: number; overSteady: number | null } | undefined) =>
      x === undefined ? '–' : `${x.executions} / ${x.expectedFromSteady} = ${x.overSteady ?? '–'}`
    return [
      r.label,
      s.steady.requestsPerSecond,
      s.steady.hitRatio ?? '–',
      s.steady.dbExecutionsPerSecond,
      s.steady.dbExecutionsCv,
      s.afterKill?.peakDbExecutionsPerSecond ?? '–',
      s.afterKill?.peakOverSteady ?? '–',
      WEB_FARM
        ? w(s.afterKill?.killWindow)
        : s.killWave
          ? `${s.killWave.lostExecutions} / ${s.killWave.lostShapes} = ${s.killWave.executionsPerLostKey} (${s.killWave.excessExecutionsPerLostKey})`
          : '–',
      WEB_FARM
        ? w(s.afterKill?.restartWindow)
        : s.restartWave
          ? `${s.restartWave.lostExecutions} / ${s.restartWave.distinctLostExecuted} = ${s.restartWave.executionsPerDistinctLostKey}`
          : '–',
      s.steady.latency?.p99Ms ?? '–',
      s.afterKill?.latency?.p99Ms ?? '–',
      s.afterKill?.latency?.p999Ms ?? '–',
      s.afterKill?.latency?.maxMs ?? '–',
      s.errors,
    ]
  })
  // Per page: requests, errors, p50/p99 steady and after the kill.
  const pageHeader = ['configuration', 'page', 'requests', 'errors', 'p50 steady ms', 'p99 steady ms', 'p50 after kill ms', 'p99 after kill ms', 'max after kill ms']
  const pageRows = results.flatMap((r) =>
    PAGES.map((page) => {
      const p = r.summary.pages[page]!
      return [r.label, page, p.requests, p.errors, p.steady?.p50Ms ?? '–', p.steady?.p99Ms ?? '–', p.afterKill?.p50Ms ?? '–', p.afterKill?.p99Ms ?? '–', p.afterKill?.maxMs ?? '–']
    }),
  )
  // By what the cache did (after warm-up).
  const outcomeHeader = ['configuration', 'cache outcome', 'requests', 'p50 ms', 'p99 ms', 'max ms']
  const outcomeRows = results.flatMap((r) =>
    CACHE_OUTCOMES.flatMap((outcome) => {
      const o = r.summary.outcomes[outcome]?.afterWarmup
      return o === null || o === undefined ? [] : [[r.label, outcome, o.requests, o.p50Ms, o.p99Ms, o.maxMs]]
    }),
  )
  const workloadLine = WEB_FARM
    ? `web farm: ${S.workers} workers (app.ts + load.ts users) × ${S.vus} users, think ${S.thinkMs} ms, ${S.articles} articles Zipf(${S.zipf}), ` +
      `write share ${S.writeShare}, query cost ${S.queryCostMs} ms, TTLs × ${S.ttlScale}, pool ${S.pool}`
    : `${S.workers} workers × ${S.vus} users, think ${S.thinkMs} ms, ${S.shapes} shapes Zipf(${S.zipf}), query pg_sleep ${S.sleepMs} ms, TTL ${S.ttlBase} s × 0.5–1.5`
  console.log(`\nbench:drill — ${machineLine(machine)}; ${round(elapsed, 0)} s`)
  console.log(`${workloadLine}; kill at ${KILL_SEC} s, restart at ${RESTART_SEC} s` + (WEB_FARM ? '\n' : `; lost shapes ${placement.lostShapes.length}\n`))
  console.log(formatTable(header, rows))
  console.log(`\n${formatTable(pageHeader, pageRows)}`)
  console.log(`\nrequests by cache outcome, after warm-up:\n${formatTable(outcomeHeader, outcomeRows)}`)
  console.log('\nDB executions per second:')
  for (const r of results) console.log(`  ${r.label.padEnd(42)} ${r.perSecond.map((s) => s.dbExecutions).join(' ')}`)
  if (WEB_FARM) {
    console.log('\nsteady DB executions per second by statement:')
    for (const r of results) console.log(`  ${r.label.padEnd(42)} ${Object.entries(r.summary.steady.dbByKind ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}`)
  }
  console.log('\nworkers: node out of the ring after the kill / back after the restart (s):')
  for (const r of results) {
    if (r.detection !== null) console.log(`  ${r.label.padEnd(42)} ${r.detection.nodeDownAfterKillSeconds.join(' ')} / ${r.detection.nodeUpAfterRestartSeconds.join(' ')}`)
  }
  for (const r of results) {
    if (r.errorSamples.length > 0) console.log(`  errors, ${r.label}: ${r.errorSamples.join(' | ')}`)
  }
  if (targets !== null) {
    console.log('\ntargets (library defaults):')
    for (const [name, t] of Object.entries(targets)) console.log(`  ${name.padEnd(34)} ${String(t.value).padStart(8)}  target ${t.target}  ${t.met ? 'met' : 'NOT met'}`)
    if (cvTarget !== null) console.log(`  steady CV: defaults ${cvTarget.value}, without early refresh and jitter ${cvTarget.unflat ?? '–'}, Poisson floor at the defaults' rate ${cvTarget.poissonFloor ?? '–'}`)
    console.log(`  peak/steady of the steady seconds themselves (no kill): defaults ${ours?.summary.afterKill?.steadyPeakOverSteady ?? '–'}`)
  }
  if (swr !== null) {
    console.log(
      `  swr: stale p99 ${swr.stale?.p99Ms ?? '–'} ms (${swr.stale?.requests ?? 0} requests) vs hit p99 ${swr.hit?.p99Ms ?? '–'} ms (${swr.hit?.requests ?? 0}); ` +
        `miss p99 ${swr.miss?.p99Ms ?? '–'} ms (${swr.miss?.requests ?? 0}): target stale ≤ hit + 5 ms ${swr.met ? 'met' : 'NOT met'}`,
    )
  }
  if (peakRatioOffOverDefault !== null) console.log(`  peak after kill, safe mode off / defaults: ${peakRatioOffOverDefault}`)
  console.log(`\n${markdownTable(header, rows)}\n\n${markdownTable(pageHeader, pageRows)}\n\n${markdownTable(outcomeHeader, outcomeRows)}\n`)

  const base = flags.out ?? (WEB_FARM ? `drill-${today()}-web-farm` : `drill-${today()}`)
  const settings = { ...S, configs: CONFIGS, killSecond: KILL_SEC, restartSecond: RESTART_SEC, cacheSeconds: CACHE_SECONDS, namespace: NAMESPACE, description: workloadLine }
  const chartInput = { settings, placement, configurations: results }
  const svgPath = writeResult(`${base}.svg`, executionsChart(chartInput))
  const latencySvgPath = writeResult(`${base}-latency.svg`, latencyChart(chartInput))
  const jsonPath = writeResult(`${base}.json`, {
    benchmark: 'drill',
    workload: WORKLOAD,
    date: new Date().toISOString(),
    machine,
    elapsedSeconds: round(elapsed, 0),
    settings,
    placement,
    targets,
    swr,
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
