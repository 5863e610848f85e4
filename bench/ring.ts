/**
 * npm run bench:ring — how many keys move when one of N memcached nodes leaves (and
 * returns), N = 2…10: memjs 1.3.2's default `hashCode(key) % N` against the ketama
 * ring of MemcachedStore (hashring, down nodes skipped at lookup), and from that and
 * a measured miss cost, the database load added by losing one node.
 *
 * Flags: --keys 10000 --sets 4 (address lists averaged over) --min 2 --max 10
 *        --miss-samples 2000 (miss/hit cost measurement; 0 skips it) --out name.json
 */
import { parseArgs } from 'node:util'
import HashRing from 'hashring'
import { Kysely, PostgresDialect, type Generated } from 'kysely'
import memjs from 'memjs'
import pg from 'pg'
import { createQueryCache, MemcachedStore } from '../src/index.js'
import { queryKey } from '../src/keys.js'
import { startMemcached, type MemcachedCluster } from '../test/harness/memcached.js'
import {
  couldNotRun,
  DATABASE_URL,
  describeMachine,
  dropStaleSchemas,
  formatTable,
  machineLine,
  markdownTable,
  percentileSorted,
  round,
  sortedCopy,
  today,
  writeResult,
} from './lib/common.js'

const { values: flags } = parseArgs({
  options: {
    keys: { type: 'string', default: '10000' },
    sets: { type: 'string', default: '4' },
    min: { type: 'string', default: '2' },
    max: { type: 'string', default: '10' },
    'miss-samples': { type: 'string', default: '2000' },
    out: { type: 'string' },
  },
})
const KEYS = Number(flags.keys)
const SETS = Number(flags.sets)
const MIN = Number(flags.min)
const MAX = Number(flags.max)
const MISS_SAMPLES = Number(flags['miss-samples'])
for (const [name, value] of Object.entries({ keys: KEYS, sets: SETS, min: MIN, max: MAX })) {
  if (!Number.isSafeInteger(value) || value < 1) couldNotRun(new RangeError(`--${name} must be a positive integer`))
}
if (MIN < 2 || MAX < MIN) couldNotRun(new RangeError('need 2 ≤ --min ≤ --max'))

/** memjs 1.3.2, lib/memjs/utils.js, used by Client.prototype.getServer: `hashCode(key) % servers.length`. */
const memjsHashCode = (memjs as unknown as { Utils: { hashCode(key: string): number } }).Utils.hashCode

/** Keys as the library derives them: namespace, SQL, parameters. */
function sampleKeys(count: number): string[] {
  const sqlText = 'select "id", "title", "price" from "item" where "owner_id" = $1 and "status" = $2 order by "id" limit $3'
  return Array.from({ length: count }, (_, i) => queryKey('shop', sqlText, [i, i % 3 === 0 ? 'open' : 'closed', 20], [], 'shop-db'))
}

function addresses(set: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `10.0.${set}.${i + 1}:11211`)
}

interface Moves {
  /** Fraction of all keys whose node changed. */
  moved: number
  /** Keys on the busiest surviving node after the change, over its keys before: how much more it must hold and serve. */
  busiestSurvivorGrowth: number
}

function count(nodes: ReadonlyArray<string | number>): Map<string | number, number> {
  const counts = new Map<string | number, number>()
  for (const node of nodes) counts.set(node, (counts.get(node) ?? 0) + 1)
  return counts
}

function compare(before: ReadonlyArray<string | number>, after: ReadonlyArray<string | number>): Moves {
  let moved = 0
  for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) moved++
  const was = count(before)
  const now = count(after)
  let growth = 0
  for (const [node, keys] of now) growth = Math.max(growth, keys / (was.get(node) ?? keys))
  return { moved: moved / before.length, busiestSurvivorGrowth: growth }
}

/** memjs with the node removed from the server list (what reconfiguring the clients does). */
function memjsRemoved(hashes: Int32Array | number[], n: number, leaving: number): Moves {
  const rest = Array.from({ length: n }, (_, i) => i).filter((i) => i !== leaving)
  const before = Array.from(hashes, (h) => h % n)
  const after = Array.from(hashes, (h) => rest[h % (n - 1)]!)
  return compare(before, after)
}

/** memjs with `failover: true`: a failed server's keys go to the next server in the list, (idx + 1) % N. */
function memjsFailover(hashes: Int32Array | number[], n: number, leaving: number): Moves {
  const before = Array.from(hashes, (h) => h % n)
  const after = before.map((idx) => (idx === leaving ? (idx + 1) % n : idx))
  return compare(before, after)
}

/**
 * MemcachedStore's own routing, every node leaving in turn: the node is held down
 * (no I/O, exactly what the monitor's flag does), then released.
 */
function ringLeaveAndReturn(keys: readonly string[], servers: string[]): Array<{ leave: Moves; returned: Moves; notHome: number }> {
  const store = new MemcachedStore({ servers })
  try {
    const before = keys.map((key) => store.nodeFor(key))
    return servers.map((server) => {
      store.holdDown(new Set([server]), 'flushed')
      const during = keys.map((key) => store.nodeFor(key))
      store.holdDown(new Set(), 'flushed')
      const after = keys.map((key) => store.nodeFor(key))
      return {
        leave: compare(before, during),
        returned: compare(during, after),
        notHome: before.filter((node, i) => node !== after[i]).length,
      }
    })
  } finally {
    void store.close()
  }
}

/** A naive ring rebuilt from the N-1 survivors (what MemcachedStore deliberately does not do). */
function ringRebuilt(keys: readonly string[], servers: string[]): Moves[] {
  const full = new HashRing(servers)
  const before = keys.map((key) => full.get(key))
  return servers.map((server) => {
    const smaller = new HashRing(servers.filter((s) => s !== server))
    return compare(before, keys.map((key) => smaller.get(key)))
  })
}

interface Aggregate {
  mean: number
  min: number
  max: number
}
function aggregate(values: number[]): Aggregate {
  return {
    mean: round(values.reduce((a, b) => a + b, 0) / values.length, 4),
    min: round(Math.min(...values), 4),
    max: round(Math.max(...values), 4),
  }
}

interface ItemTable {
  id: Generated<number>
  title: string
  price: string
  created_at: Date
}

/** Median cost of a miss (value + generations read, query, encode, store) and of a hit, through the library. */
async function measureMissCost(): Promise<{ missUs: number; hitUs: number; queryUs: number; samples: number } | null> {
  if (MISS_SAMPLES <= 0) return null
  const schema = `bench_ring_${process.pid}`
  const admin = new pg.Client({ connectionString: DATABASE_URL })
  await admin.connect()
  await dropStaleSchemas(admin, 'bench_ring_')
  let cluster: MemcachedCluster | undefined
  try {
    await admin.query(`create schema ${schema}`)
    await admin.query(`create table ${schema}.item (id serial primary key, title text not null, price numeric(12, 2) not null, created_at timestamptz not null)`)
    await admin.query(
      `insert into ${schema}.item (title, price, created_at) select 'Item ' || i, i * 1.5, now() - i * interval '1 hour' from generate_series(1, 20) as i`,
    )
    cluster = await startMemcached(1)
    const cache = createQueryCache({ servers: cluster.servers, namespace: 'benchring', defaultSchema: schema })
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2, options: `-c search_path=${schema}` })
    const db = new Kysely<{ item: ItemTable }>({ dialect: cache.wrapDialect(new PostgresDialect({ pool })) })
    const plain = new Kysely<{ item: ItemTable }>({ dialect: new PostgresDialect({ pool }) })
    // A fresh parameter per call: a new key, so a miss, with the same 20 rows.
    const q = (d: typeof db, i: number) => d.selectFrom('item').selectAll().where('id', '>', -i).orderBy('id').limit(20)
    const miss: number[] = []
    const hit: number[] = []
    const query: number[] = []
    for (let i = 0; i < MISS_SAMPLES + 200; i++) {
      let t = performance.now()
      await q(db, i).cached({ ttl: 60 }).execute()
      const m = performance.now() - t
      t = performance.now()
      await q(db, i).cached({ ttl: 60 }).execute()
      const h = performance.now() - t
      t = performance.now()
      await q(plain, i).execute()
      const u = performance.now() - t
      if (i >= 200) {
        miss.push(m * 1000)
        hit.push(h * 1000)
        query.push(u * 1000)
      }
    }
    const stats = cache.stats()
    if (stats.misses < MISS_SAMPLES || stats.hits < MISS_SAMPLES) throw new Error(`miss-cost measurement did not miss and hit as planned: ${JSON.stringify(stats)}`)
    await db.destroy()
    await cache.close()
    return {
      missUs: round(percentileSorted(sortedCopy(miss), 50), 1),
      hitUs: round(percentileSorted(sortedCopy(hit), 50), 1),
      queryUs: round(percentileSorted(sortedCopy(query), 50), 1),
      samples: MISS_SAMPLES,
    }
  } finally {
    await admin.query(`drop schema if exists ${schema} cascade`).catch(() => {})
    await admin.end().catch(() => {})
    await cluster?.stopAll()
  }
}

async function main(): Promise<void> {
  const started = performance.now()
  const machine = await describeMachine()
  const keys = sampleKeys(KEYS)
  const hashes = keys.map((key) => memjsHashCode(key))
  const rows = []
  for (let n = MIN; n <= MAX; n++) {
    const removed: Moves[] = []
    const failover: Moves[] = []
    const ringLeave: Moves[] = []
    const ringBack: Moves[] = []
    const rebuilt: Moves[] = []
    let notHome = 0
    for (let leaving = 0; leaving < n; leaving++) {
      removed.push(memjsRemoved(hashes, n, leaving))
      failover.push(memjsFailover(hashes, n, leaving))
    }
    for (let set = 0; set < SETS; set++) {
      const servers = addresses(set, n)
      for (const r of ringLeaveAndReturn(keys, servers)) {
        ringLeave.push(r.leave)
        ringBack.push(r.returned)
        notHome += r.notHome
      }
      rebuilt.push(...ringRebuilt(keys, servers))
    }
    if (notHome > 0) throw new Error(`ring: ${notHome} keys did not return to their node after it rejoined (N=${n})`)
    rows.push({
      n,
      ideal: round(1 / n, 4),
      memjsRemoved: { moved: aggregate(removed.map((m) => m.moved)), busiestSurvivorGrowth: aggregate(removed.map((m) => m.busiestSurvivorGrowth)) },
      memjsFailover: { moved: aggregate(failover.map((m) => m.moved)), busiestSurvivorGrowth: aggregate(failover.map((m) => m.busiestSurvivorGrowth)) },
      ring: {
        moved: aggregate(ringLeave.map((m) => m.moved)),
        movedBackOnReturn: aggregate(ringBack.map((m) => m.moved)),
        busiestSurvivorGrowth: aggregate(ringLeave.map((m) => m.busiestSurvivorGrowth)),
      },
      ringRebuilt: { moved: aggregate(rebuilt.map((m) => m.moved)), busiestSurvivorGrowth: aggregate(rebuilt.map((m) => m.busiestSurvivorGrowth)) },
    })
  }
  const missCost = await measureMissCost()

  const pct = (x: number): string => `${(100 * x).toFixed(1)} %`
  const header = [
    'N',
    '1/N',
    'hash % N: moved',
    'ring: moved (min–max)',
    'ring: back on return',
    'ring rebuilt N-1: moved',
    'busiest survivor grows, ring',
    'busiest survivor grows, memjs failover',
  ]
  const table = rows.map((r) => [
    String(r.n),
    pct(r.ideal),
    pct(r.memjsRemoved.moved.mean),
    `${pct(r.ring.moved.mean)} (${pct(r.ring.moved.min)}–${pct(r.ring.moved.max)})`,
    pct(r.ring.movedBackOnReturn.mean),
    pct(r.ringRebuilt.moved.mean),
    `${r.ring.busiestSurvivorGrowth.mean.toFixed(2)}× (max ${r.ring.busiestSurvivorGrowth.max.toFixed(2)}×)`,
    `${r.memjsFailover.busiestSurvivorGrowth.mean.toFixed(2)}×`,
  ])

  // Sizing: right after a node is lost, every request for a moved key misses until it is refilled.
  // With a steady hit ratio H, the database goes from (1 - H)·R to (1 - H + f·H)·R executions/s.
  const hitRatios = [0.95, 0.99]
  const sizing = rows.map((r) => {
    const f = r.ring.moved.mean
    const fMax = r.ring.moved.max
    const fModulo = r.memjsRemoved.moved.mean
    const multiplier = (moved: number, h: number): number => round((1 - h + moved * h) / (1 - h), 2)
    return {
      n: r.n,
      ringMoved: f,
      ringMovedWorstNode: fMax,
      moduloMoved: fModulo,
      dbLoadMultiplier: Object.fromEntries(
        hitRatios.map((h) => [String(h), { ring: multiplier(f, h), ringWorstNode: multiplier(fMax, h), modulo: multiplier(fModulo, h) }]),
      ),
      /** Database time to refill what was lost, per 100 000 cached entries, at the measured miss cost. */
      refillSecondsPer100kEntries: missCost === null ? null : { ring: round((f * 100_000 * missCost.queryUs) / 1e6, 2), modulo: round((fModulo * 100_000 * missCost.queryUs) / 1e6, 2) },
    }
  })
  const sizingHeader = ['N', 'lost, ring', ...hitRatios.flatMap((h) => [`DB load × (H=${h}), ring`, `× (H=${h}), hash % N`]), 'refill DB s / 100k entries, ring', 'hash % N']
  const sizingTable = sizing.map((s) => [
    String(s.n),
    `${pct(s.ringMoved)} (worst ${pct(s.ringMovedWorstNode)})`,
    ...hitRatios.flatMap((h) => [`${s.dbLoadMultiplier[String(h)]!.ring}× (worst ${s.dbLoadMultiplier[String(h)]!.ringWorstNode}×)`, `${s.dbLoadMultiplier[String(h)]!.modulo}×`]),
    s.refillSecondsPer100kEntries?.ring ?? '–',
    s.refillSecondsPer100kEntries?.modulo ?? '–',
  ])

  const elapsed = (performance.now() - started) / 1000
  console.log(`\nbench:ring — ${machineLine(machine)}; ${KEYS} keys × ${SETS} address sets, every node leaving in turn; ${round(elapsed, 1)} s\n`)
  console.log(formatTable(header, table))
  if (missCost !== null) {
    console.log(
      `\nmeasured (20-row query, 1 memcached node, ${missCost.samples} samples, medians): miss ${missCost.missUs} µs, hit ${missCost.hitUs} µs, uncached query ${missCost.queryUs} µs`,
    )
  }
  console.log('\nDatabase load right after losing one node, as a multiple of its steady load (every request for a lost key misses until refilled):')
  console.log(formatTable(sizingHeader, sizingTable))
  console.log(`\n${markdownTable(header, table)}\n\n${markdownTable(sizingHeader, sizingTable)}\n`)
  const path = writeResult(flags.out ?? `ring-${today()}.json`, {
    benchmark: 'ring',
    date: new Date().toISOString(),
    machine,
    elapsedSeconds: round(elapsed, 1),
    settings: { keys: KEYS, addressSets: SETS, addresses: 'set s: 10.0.s.1:11211 … 10.0.s.N:11211', min: MIN, max: MAX, missSamples: MISS_SAMPLES },
    memjsHash: 'memjs 1.3.2 Client.getServer: Utils.hashCode(key) % servers.length; hashCode = Math.abs(Σ (31·h + charCode) << 0)',
    ring: 'MemcachedStore: hashring 3.2 ketama ring over all nodes, down nodes skipped clockwise at lookup (held down with holdDown, no I/O)',
    rows,
    missCost,
    sizingModel: 'DB executions/s right after the loss = (1 − H + f·H)·R, steady = (1 − H)·R; multiplier = 1 + f·H/(1 − H). Refill = f × entries × uncached query time.',
    sizing,
  })
  console.log(`wrote ${path}`)
}

main().catch(couldNotRun)
