/**
 * npm run bench:hit — what a cache hit costs, against the floor and the hand-written alternative.
 *
 * One process, one data set (20 rows: text, timestamptz, bigint, numeric, jsonb), variants
 * interleaved round by round (the order rotates each round), one operation at a time:
 *
 *   A   the query through Kysely + pg, uncached
 *   B   floor of a remote hit: raw memjs get of the serialised rows + superjson parse
 *   C   hand-written cache-aside around Kysely with memjs: compile → key → get → parse
 *   C'  C plus one version key read in parallel and compared (the least a hand-written cache with invalidation needs)
 *   D   .cached() hit through kysely-memcache, memcached store, result in the near cache (the default):
 *       only the generations are read remotely
 *   D0  the same with the near cache off: the entry and its generations are read remotely
 *   E   .cached() hit through kysely-memcache, embedded (in-process) store
 *   Ds  D with a signing secret (HMAC-SHA256 on every value read); D0s: D0 with it
 *
 * and, to explain the difference, components measured in the same rounds:
 *
 *   k   Kysely: build + compile the query (no I/O)
 *   g1  one memjs get of the value (8 KB)
 *   g3  three memjs gets in parallel (value + 2 small keys: what a D hit sends)
 *   g3w the same three gets corked into one socket write
 *   p   superjson parse of the value
 *   s1  one MemcachedStore.get of D's entry (the library's store, no engine)
 *   s3  three MemcachedStore.get in parallel (D's entry and its 2 generations)
 *   key queryKey(): the library's key derivation (SHA-256 of SQL + typed parameters)
 *   gr  the two generation reads of D by majority (two homes each, the third only on disagreement)
 *   dec decodeEntry + decodeRows of D's entry (the library's codec: msgpackr row encoding)
 *   jp  JSON.parse of the same rows as plain JSON (the floor of any JSON-based codec)
 *   tc  prototype of a typed-column codec: JSON.parse + reviving only the Date/bigint columns
 *   vk  opening D's entry framed with its key's hash (no secret: what every read does by default)
 *   vs  opening D's entry signed with a secret (HMAC-SHA256 over key and bytes)
 *       (pg rows share their columns, so types are noted once per column, not per value)
 *
 * Flags: --rounds 24 --ops 2000 (per cached variant per round) --db-ops 400 (A per round)
 *        --warmup 3000 --nodes 1 --only D,E (profiling; writes no result unless --out) --out name.json
 *        --cork on|off (on): what-if variants D+cork, C'+cork and s3+cork, the same with every memjs
 *                socket (the library's included) sending the writes of one tick in one syscall
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Kysely, PostgresDialect, type Generated, type SelectQueryBuilder } from 'kysely'
import memjs from 'memjs'
import pg from 'pg'
import SuperJSON from 'superjson'
import { decodeEntry, decodeRows } from '../src/cache/codec.js'
import { Generations } from '../src/cache/generations.js'
import { createQueryCache, MemcachedStore, type QueryCache } from '../src/index.js'
import { namespaceGenerationKey, queryKey, tableGenerationKey } from '../src/keys.js'
import { explicitScopeId } from '../src/kysely/scope.js'
import { ValueSigner } from '../src/store/value-signer.js'
import { startMemcached, type MemcachedCluster } from '../test/harness/memcached.js'
import {
  couldNotRun,
  DATABASE_URL,
  describeMachine,
  dropStaleSchemas,
  formatTable,
  machineLine,
  markdownTable,
  mean,
  percentileSorted,
  round,
  sortedCopy,
  today,
  writeResult,
} from './lib/common.js'

/** Named, so the bench can derive the keys the cache writes. */
const SCOPE = 'benchhit'
const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '24' },
    ops: { type: 'string', default: '2000' },
    'db-ops': { type: 'string', default: '400' },
    warmup: { type: 'string', default: '3000' },
    nodes: { type: 'string', default: '1' },
    only: { type: 'string' },
    out: { type: 'string' },
    cork: { type: 'string', default: 'on' },
  },
})

const ROUNDS = positive(flags.rounds, 'rounds')
const OPS = positive(flags.ops, 'ops')
const DB_OPS = positive(flags['db-ops'], 'db-ops')
const WARMUP = positive(flags.warmup, 'warmup')
const NODES = positive(flags.nodes, 'nodes')

/** The secret of the Ds/D0s variants (a bench, not a deployment: any 16+ bytes do). */
const BENCH_SECRET = 'bench:hit signing secret, 32 B!'

function positive(text: string | undefined, name: string): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 1) couldNotRun(new RangeError(`--${name} must be a positive integer, got ${text}`))
  return value
}

interface ItemTable {
  id: Generated<number>
  title: string
  body: string
  created_at: Date
  big: bigint
  price: string
  meta: unknown
}
interface DB {
  item: ItemTable
}

type Rows = Array<Record<string, unknown>>
interface Variant {
  readonly id: string
  readonly component?: boolean
  readonly label: string
  readonly ops: number
  readonly run: () => Promise<Rows>
}

const SILENT = { log(): void {} }
const TTL = 3600

/** The query every variant answers: built anew per operation, as request-handling code does. */
function query(db: Kysely<DB>) {
  return db.selectFrom('item').selectAll().orderBy('id').limit(20)
}

/**
 * What-if for the hot-path fix: memjs writes every request with its own socket.write
 * (one syscall each); corking the socket for the rest of the tick sends all requests
 * issued together (a hit's value and generation gets) in one writev. Installed with
 * --cork, active only while a `+cork` variant runs, so both are measured in one run.
 */
let corking = false
function installCorkPatch(): void {
  const proto = memjs.Server.prototype as unknown as {
    write(blob: Buffer): void
    _socket?: import('node:net').Socket
    connected?: boolean
    corkPending?: boolean
  }
  const write = proto.write
  proto.write = function (this: typeof proto, blob: Buffer): void {
    const socket = this._socket
    if (corking && socket !== undefined && this.connected === true && this.corkPending !== true) {
      this.corkPending = true
      socket.cork()
      process.nextTick(() => {
        this.corkPending = false
        socket.uncork()
      })
    }
    write.call(this, blob)
  }
}

function corked(run: () => Promise<Rows>): () => Promise<Rows> {
  return async () => {
    corking = true
    try {
      return await run()
    } finally {
      corking = false
    }
  }
}

/**
 * Prototype of a faster row codec (not the library's): a header naming the columns
 * that need reviving (Date, bigint), then the rows as plain JSON. pg returns one type
 * per column, so a column is revived in one loop. Handles what this data set holds.
 */
function encodeTypedColumns(rows: Rows): string {
  const first = rows[0] ?? {}
  const revive: string[] = []
  for (const [column, value] of Object.entries(first)) {
    if (value instanceof Date) revive.push(column, 'D')
    else if (typeof value === 'bigint') revive.push(column, 'b')
  }
  return `${JSON.stringify(revive)}\n${JSON.stringify(rows, (_, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))}`
}

function decodeTypedColumns(text: string): Rows {
  const newline = text.indexOf('\n')
  const revive = JSON.parse(text.slice(0, newline)) as string[]
  const rows = JSON.parse(text.slice(newline + 1)) as Rows
  for (let i = 0; i < revive.length; i += 2) {
    const column = revive[i]!
    const toDate = revive[i + 1] === 'D'
    for (const row of rows) {
      const value = row[column]
      if (value !== null && value !== undefined) row[column] = toDate ? new Date(value as string) : BigInt(value as string)
    }
  }
  return rows
}

async function main(): Promise<void> {
  const cork = flags.cork !== 'off'
  if (cork) installCorkPatch()
  const machine = await describeMachine()
  const schema = `bench_hit_${process.pid}`
  const admin = new pg.Client({ connectionString: DATABASE_URL })
  await admin.connect()
  await dropStaleSchemas(admin, 'bench_hit_')
  await admin.query(`create schema ${schema}`)
  let cluster: MemcachedCluster | undefined
  const pools: pg.Pool[] = []
  const caches: QueryCache[] = []
  let mc: memjs.Client | undefined
  let rawStore: MemcachedStore | undefined
  try {
    await admin.query(`
      create table ${schema}.item (
        id serial primary key, title text not null, body text not null, created_at timestamptz not null,
        big bigint not null, price numeric(12, 2) not null, meta jsonb not null)`)
    await admin.query(
      `insert into ${schema}.item (title, body, created_at, big, price, meta)
       select 'Item ' || i,
              repeat('Lorem ipsum dolor sit amet, consectetur adipiscing elit. ', 3) || i,
              timestamptz '2026-01-01 12:00:00+00' + i * interval '37 minutes',
              9007199254740993 + i * 1000003,
              (i * 12.34)::numeric(12, 2),
              jsonb_build_object('tags', jsonb_build_array('a' || i, 'b', 'c'), 'rank', i,
                                 'nested', jsonb_build_object('ok', i % 2 = 0, 'ratio', i / 7.0, 'none', null))
       from generate_series(1, 20) as i`,
    )

    cluster = await startMemcached(NODES)
    const newPool = (): pg.Pool => {
      const pool = new pg.Pool({
        connectionString: DATABASE_URL,
        max: 4,
        options: `-c search_path=${schema}`,
        types: {
          getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
            oid === 20 ? BigInt : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
        },
      })
      pools.push(pool)
      return pool
    }
    const plain = new Kysely<DB>({ dialect: new PostgresDialect({ pool: newPool() }) })
    const remote = createQueryCache({ servers: cluster.servers, namespace: 'benchhit', defaultSchema: schema })
    const remoteFar = createQueryCache({ servers: cluster.servers, namespace: 'benchhit', defaultSchema: schema, nearCache: false })
    const embedded = createQueryCache({ namespace: 'benchhit', defaultSchema: schema })
    // Their own namespace: signed entries are not readable by the unsigned caches (and the other way round).
    const signed = createQueryCache({ servers: cluster.servers, namespace: 'benchhits', defaultSchema: schema, secret: BENCH_SECRET })
    const signedFar = createQueryCache({ servers: cluster.servers, namespace: 'benchhits', defaultSchema: schema, secret: BENCH_SECRET, nearCache: false })
    caches.push(remote, remoteFar, embedded, signed, signedFar)
    const viaRemote = new Kysely<DB>({ dialect: remote.wrapDialect(new PostgresDialect({ pool: newPool() }), { scope: SCOPE }) })
    const viaRemoteFar = new Kysely<DB>({ dialect: remoteFar.wrapDialect(new PostgresDialect({ pool: newPool() }), { scope: SCOPE }) })
    const viaEmbedded = new Kysely<DB>({ dialect: embedded.wrapDialect(new PostgresDialect({ pool: newPool() }), { scope: SCOPE }) })
    const viaSigned = new Kysely<DB>({ dialect: signed.wrapDialect(new PostgresDialect({ pool: newPool() }), { scope: SCOPE }) })
    const viaSignedFar = new Kysely<DB>({ dialect: signedFar.wrapDialect(new PostgresDialect({ pool: newPool() }), { scope: SCOPE }) })
    // What an application would use: memjs's own client, its default key distribution.
    const client = memjs.Client.create(cluster.servers.join(','), { logger: SILENT })
    mc = client

    const reference = await query(plain).execute()
    const serialised = SuperJSON.stringify(reference)
    const floorKey = 'benchhit:floor'
    await client.set(floorKey, serialised, { expires: TTL })

    let handMisses = 0
    const handWritten = async (qb: SelectQueryBuilder<DB, 'item', Record<string, unknown>>): Promise<Rows> => {
      const compiled = qb.compile()
      const key = `hw:${createHash('sha256').update(compiled.sql + JSON.stringify(compiled.parameters)).digest('base64url')}`
      const { value } = await client.get(key)
      if (value !== null) return SuperJSON.parse<Rows>(value.toString('utf8'))
      handMisses++
      const rows = await qb.execute()
      await client.set(key, SuperJSON.stringify(rows), { expires: TTL })
      return rows
    }
    // The minimum with invalidation: one version key per table, read in parallel, stored with the value.
    const versionKey = 'hwv:v:item'
    await client.set(versionKey, `${Date.now().toString(36)}.1`, { expires: 0 })
    const versionKey2 = 'hwv:v:other'
    await client.set(versionKey2, `${Date.now().toString(36)}.2`, { expires: 0 })
    const handVersioned = async (qb: SelectQueryBuilder<DB, 'item', Record<string, unknown>>): Promise<Rows> => {
      const compiled = qb.compile()
      const key = `hwv:${createHash('sha256').update(compiled.sql + JSON.stringify(compiled.parameters)).digest('base64url')}`
      const [{ value }, { value: version }] = await Promise.all([client.get(key), client.get(versionKey)])
      if (value !== null && version !== null) {
        const text = value.toString('utf8')
        const newline = text.indexOf('\n')
        if (text.slice(0, newline) === version.toString('latin1')) return SuperJSON.parse<Rows>(text.slice(newline + 1))
      }
      handMisses++
      const rows = await qb.execute()
      if (version !== null) await client.set(key, `${version.toString('latin1')}\n${SuperJSON.stringify(rows)}`, { expires: TTL })
      return rows
    }

    const all: Variant[] = [
      { id: 'A', label: 'Kysely + pg, uncached', ops: DB_OPS, run: () => query(plain).execute() },
      {
        id: 'B',
        label: 'floor: memjs get + superjson parse',
        ops: OPS,
        run: async () => SuperJSON.parse<Rows>((await client.get(floorKey)).value!.toString('utf8')),
      },
      { id: 'C', label: 'hand-written cache-aside (memjs)', ops: OPS, run: () => handWritten(query(plain)) },
      { id: "C'", label: "C + 1 version key in parallel", ops: OPS, run: () => handVersioned(query(plain)) },
      { id: 'D', label: '.cached() hit, memcached, near copy', ops: OPS, run: () => query(viaRemote).cached({ ttl: TTL }).execute() },
      { id: 'D0', label: '.cached() hit, memcached, near cache off', ops: OPS, run: () => query(viaRemoteFar).cached({ ttl: TTL }).execute() },
      { id: 'E', label: '.cached() hit, embedded store', ops: OPS, run: () => query(viaEmbedded).cached({ ttl: TTL }).execute() },
      { id: 'Ds', label: 'D with a signing secret', ops: OPS, run: () => query(viaSigned).cached({ ttl: TTL }).execute() },
      { id: 'D0s', label: 'D0 with a signing secret', ops: OPS, run: () => query(viaSignedFar).cached({ ttl: TTL }).execute() },
      { id: 'k', component: true, label: 'Kysely build + compile', ops: OPS, run: async () => (query(plain).compile(), reference) },
      { id: 'g1', component: true, label: '1 memjs get (value)', ops: OPS, run: async () => ((await client.get(floorKey)), reference) },
      {
        id: 'g3',
        component: true,
        label: '3 memjs gets in parallel',
        ops: OPS,
        run: async () => (await Promise.all([client.get(floorKey), client.get(versionKey), client.get(versionKey2)]), reference),
      },
      {
        id: 'g3w',
        component: true,
        label: '3 gets, one socket write',
        ops: OPS,
        run: async () => {
          const socket = (client.servers[0] as unknown as { _socket: import('node:net').Socket })._socket
          socket.cork()
          const pending = Promise.all([client.get(floorKey), client.get(versionKey), client.get(versionKey2)])
          process.nextTick(() => socket.uncork())
          await pending
          return reference
        },
      },
      { id: 'p', component: true, label: 'superjson parse (8 KB)', ops: OPS, run: async () => (SuperJSON.parse<Rows>(serialised), reference) },
    ]
    // The library's own pieces, on D's real entry.
    const store = new MemcachedStore({ servers: cluster.servers })
    rawStore = store
    const compiledD = query(viaRemote).compile()
    const entryKey = queryKey('benchhit', compiledD.sql, compiledD.parameters, [], explicitScopeId(SCOPE))
    const generationKeys = [namespaceGenerationKey('benchhit'), tableGenerationKey('benchhit', `${schema}.item`)]
    await query(viaRemote).cached({ ttl: TTL }).execute()
    const generations = new Generations(store, 'benchhit', 3)
    const entry = await store.get(entryKey)
    if (entry === undefined) throw new Error(`D's entry is not at ${entryKey}`)
    const keyHashed = new ValueSigner()
    const secretSigned = new ValueSigner([Buffer.from(BENCH_SECRET)])
    const keyHashedEntry = keyHashed.seal(entryKey, entry)
    const signedEntry = secretSigned.seal(entryKey, entry)
    for (const key of generationKeys) {
      if ((await store.get(key)) === undefined) throw new Error(`generation ${key} is missing`)
    }
    all.push(
      { id: 's1', component: true, label: '1 MemcachedStore.get (entry)', ops: OPS, run: async () => ((await store.get(entryKey)), reference) },
      {
        id: 's3',
        component: true,
        label: '3 MemcachedStore.get in parallel',
        ops: OPS,
        run: async () => (await Promise.all([store.get(entryKey), store.get(generationKeys[0]!), store.get(generationKeys[1]!)]), reference),
      },
      {
        id: 'gr',
        component: true,
        label: '2 generation majority reads (what a near hit sends)',
        ops: OPS,
        run: async () => (await Promise.all(generationKeys.map((key) => generations.read(key))), reference),
      },
      {
        id: 'key',
        component: true,
        label: 'queryKey (SHA-256 of SQL + params)',
        ops: OPS,
        run: async () => (queryKey('benchhit', compiledD.sql, compiledD.parameters, [], explicitScopeId(SCOPE)), reference),
      },
      {
        id: 'dec',
        component: true,
        label: 'decodeEntry + decodeRows (library codec)',
        ops: OPS,
        run: async () => (decodeRows(decodeEntry(entry)!.rows), reference),
      },
      { id: 'vk', component: true, label: 'open a key-hash frame (entry)', ops: OPS, run: async () => (keyHashed.open(entryKey, keyHashedEntry), reference) },
      { id: 'vs', component: true, label: 'open an HMAC-signed frame (entry)', ops: OPS, run: async () => (secretSigned.open(entryKey, signedEntry), reference) },
    )
    if (cork) {
      for (const id of ['D', "C'", 's3']) {
        const base = all.find((v) => v.id === id)!
        all.push({ ...base, id: `${id}+cork`, label: `${base.label}, writes corked`, run: corked(base.run) })
      }
    }
    const typed = encodeTypedColumns(reference)
    assert.deepStrictEqual(decodeTypedColumns(typed), reference, 'the typed-column prototype does not round-trip the rows')
    const plainJson = typed.slice(typed.indexOf('\n') + 1)
    all.push(
      { id: 'jp', component: true, label: 'JSON.parse, same rows as plain JSON', ops: OPS, run: async () => (JSON.parse(plainJson), reference) },
      { id: 'tc', component: true, label: 'typed-column decode (prototype)', ops: OPS, run: async () => (decodeTypedColumns(typed), reference) },
    )
    const only = flags.only?.split(',').map((id) => id.trim())
    const variants = only === undefined ? all : all.filter((v) => only.includes(v.id))
    if (variants.length === 0) throw new Error(`--only ${flags.only} names no variant (A, B, C, C', D, D0, E, k, g1, g3, g3w, p, s1, s3, gr, key, dec, jp, tc)`)

    // Every variant returns exactly the rows pg returned (Date, bigint, numeric, jsonb), hits included.
    for (const variant of variants) {
      await variant.run() // fills the caches
      assert.deepStrictEqual(await variant.run(), reference, `variant ${variant.id} returns other rows`)
    }
    const statsBefore = { remote: remote.stats(), remoteFar: remoteFar.stats(), embedded: embedded.stats(), signed: signed.stats(), signedFar: signedFar.stats(), handMisses }
    for (const variant of variants) {
      for (let i = 0; i < Math.min(WARMUP, variant.id === 'A' ? DB_OPS : WARMUP); i++) await variant.run()
    }

    const samples = new Map(variants.map((v) => [v.id, new Float64Array(v.ops * ROUNDS)]))
    const roundMedians = new Map<string, number[]>(variants.map((v) => [v.id, []]))
    const started = performance.now()
    for (let r = 0; r < ROUNDS; r++) {
      for (let j = 0; j < variants.length; j++) {
        const variant = variants[(r + j) % variants.length]!
        const out = samples.get(variant.id)!
        const offset = r * variant.ops
        for (let i = 0; i < variant.ops; i++) {
          const t = performance.now()
          await variant.run()
          out[offset + i] = (performance.now() - t) * 1000
        }
        roundMedians.get(variant.id)!.push(percentileSorted(sortedCopy(out.subarray(offset, offset + variant.ops)), 50))
      }
    }
    const elapsedS = (performance.now() - started) / 1000

    const remoteStats = remote.stats()
    const embeddedStats = embedded.stats()
    const misses = {
      D: remoteStats.misses - statsBefore.remote.misses,
      D0: remoteFar.stats().misses - statsBefore.remoteFar.misses,
      // D must be served near: a remote hit would not be what it measures.
      'D not near': remoteStats.hits - statsBefore.remote.hits - (remoteStats.nearHits - statsBefore.remote.nearHits),
      E: embeddedStats.misses - statsBefore.embedded.misses,
      Ds: signed.stats().misses - statsBefore.signed.misses,
      D0s: signedFar.stats().misses - statsBefore.signedFar.misses,
      // Ds must be served near like D, and nothing may be refused: a refusal is a miss that is not measured as one.
      'Ds not near': signed.stats().hits - statsBefore.signed.hits - (signed.stats().nearHits - statsBefore.signed.nearHits),
      rejected: remoteStats.rejected + signed.stats().rejected + signedFar.stats().rejected + remoteFar.stats().rejected,
      C: handMisses - statsBefore.handMisses,
    }
    if (Object.values(misses).some((count) => count > 0)) {
      throw new Error(`the hit variants missed during the measurement: ${JSON.stringify(misses)}`)
    }

    const results = variants.map((variant) => {
      const sorted = sortedCopy(samples.get(variant.id)!)
      const medians = roundMedians.get(variant.id)!
      return {
        id: variant.id,
        component: variant.component === true,
        label: variant.label,
        operations: sorted.length,
        medianUs: round(percentileSorted(sorted, 50), 2),
        p99Us: round(percentileSorted(sorted, 99), 2),
        meanUs: round(mean(sorted), 2),
        opsPerSecond: Math.round(1e6 / mean(sorted)),
        roundMedianMinUs: round(Math.min(...medians), 2),
        roundMedianMaxUs: round(Math.max(...medians), 2),
        roundMediansUs: medians.map((m) => round(m, 1)),
      }
    })
    const byId = new Map(results.map((r) => [r.id, r]))
    const ratio = (a: string, b: string): number | undefined => {
      const x = byId.get(a)
      const y = byId.get(b)
      return x === undefined || y === undefined ? undefined : round(x.medianUs / y.medianUs, 2)
    }
    const ratios = {
      'D/B': { value: ratio('D', 'B'), target: 0.7 },
      'D0/B': { value: ratio('D0', 'B'), target: 1.2 },
      'E/B': { value: ratio('E', 'B'), target: 0.4 },
      "D/C'": { value: ratio('D', "C'"), target: 1.0 },
      'D/C': { value: ratio('D', 'C'), target: undefined },
      'A/D': { value: ratio('A', 'D'), target: undefined },
      'D/E': { value: ratio('D', 'E'), target: undefined },
      'Ds/D': { value: ratio('Ds', 'D'), target: 1.05 },
      'D0s/D0': { value: ratio('D0s', 'D0'), target: 1.05 },
      ...(cork
        ? {
            'D+cork/B': { value: ratio('D+cork', 'B'), target: 1.5 },
            'D+cork/C': { value: ratio('D+cork', 'C'), target: 1.25 },
            "D+cork/C'+cork": { value: ratio('D+cork', "C'+cork"), target: undefined },
          }
        : {}),
    }

    const header = ['variant', 'what', 'median µs', 'p99 µs', 'ops/s (1 client)', 'round medians µs']
    const toRow = (r: (typeof results)[number]): Array<string | number> => [
      r.id,
      r.label,
      r.medianUs,
      r.p99Us,
      r.opsPerSecond,
      `${r.roundMedianMinUs}–${r.roundMedianMaxUs}`,
    ]
    const rows = results.filter((r) => !r.component && !r.id.endsWith('+cork')).map(toRow)
    const componentRows = results.filter((r) => r.component || r.id.endsWith('+cork')).map(toRow)
    console.log(`\nbench:hit — ${machineLine(machine)}`)
    console.log(
      `${ROUNDS} rounds × ${OPS} ops (A: ${DB_OPS}), interleaved, ${NODES} memcached node(s)${cork ? ", with what-if variants +cork (a tick's memjs writes in one syscall)" : ''}, ${round(elapsedS, 1)} s\n`,
    )
    console.log(formatTable(header, rows))
    if (componentRows.length > 0) console.log(`\ncomponents:\n${formatTable(header, componentRows)}`)
    console.log('')
    for (const [name, { value, target }] of Object.entries(ratios)) {
      if (value === undefined) continue
      const verdict = target === undefined ? '' : value <= target ? `  (target ≤ ${target}: met)` : `  (target ≤ ${target}: NOT met)`
      console.log(`${name.padEnd(15)} ${value.toFixed(2)}${verdict}`)
    }
    console.log(`\n${markdownTable(header, rows)}\n\n${markdownTable(header, componentRows)}\n`)

    const result = {
      benchmark: 'hit',
      date: new Date().toISOString(),
      machine,
      settings: {
        rounds: ROUNDS,
        ops: OPS,
        dbOps: DB_OPS,
        warmup: WARMUP,
        memcachedNodes: NODES,
        rows: reference.length,
        valueBytes: Buffer.byteLength(serialised),
        only: only ?? null,
        signingSecretBytes: Buffer.byteLength(BENCH_SECRET),
        corkWhatIf: cork,
      },
      generationKeysPerHit: 2,
      elapsedSeconds: round(elapsedS, 1),
      results,
      ratios,
      cacheStats: { remote: remoteStats, embedded: embeddedStats },
    }
    if (only === undefined || flags.out !== undefined) {
      console.log(`wrote ${writeResult(flags.out ?? `hit-${today()}.json`, result)}`)
    }
    await Promise.all([plain.destroy(), viaRemote.destroy(), viaEmbedded.destroy(), viaSigned.destroy(), viaSignedFar.destroy()])
  } finally {
    mc?.close()
    await rawStore?.close()
    await Promise.all(caches.map((cache) => cache.close().catch(() => {})))
    await Promise.all(pools.map((pool) => pool.end().catch(() => {})))
    await admin.query(`drop schema if exists ${schema} cascade`).catch(() => {})
    await admin.end().catch(() => {})
    await cluster?.stopAll()
  }
}

main().catch(couldNotRun)
