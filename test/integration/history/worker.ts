/**
 * One OS process of the history run: a writer or a reader with its own pool,
 * cache and Kysely, logging every operation to a JSON-lines file. Started by
 * run.ts; prints READY, starts on GO, stops on STOP (or at its deadline).
 *
 * Environment: HISTORY_ROLE (writer | reader), HISTORY_NAME, HISTORY_CONFIG (JSON of {@link WorkerConfig}).
 */
import { createWriteStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { Kysely, PostgresDialect, sql, type Dialect } from 'kysely'
import pg from 'pg'
import { createQueryCache, declareWrites, InvalidationFailedError } from '../../../src/index.js'
import { beforeEachStatement } from '../../harness/database.js'
import { now, type HistoryEvent, type ReadEvent } from './events.js'

export interface WorkerConfig {
  readonly databaseUrl: string
  readonly schema: string
  readonly servers: readonly string[]
  readonly namespace: string
  readonly logFile: string
  /** Writer: the rows it owns (only it writes them, so its values rise monotonically). */
  readonly ids: readonly number[]
  /** Every row id readers may ask for. */
  readonly allIds: readonly number[]
  /** Reader: concurrent read loops (several, so reads of one process coalesce). */
  readonly loops: number
  /** Pause between a loop's operations, ms. */
  readonly pauseMs: number
  /** Extra cache options (JSON-able), e.g. a near cache. */
  readonly cacheOptions?: Record<string, unknown>
  /** Options of every `.cached(cachedOptions)` read, e.g. a short TTL with `swr`. */
  readonly cachedOptions?: { readonly ttl?: number; readonly swr?: number }
}

interface Tables {
  register: { id: number; v: number }
  label: { id: number; name: string; grp: number }
}

const role = process.env.HISTORY_ROLE
const name = process.env.HISTORY_NAME ?? `${role}-${process.pid}`
const config = JSON.parse(process.env.HISTORY_CONFIG ?? '{}') as WorkerConfig
const cachedOptions = config.cachedOptions ?? {}
const HISTORY_SECRET = 'history checker signing secret'

const log = createWriteStream(config.logFile, { flags: 'a' })
const record = (event: HistoryEvent): void => {
  log.write(JSON.stringify(event) + '\n')
}

let unrecorded = false
const cache = createQueryCache({
  servers: config.servers,
  namespace: config.namespace,
  defaultSchema: config.schema,
  retryAfterMs: 1000,
  settleMs: 3000,
  onError: (error) => {
    if (error instanceof InvalidationFailedError) unrecorded = true
  },
  // Signed, as a farm on an untrusted network runs: verification is on every read the checker judges.
  secret: HISTORY_SECRET,
  ...config.cacheOptions,
})

const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 4, options: `-c search_path=${config.schema}` })
const db = new Kysely<Tables>({ dialect: cache.wrapDialect(countExecutions(new PostgresDialect({ pool }))) })
// Half the reads go through a dialect that caches every select (cacheAll), with no `.cached()` at all.
const allPool = new pg.Pool({ connectionString: config.databaseUrl, max: 2, options: `-c search_path=${config.schema}` })
const cachingAll = new Kysely<Tables>({ dialect: cache.wrapDialect(countExecutions(new PostgresDialect({ pool: allPool })), { cacheAll: cachedOptions }) })

/** Logs each statement that reads `register` below the cache: database work the library cannot hide. */
function countExecutions(dialect: Dialect): Dialect {
  return beforeEachStatement(dialect, (compiled) => {
    if (role === 'reader' && /^select/i.test(compiled.sql) && compiled.sql.includes('"register"')) {
      record({ type: 'execution', process: name, at: now() })
    }
  })
}

let stopping = false

const WRITES = ['update', 'transaction', 'startTransaction', 'returning', 'cte', 'raw-declared', 'raw', 'rollback'] as const

async function write(how: (typeof WRITES)[number], id: number, value: number): Promise<void> {
  switch (how) {
    case 'update':
      await db.updateTable('register').set({ v: value }).where('id', '=', id).execute()
      return
    case 'transaction':
      await db.transaction().execute((trx) => trx.updateTable('register').set({ v: value }).where('id', '=', id).execute())
      return
    case 'startTransaction': {
      const trx = await db.startTransaction().execute()
      try {
        await trx.updateTable('register').set({ v: value }).where('id', '=', id).execute()
      } catch (error) {
        await trx.rollback().execute()
        throw error
      }
      await trx.commit().execute()
      return
    }
    case 'returning': {
      const row = await db.updateTable('register').set({ v: value }).where('id', '=', id).returning('v').executeTakeFirstOrThrow()
      if (row.v !== value) throw new Error(`returning gave ${row.v}, wrote ${value}`)
      return
    }
    case 'cte':
      await db
        .with('u', (qb) => qb.updateTable('register').set({ v: value }).where('id', '=', id).returning('id'))
        .selectFrom('u')
        .selectAll()
        .execute()
      return
    case 'raw-declared':
      await sql`update register set v = ${value} where id = ${id}`.withPlugin(declareWrites(['register'])).execute(db)
      return
    case 'raw':
      await sql`update register set v = ${value} where id = ${id}`.execute(db)
      return
    case 'rollback':
      await db
        .transaction()
        .execute(async (trx) => {
          await trx.updateTable('register').set({ v: value }).where('id', '=', id).execute()
          throw new RolledBack()
        })
        .catch((error: unknown) => {
          if (!(error instanceof RolledBack)) throw error
        })
  }
}

class RolledBack extends Error {}

async function writerLoop(): Promise<void> {
  const values = new Map(config.ids.map((id) => [id, 0]))
  for (let i = 0; !stopping; i++) {
    const id = config.ids[i % config.ids.length]!
    const how = WRITES[Math.floor(i / config.ids.length) % WRITES.length]!
    const rolledBack = how === 'rollback'
    // A rolled-back write uses a value no committed write ever has.
    const value = rolledBack ? -(i + 1) : values.get(id)! + 1
    unrecorded = false
    const start = now()
    let error: string | undefined
    try {
      await write(how, id, value)
    } catch (caught) {
      error = String((caught as Error)?.stack ?? caught)
    }
    const end = now()
    if (error === undefined && !rolledBack) values.set(id, value)
    record({ type: 'write', process: name, id, value, how, start, end, ok: error === undefined, unrecorded, rolledBack, ...(error === undefined ? {} : { error }) })
    await sleep(config.pauseMs)
  }
}

const READS = ['row', 'join', 'subquery', 'aggregate', 'all'] as const

async function read(query: (typeof READS)[number], id: number, everySelect: boolean): Promise<Array<[number, number]>> {
  const source = everySelect ? cachingAll : db
  // Through cacheAll the query says nothing; otherwise it opts in.
  const opted = <Q extends { cached(options: typeof cachedOptions): Q }>(qb: Q): Q => (everySelect ? qb : qb.cached(cachedOptions))
  switch (query) {
    case 'row':
      return (await opted(source.selectFrom('register').select(['id', 'v']).where('id', '=', id)).execute()).map((r) => [r.id, r.v])
    case 'join':
      return (
        await opted(source.selectFrom('register as r').innerJoin('label as l', 'l.id', 'r.id').select(['r.id', 'r.v', 'l.name']).where('r.id', '=', id)).execute()
      ).map((r) => [r.id, r.v])
    case 'subquery':
      return (
        await opted(
          source
            .selectFrom('register')
            .select(['id', 'v'])
            .where('id', 'in', (eb) => eb.selectFrom('label').select('label.id').where('grp', '=', id % 2))
            .orderBy('id'),
        ).execute()
      ).map((r) => [r.id, r.v])
    case 'aggregate':
      return (
        await opted(
          source
            .selectFrom('register')
            .select((eb) => ['id', eb.fn.max('v').as('v')])
            .where('id', '=', id)
            .groupBy('id'),
        ).execute()
      ).map((r) => [r.id, Number(r.v)])
    case 'all':
      return (await opted(source.selectFrom('register').select(['id', 'v']).orderBy('id')).execute()).map((r) => [r.id, r.v])
  }
}

async function readerLoop(seed: number): Promise<void> {
  for (let i = seed; !stopping; i++) {
    const query = READS[Math.floor(Math.random() * READS.length)]!
    const id = config.allIds[Math.floor(Math.random() * config.allIds.length)]!
    const start = now()
    let rows: Array<[number, number]> = []
    let error: string | undefined
    try {
      rows = await read(query, id, Math.random() < 0.5)
    } catch (caught) {
      error = String((caught as Error)?.stack ?? caught)
    }
    const event: ReadEvent = { type: 'read', process: name, query, start, end: now(), ok: error === undefined, rows, ...(error === undefined ? {} : { error }) }
    record(event)
    await sleep(config.pauseMs)
  }
}

async function main(): Promise<void> {
  // One query first, so a broken set-up fails before the run starts.
  await db.selectFrom('register').select('id').limit(1).execute()
  process.stdout.write('READY\n')
  const lines = createInterface({ input: process.stdin })
  let started: Promise<unknown> | undefined
  for await (const line of lines) {
    if (line === 'GO' && started === undefined) {
      started = role === 'writer' ? writerLoop() : Promise.all(Array.from({ length: config.loops }, (_, i) => readerLoop(i)))
    } else if (line === 'STOP') {
      stopping = true
      break
    }
  }
  await started
  await db.destroy()
  await cachingAll.destroy()
  await cache.close()
  await new Promise<void>((resolve) => log.end(resolve))
  process.stdout.write('DONE\n')
}

main().catch((error: unknown) => {
  process.stderr.write(`history worker ${name} failed: ${String((error as Error)?.stack ?? error)}\n`)
  process.exit(1)
})
