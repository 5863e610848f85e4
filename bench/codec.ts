/**
 * npm run bench:codec — what writing and reading back a result's rows costs, per encoding.
 *
 * The rows are those of bench:hit's query, made in-process (no database): id, text, text,
 * timestamptz (Date), bigint (BigInt, as bench:hit's pool parses it; `--bigint string` for
 * pg's default), numeric (string), jsonb (nested object). Sizes 1, 20 (bench:hit's) and 200 rows.
 *
 *   superjson       the row codec RowEncoding replaces, rebuilt here as it was (src/cache/codec.ts
 *                   before): superjson with its Buffer rule and its unfaithful-class rule (asked
 *                   about every value, as superjson asks custom rules), decode checks for an array
 *   codec           the library's path now: Codec.tryEncodeRows + encodeEntry, decodeEntry +
 *                   decodeRows (entry framing around RowEncoding)
 *   rows            RowEncoding (src/cache/row-encoding.ts): msgpackr no-eval build, records,
 *                   bundleStrings, with its checking walk and extensions (the candidate, all of it)
 *   rows+type       the same with one type registered (Decimal, in no row): superjson's rule,
 *                   kept, asks registered types about every value first
 *   mp-bundle       the same msgpackr configuration without RowEncoding's checks
 *   mp-records      msgpackr no-eval, records without bundleStrings, no checks
 *   mp-maps         msgpackr no-eval, objects as maps (useRecords: false), no checks
 *   mp-eval         stock msgpackr (records read by compiled functions, native string extraction
 *                   when msgpackr-extract loads), records + bundleStrings, no checks: what the
 *                   no-eval build gives up
 *   typed-json      typed-column JSON: column kinds noted once, JSON.stringify/parse, only the
 *                   Date and bigint columns revived; JSON columns checked on encode
 *   v8              v8.serialize / deserialize (structured clone; Buffer comes back as Uint8Array,
 *                   classes are lost, and it is not meant for untrusted bytes)
 *
 * Each round runs every size and every variant (the variant order rotates each round): a
 * batch of encodes, then a batch of decodes, timed per batch. Reported: the median over
 * rounds of the per-operation time, and the speed-up against superjson (its time / the
 * variant's). Every variant's decode is checked once against the rows (classes included).
 *
 * Flags: --rounds 30 --warmup 3 (untimed rounds) --ops 6000 (row-encodes per batch: 300
 *        batches of 20 rows, 30 of 200, 6000 of 1 ...) --bigint bigint|string --out name.json
 */
import { deepStrictEqual } from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import v8 from 'node:v8'
import { isNativeAccelerationEnabled, Packr } from 'msgpackr'
import { SuperJSON } from 'superjson'
import { Codec } from '../src/cache/codec.js'
import { RowEncoding } from '../src/cache/row-encoding.js'
import { decimalType } from '../test/harness/decimal.js'
import { couldNotRun, describeMachine, formatTable, machineLine, median, round, ROOT, today, writeResult } from './lib/common.js'

const text = (fallback: string) => ({ type: 'string', default: fallback }) as const
const { values: flags } = parseArgs({
  options: { rounds: text('30'), warmup: text('3'), ops: text('6000'), bigint: text('bigint'), out: { type: 'string' } },
})

function wholeNumber(name: 'rounds' | 'warmup' | 'ops', least: number): number {
  const value = Number(flags[name])
  if (Number.isSafeInteger(value) && value >= least) return value
  return couldNotRun(new RangeError(`--${name} must be an integer ≥ ${least}, got ${flags[name]}`))
}

const ROUNDS = wholeNumber('rounds', 1)
const WARMUP = wholeNumber('warmup', 0)
const ROW_OPS = wholeNumber('ops', 1)
if (flags.bigint !== 'bigint' && flags.bigint !== 'string') couldNotRun(new RangeError(`--bigint must be bigint or string, got ${flags.bigint}`))
const BIGINT_AS_STRING = flags.bigint === 'string'
const SIZES = [1, 20, 200] as const
const BASELINE = 'superjson'
const CHOSEN = 'rows'
const TARGET = 3

type Row = Record<string, unknown>

/** bench:hit's table, row `i` (its SQL, done in JS; jsonb as pg returns it: parsed JSON text, keys in jsonb's order). */
function makeRow(i: number): Row {
  const big = 9007199254740993n + BigInt(i) * 1000003n
  return {
    id: i,
    title: `Item ${i}`,
    body: `${'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(3)}${i}`,
    created_at: new Date(Date.UTC(2026, 0, 1, 12) + i * 37 * 60_000),
    big: BIGINT_AS_STRING ? big.toString() : big,
    price: (i * 12.34).toFixed(2),
    meta: JSON.parse(`{"rank": ${i}, "tags": ["a${i}", "b", "c"], "nested": {"ok": ${i % 2 === 0}, "none": null, "ratio": ${i / 7}}}`),
  }
}

interface Variant {
  readonly id: string
  readonly label: string
  encode(rows: readonly Row[]): Uint8Array | string
  decode(bytes: Uint8Array | string): unknown
}

/** Candidate (b): `[[column, kind, …], rows]` as JSON, kinds D (Date as ms) and b (bigint as text) revived on read. */
function typedColumnJson(): Variant {
  const isJson = (value: unknown, depth: number): boolean => {
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return true
    if (typeof value === 'number') return Number.isFinite(value) && !Object.is(value, -0)
    if (typeof value !== 'object' || depth > 1000) return false
    const prototype: unknown = Object.getPrototypeOf(value)
    if (prototype === Array.prototype) return (value as unknown[]).every((item) => isJson(item, depth + 1))
    return prototype === Object.prototype && Object.values(value).every((item) => isJson(item, depth + 1))
  }
  const kindOf = (value: unknown): string => {
    if (value instanceof Date) return 'D'
    if (typeof value === 'bigint') return 'b'
    if (isJson(value, 0)) return 'j'
    throw new TypeError('typed-column JSON prototype: a value of another kind')
  }
  return {
    id: 'typed-json',
    label: 'typed-column JSON (JSON.parse + revive Date/bigint columns)',
    encode(rows) {
      const columns = Object.keys(rows[0] ?? {})
      const kinds = columns.map((column) => kindOf(rows[0]![column]))
      const header: string[] = []
      columns.forEach((column, i) => kinds[i] !== 'j' && header.push(column, kinds[i]!))
      const out = rows.map((row) => {
        const copy: Row = { ...row }
        columns.forEach((column, i) => {
          const value = row[column]
          if (kindOf(value) !== kinds[i]) throw new TypeError(`column ${column} mixes kinds`)
          if (kinds[i] === 'D') copy[column] = (value as Date).getTime()
          else if (kinds[i] === 'b') copy[column] = (value as bigint).toString()
        })
        return copy
      })
      return JSON.stringify([header, out])
    },
    decode(text) {
      const [header, rows] = JSON.parse(text as string) as [string[], Row[]]
      for (let i = 0; i < header.length; i += 2) {
        const column = header[i]!
        const revive = header[i + 1] === 'D' ? (value: unknown) => new Date(value as number) : (value: unknown) => BigInt(value as string)
        for (const row of rows) row[column] = revive(row[column])
      }
      return rows
    },
  }
}

/** msgpackr's no-eval build: the module instance RowEncoding uses (its extensions registered: Dates are written with its Date extension here too). */
const noEval = createRequire(import.meta.url)('msgpackr/index-no-eval') as typeof import('msgpackr')
const MSGPACK = {
  useRecords: true,
  mapsAsObjects: false,
  moreTypes: true,
  useBigIntExtension: true,
  useToJSON: false,
  structuredClone: false,
} as const

function rawMsgpackr(id: string, label: string, packr: Packr): Variant {
  return { id, label, encode: (rows) => packr.pack(rows), decode: (bytes) => packr.unpack(bytes as Uint8Array) }
}

/** Prototypes the superjson codec let through (its typed arrays: not the BigInt64 ones). */
const SUPERJSON_KEEPS = new Set<unknown>([
  null,
  ...[Object, Array, Date, Map, Set, RegExp, URL, Buffer, Int8Array, Uint8Array, Uint8ClampedArray].map((type) => type.prototype),
  ...[Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array].map((type) => type.prototype),
])

/** The baseline: the superjson row codec as src/cache/codec.ts had it before RowEncoding. */
function superjsonRows(): Variant {
  const serializer = new SuperJSON()
  const bytea = (value: unknown): value is Buffer => Buffer.isBuffer(value)
  serializer.registerCustom<Buffer, string>(
    { isApplicable: bytea, serialize: (b) => b.toString('base64'), deserialize: (t) => Buffer.from(t, 'base64') },
    'Buffer',
  )
  const changesClass = (value: unknown): value is unknown => {
    if (value === null || typeof value !== 'object') return typeof value === 'function' || typeof value === 'symbol'
    const prototype: unknown = Object.getPrototypeOf(value)
    return prototype === Date.prototype ? Number.isNaN((value as Date).getTime()) : !SUPERJSON_KEEPS.has(prototype)
  }
  const refuse = (): never => {
    throw new TypeError('would come back as another class')
  }
  // Registered last, as it was: superjson asks it about every value no other rule claims.
  serializer.registerCustom<unknown, string>({ isApplicable: changesClass, serialize: refuse, deserialize: refuse }, 'unfaithful')
  return {
    id: BASELINE,
    label: 'superjson row codec (before RowEncoding)',
    encode: (input) => serializer.stringify(input),
    decode(text) {
      const rows = serializer.parse<unknown>(text as string)
      if (!Array.isArray(rows)) throw new TypeError('not a row array')
      return rows
    },
  }
}

function variants(): Variant[] {
  const codec = new Codec([])
  const rows = new RowEncoding([])
  const withType = new RowEncoding([decimalType])
  const generations = ['m5kx2a.17', 'm5kx2a.42']
  return [
    superjsonRows(),
    {
      id: 'codec',
      label: 'Codec now: rows + entry framing',
      encode: (input) => codec.encodeEntry(generations, codec.tryEncodeRows(input) as Buffer, { freshUntil: 1_800_000_000_000, expiresAt: 1_800_000_060_000, computeMs: 12 }),
      decode: (entry) => codec.decodeRows(codec.decodeEntry(entry as Buffer)!.rows),
    },
    {
      id: CHOSEN,
      label: 'RowEncoding: msgpackr no-eval, records + bundleStrings, checked',
      encode: (input) => rows.encode(input) as Buffer,
      decode: (bytes) => rows.decode(bytes as Uint8Array),
    },
    {
      id: `${CHOSEN}+type`,
      label: 'the same with one type registered (asked about every value)',
      encode: (input) => withType.encode(input) as Buffer,
      decode: (bytes) => withType.decode(bytes as Uint8Array),
    },
    rawMsgpackr('mp-bundle', 'msgpackr no-eval, records + bundleStrings, unchecked', new noEval.Packr({ ...MSGPACK, bundleStrings: true })),
    rawMsgpackr('mp-records', 'msgpackr no-eval, records, unchecked', new noEval.Packr(MSGPACK)),
    rawMsgpackr('mp-maps', 'msgpackr no-eval, maps, unchecked', new noEval.Packr({ ...MSGPACK, useRecords: false, mapsAsObjects: true })),
    rawMsgpackr('mp-eval', 'stock msgpackr, records + bundleStrings, unchecked', new Packr({ ...MSGPACK, bundleStrings: true })),
    typedColumnJson(),
    {
      id: 'v8',
      label: 'v8.serialize (structured clone)',
      encode: (input) => v8.serialize(input),
      decode: (bytes) => v8.deserialize(bytes as Uint8Array),
    },
  ]
}

function byteLength(encoded: Uint8Array | string): number {
  return typeof encoded === 'string' ? Buffer.byteLength(encoded) : encoded.byteLength
}

/** Microseconds per call of `run`, over a batch of `times` calls. */
function perCall(times: number, run: () => unknown): number {
  const start = process.hrtime.bigint()
  for (let i = 0; i < times; i++) run()
  return Number(process.hrtime.bigint() - start) / times / 1000
}

function msgpackrVersion(): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'msgpackr', 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return undefined
  }
}

interface Cell {
  encodeUs: number[]
  decodeUs: number[]
}

async function main(): Promise<void> {
  const machine = await describeMachine()
  const all = variants()
  const data = new Map(SIZES.map((size) => [size, Array.from({ length: size }, (_, i) => makeRow(i + 1))]))
  const encoded = new Map<string, Uint8Array | string>()
  for (const variant of all) {
    for (const [size, rows] of data) {
      const bytes = variant.encode(rows)
      encoded.set(`${variant.id}/${size}`, bytes)
      try {
        deepStrictEqual(variant.decode(bytes), rows)
      } catch (error) {
        couldNotRun(new Error(`${variant.id} does not bring back ${size} rows as they were`, { cause: error }))
      }
    }
  }
  const cells = new Map<string, Cell>(all.flatMap((v) => SIZES.map((size) => [`${v.id}/${size}`, { encodeUs: [], decodeUs: [] }])))
  const started = performance.now()
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    for (const size of SIZES) {
      const rows = data.get(size)!
      const times = Math.max(1, Math.round(ROW_OPS / size))
      for (let k = 0; k < all.length; k++) {
        const variant = all[(k + round) % all.length]!
        const key = `${variant.id}/${size}`
        const bytes = encoded.get(key)!
        const encodeUs = perCall(times, () => variant.encode(rows))
        const decodeUs = perCall(times, () => variant.decode(bytes))
        if (round < WARMUP) continue
        cells.get(key)!.encodeUs.push(encodeUs)
        cells.get(key)!.decodeUs.push(decodeUs)
      }
    }
  }
  const elapsedS = (performance.now() - started) / 1000

  const results = SIZES.flatMap((size) => {
    const base = cells.get(`${BASELINE}/${size}`)!
    const [baseEncode, baseDecode] = [median(base.encodeUs), median(base.decodeUs)]
    const baseBytes = byteLength(encoded.get(`${BASELINE}/${size}`)!)
    return all.map((variant) => {
      const cell = cells.get(`${variant.id}/${size}`)!
      const [encodeUs, decodeUs] = [median(cell.encodeUs), median(cell.decodeUs)]
      const bytes = byteLength(encoded.get(`${variant.id}/${size}`)!)
      return {
        variant: variant.id,
        label: variant.label,
        rows: size,
        encodeUs: round(encodeUs, 2),
        decodeUs: round(decodeUs, 2),
        bytes,
        bytesRatio: round(bytes / baseBytes, 2),
        encodeSpeedup: round(baseEncode / encodeUs, 2),
        decodeSpeedup: round(baseDecode / decodeUs, 2),
        encodeRoundRangeUs: [round(Math.min(...cell.encodeUs), 2), round(Math.max(...cell.encodeUs), 2)],
        decodeRoundRangeUs: [round(Math.min(...cell.decodeUs), 2), round(Math.max(...cell.decodeUs), 2)],
      }
    })
  })
  const chosen = results.find((r) => r.variant === CHOSEN && r.rows === 20)!

  console.log(`\nbench:codec — ${machineLine(machine)}`)
  const version = msgpackrVersion() ?? '?'
  console.log(`${ROUNDS} rounds (+${WARMUP} warm-up), ~${ROW_OPS} rows per batch, variants interleaved, bigint as ${flags.bigint}`)
  console.log(`msgpackr ${version} (stock build's native strings: ${isNativeAccelerationEnabled}), ${round(elapsedS, 1)} s\n`)
  const header = ['variant', 'rows', 'encode µs', 'decode µs', 'bytes', 'bytes ×', 'encode ×', 'decode ×']
  console.log(
    formatTable(
      header,
      results.map((r) => [r.variant, r.rows, r.encodeUs, r.decodeUs, r.bytes, r.bytesRatio, r.encodeSpeedup, r.decodeSpeedup]),
    ),
  )
  console.log('\n× = against superjson: its time / the variant\'s (speed-up), the variant\'s bytes / its bytes')
  const met = chosen.encodeSpeedup >= TARGET && chosen.decodeSpeedup >= TARGET
  const verdict = `target ≥ ${TARGET}× both: ${met ? 'met' : 'NOT met'}`
  console.log(`${CHOSEN} on 20 rows: encode ${chosen.encodeSpeedup}×, decode ${chosen.decodeSpeedup}× faster than superjson (${verdict})`)

  const result = {
    benchmark: 'codec',
    date: new Date().toISOString(),
    machine: { ...machine, packages: { ...machine.packages, msgpackr: version } },
    settings: { rounds: ROUNDS, warmup: WARMUP, rowsPerBatch: ROW_OPS, sizes: SIZES, bigint: flags.bigint },
    stockMsgpackrNativeStrings: isNativeAccelerationEnabled,
    elapsedSeconds: round(elapsedS, 1),
    results,
    target: { variant: CHOSEN, rows: 20, speedup: TARGET, encode: chosen.encodeSpeedup, decode: chosen.decodeSpeedup, met },
  }
  console.log(`wrote ${writeResult(flags.out ?? `codec-${today()}.json`, result)}`)
}

main().catch(couldNotRun)
