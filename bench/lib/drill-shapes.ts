/**
 * The drill's workload, shared by the coordinator (which computes where each
 * shape's key lives) and the workers (which run the shapes).
 */
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
  type Generated,
} from 'kysely'

export interface DrillItemTable {
  id: Generated<number>
  bucket: number
  amount: string
  updated_at: Date
  label: string
}
export interface DrillDB {
  drill_item: DrillItemTable
}

/** Rows per shape (bucket): the aggregate always returns one row, so the probe always runs. */
/** The drill's processes name their key scope, so the orchestrator can derive their keys. */
export const DRILL_SCOPE = 'drill'
export const ROWS_PER_SHAPE = 20

/** The sequence a shape's query advances once per real execution. */
export function probeName(shape: number): string {
  return `drill_p${shape}`
}

/**
 * Shape `shape` of the expensive query: an aggregate over the shape's bucket, a
 * `pg_sleep` standing for the expensive part, and `nextval` of the shape's own
 * sequence (through `drill_probe()`, created by drill.ts) so the database counts,
 * outside the library, how often it really ran.
 */
export function shapeQuery(db: Kysely<DrillDB>, shape: number, sleepSeconds: number) {
  return db
    .selectFrom('drill_item')
    .select([
      'bucket',
      sql<number>`count(*)::int`.as('n'),
      sql<string>`sum(amount)::text`.as('total'),
      sql<Date>`max(updated_at)`.as('latest'),
      sql<string>`pg_sleep(${sleepSeconds})::text`.as('slept'),
      sql<string>`drill_probe(${probeName(shape)}::regclass)::text`.as('execution'),
    ])
    .where('bucket', '=', shape)
    .groupBy('bucket')
}

/** A Kysely that only compiles (PostgreSQL dialect), for deriving keys without a database. */
export function compileOnlyDb(): Kysely<DrillDB> {
  return new Kysely<DrillDB>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  })
}

/**
 * Each shape's TTL, spread deterministically over 0.5–1.5 × `base` (golden-ratio
 * sequence), so entries filled together at the start do not all expire together.
 */
export function shapeTtl(shape: number, base: number): number {
  const fraction = (shape * 0.6180339887498949) % 1
  return Math.max(1, Math.round(base * (0.5 + fraction)))
}

/** Zipf(s) popularity over shapes 0…n-1 (shape 0 the most requested). */
export class Zipf {
  readonly #cdf: Float64Array
  readonly weights: Float64Array

  constructor(n: number, s: number) {
    this.weights = new Float64Array(n)
    let total = 0
    for (let i = 0; i < n; i++) {
      this.weights[i] = 1 / (i + 1) ** s
      total += this.weights[i]!
    }
    this.#cdf = new Float64Array(n)
    let running = 0
    for (let i = 0; i < n; i++) {
      this.weights[i]! /= total
      running += this.weights[i]!
      this.#cdf[i] = running
    }
  }

  /** A shape for a uniform random number in [0, 1). */
  sample(u: number): number {
    let lo = 0
    let hi = this.#cdf.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#cdf[mid]! > u) hi = mid
      else lo = mid + 1
    }
    return lo
  }
}

/**
 * What the drill's users request: `web-farm` (the default) runs examples/web-farm's app
 * in each worker and its load generator's users against it; `synthetic` runs the
 * query shapes of this file directly.
 */
export type DrillWorkload = 'web-farm' | 'synthetic'

/** The web-farm workload's settings (see bench/lib/drill-web-farm.ts). */
export interface WebFarmWorkerSettings {
  /** Article ids 1..articles, as seeded. */
  readonly articles: number
  /** Fraction of requests that post a comment. */
  readonly writeShare: number
  /** app.ts `queryCostMs`: database time added to each page query. */
  readonly queryCostMs: number
  /** app.ts `ttlScale`. */
  readonly ttlScale: number
  /** A request without an answer by then is an error, ms. */
  readonly timeoutMs: number
}

/** What the coordinator passes to each worker (as JSON in argv). */
export interface WorkerConfig {
  readonly workload: DrillWorkload
  /** Set for the web-farm workload. */
  readonly webFarm?: WebFarmWorkerSettings
  readonly configuration: DrillConfigurationName
  readonly workerIndex: number
  readonly servers: readonly string[]
  readonly namespace: string
  readonly schema: string
  readonly databaseUrl: string
  readonly vus: number
  readonly thinkMs: number
  readonly shapes: number
  readonly zipf: number
  readonly sleepSeconds: number
  readonly ttlBase: number
  readonly seed: number
  readonly poolMax: number
  /** PostgreSQL statement_timeout of the workers' connections, ms (0: none). */
  readonly statementTimeoutMs: number
  readonly modeRefreshMs: number
}

export type DrillConfigurationName = 'nocache' | 'bare' | 'off' | 'original' | 'default' | 'far' | 'unflat' | 'swr'

/** One second of one worker, as sent to the coordinator. */
export interface WorkerSecond {
  readonly type: 'second'
  readonly worker: number
  /** Whole seconds since the drill's t0, by completion time. */
  readonly sec: number
  readonly requests: number
  readonly errors: number
  /** Latency of each completed request, ms (0.01 ms resolution). */
  readonly latencies: number[]
  /** Per request, in the order of `latencies`: `page outcome` (outcome: hit, stale, miss, none; see examples/web-farm/cache-outcome.ts). */
  readonly tags: string[]
  /** Failed requests per page. */
  readonly pageErrors: Record<string, number>
  /** Statements the database answered for this worker in the second (web-farm workload: its counting pg client). */
  readonly dbExecutions?: number
  /** The same, by kind of statement. */
  readonly dbByKind?: Record<string, number>
  /** This process's cache mode at the end of the second. */
  readonly mode: string
  /** Cache counters accumulated during the second. */
  readonly stats: Record<string, number>
}

/** A cache event in a worker (node left or rejoined its ring, mode change), timed from t0. */
export interface WorkerEvent {
  readonly type: 'event'
  readonly worker: number
  /** Seconds since t0. */
  readonly at: number
  readonly event: string
  readonly detail: string
}

export interface WorkerDone {
  readonly type: 'done'
  readonly worker: number
  readonly stats: Record<string, number> | null
  readonly errorSamples: string[]
  readonly cacheErrorSamples: string[]
  /** The app's own log lines (web-farm workload), the first few. */
  readonly logSamples?: string[]
}
