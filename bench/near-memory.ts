/**
 * npm run bench:near-memory — what the near cache really holds at its byte bound.
 *
 * A near cache with `--max-mib` (32) is fed copies of results for `--keys` (100 000)
 * distinct queries with Zipf popularity (s = 1) until it has turned over several
 * times. Results are 1–40 rows of a realistic shape (text, timestamp, bigint, numeric,
 * jsonb), encoded by the library's codec as the read path keeps them. Then, after a
 * full garbage collection, the process's memory above a baseline taken before the
 * cache existed (V8 heap plus external memory, where Buffers keep their bytes: an
 * encoded copy lives outside the heap) is compared with the bound and with the cache's own count.
 *
 * Run with `node --expose-gc` (the npm script does). Writes bench/results/near-memory-<date>.json.
 */
import { parseArgs } from 'node:util'
import { Codec, TIMELESS } from '../src/cache/codec.js'
import { NearCache } from '../src/cache/near-cache.js'
import { describeMachine, formatTable, machineLine, round, seededRandom, today, writeResult } from './lib/common.js'
import { Zipf } from './lib/drill-shapes.js'

const { values: flags } = parseArgs({
  options: {
    keys: { type: 'string', default: '100000' },
    'max-mib': { type: 'string', default: '32' },
    requests: { type: 'string', default: '600000' },
    out: { type: 'string' },
  },
})
const KEYS = Number(flags.keys)
const MAX_BYTES = Number(flags['max-mib']) * 1024 * 1024
const REQUESTS = Number(flags.requests)

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench:near-memory does)')

function used(): number {
  gc!()
  gc!()
  const memory = process.memoryUsage()
  // `external` includes `arrayBuffers` (every Buffer's bytes): counted once.
  return memory.heapUsed + memory.external
}

/** Rows of query `key`: a deterministic size from 1 to 40 rows. */
function rowsOf(key: number): unknown[] {
  const count = 1 + ((key * 2654435761) >>> 0) % 40
  return Array.from({ length: count }, (_, i) => ({
    id: BigInt(key * 100 + i),
    name: `item ${key}-${i}`,
    created_at: new Date(1_700_000_000_000 + key * 1000 + i),
    price: `${(key % 997) + i}.50`,
    tags: { colour: i % 2 === 0 ? 'red' : 'blue', sizes: [i, i + 1], note: 'x'.repeat(i % 7) },
  }))
}

const machine = await describeMachine()
const codec = new Codec()
const zipf = new Zipf(KEYS, 1)
const random = seededRandom(1)

// The bench's own structures (the Zipf table, the codec's buffers) exist before the baseline.
codec.encodeRows(rowsOf(0))
const baseline = used()
const near = new NearCache({ maxBytes: MAX_BYTES, maxEntries: KEYS, trustMs: 0 })
let inserted = 0
let hits = 0
for (let i = 0; i < REQUESTS; i++) {
  const key = zipf.sample(random())
  const name = `bench:q:${key}`
  if (near.get(name) !== undefined) {
    hits++
    continue
  }
  const rows = codec.encodeRows(rowsOf(key))!
  near.set(name, { rows, generations: ['mk3x1a.AbCdEfGh', `mk3x1b.${key}`], generationKeys: ['bench:g:n', 'bench:g:t:public.item'], validatedAt: 0, times: TIMELESS })
  inserted++
}
const measured = used() - baseline
const result = {
  benchmark: 'near-memory',
  date: new Date().toISOString(),
  machine,
  settings: { keys: KEYS, maxBytes: MAX_BYTES, requests: REQUESTS, zipf: 1 },
  entries: near.size,
  inserted,
  hitRatio: round(hits / REQUESTS, 3),
  countedBytes: near.bytes,
  measuredBytes: measured,
  measuredOverBound: round(measured / MAX_BYTES, 3),
  countedOverBound: round(near.bytes / MAX_BYTES, 3),
  withinTenPercent: measured <= MAX_BYTES * 1.1,
}
console.log(`\nbench:near-memory — ${machineLine(machine)}\n`)
console.log(
  formatTable(
    ['bound MiB', 'entries', 'counted MiB', 'measured MiB (heap + external)', 'measured / bound', 'within 10 %'],
    [[round(MAX_BYTES / 2 ** 20, 1), near.size, round(near.bytes / 2 ** 20, 1), round(measured / 2 ** 20, 1), result.measuredOverBound, result.withinTenPercent ? 'yes' : 'NO']],
  ),
)
console.log(`\nwrote ${writeResult(flags.out ?? `near-memory-${today()}.json`, result)}`)
