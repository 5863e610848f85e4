/**
 * The fuzz properties, defined once: the vitest files (`npm test`) run each with a few
 * hundred runs, `npm run fuzz` (main.ts) with many more. Each property names the
 * reader it attacks and what it must keep (see invariants.ts):
 *
 * 1. it never throws anything but its documented failure (decodeEntry: `undefined`;
 *    row decoding: a TypeError; documents: no document; manifests: a ManifestError;
 *    the read path: a miss);
 * 2. it changes no prototype, and builds nothing of a class the encoder never writes;
 * 3. it takes time and memory in proportion to its input;
 * 4. valid encodings still come back as they were written (so no property passes by
 *    refusing everything).
 */
import fc from 'fast-check'
import { Codec, decodeValue, encodeValue, TIMELESS, type EntryTimes } from '../../src/cache/codec.js'
import { freshness } from '../../src/cache/freshness.js'
import { RowEncoding } from '../../src/cache/row-encoding.js'
import { sameTokens } from '../../src/cache/tokens.js'
import { queryKey } from '../../src/keys.js'
import { parseCounter } from '../../src/monitor/recovery.js'
import { FarmStatistics } from '../../src/statistics/farm-statistics.js'
import { QueryStatistics } from '../../src/statistics/query-statistics.js'
import { entryShape, isParameterTree, validateSnapshot, type SnapshotEntry, type StatisticsSnapshot } from '../../src/statistics/statistics-snapshot.js'
import { readModeOverride, readTierState, type ModeOverride, type TierState } from '../../src/tier/tier-state.js'
import { createManifest, ManifestError, parseManifest, serializeManifest, type WarmupManifest } from '../../src/warmup/manifest.js'
import {
  damagedBytes,
  hostileCopy,
  hostileSuperjson,
  hotQueries,
  mutatedDocument,
  oddJson,
  parameters,
  readSql,
  storeHolding,
  toJsonText,
  validOverride,
  validSnapshot,
  validTierState,
} from './documents.js'
import { assertFailure, assertPrototypesIntact, assertProportionate, assertRowValues, DECODED_DEPTH_LIMIT, measure } from './invariants.js'
import { bigintKeyBomb, bundleBomb, deepNesting, framed, hostileBody, hugeClaims } from './msgpack.js'
import { databaseRows, readPathFixture } from './read-path.js'
import { difference, nested, registeredNames, registeredPrototypes, registeredTypes, rows, typedRows } from './rows.js'

export type Family = 'entry' | 'documents'

export interface FuzzProperty {
  readonly name: string
  readonly family: Family
  /** Runs in `npm test`: few enough that the whole fuzz folder takes under 30 s. */
  readonly quickRuns: number
  /** Share of `--runs` the long form gives it (1 unless a run is costly: large inputs, the read path). */
  readonly longShare: number
  /** Each property has its own inputs. */
  readonly property: () => fc.IRawProperty<any>
}

const plain = new RowEncoding()
const typed = new RowEncoding(registeredTypes)
const codec = new Codec()

// ---------------------------------------------------------------------------
// Row decoding
// ---------------------------------------------------------------------------

/**
 * Decodes `bytes` and checks everything a decode must keep: a TypeError or rows of
 * the encoder's values, in proportion to the bytes, no prototype touched, the same
 * rows again from a copy of the bytes (the decoder keeps no state between decodes),
 * sharing no memory with them. Returns the rows, or `undefined` when refused.
 */
function checkedDecode(encoding: RowEncoding, bytes: Uint8Array, classes: ReadonlySet<object> = new Set()): unknown[] | undefined {
  const outcome = measure(() => encoding.decode(bytes))
  assertProportionate(outcome.cost, bytes.length, 'decodeRows')
  assertPrototypesIntact()
  if (outcome.threw) {
    assertFailure(outcome.error, TypeError, 'decodeRows')
    return undefined
  }
  const decoded = outcome.value
  assertRowValues(decoded, classes, DECODED_DEPTH_LIMIT)
  const copy = Buffer.from(bytes)
  const again = encoding.decode(copy)
  copy.fill(0xc1)
  const changed = difference(again, decoded)
  if (changed !== undefined) throw new Error(`a second decode of the same bytes differs, or shares memory with them: ${changed}`)
  return decoded
}

function encoded(encoding: RowEncoding, value: readonly unknown[]): Buffer {
  const bytes = encoding.encode(value)
  if (!Buffer.isBuffer(bytes)) throw new Error(`the encoder refused generated rows: ${JSON.stringify(bytes)}`)
  return bytes
}

/** Truncations, bit flips, byte changes, insertions, deletions, region copies of `bytes`. */
function damage(bytes: Buffer, edits: ReadonlyArray<readonly [number, number, number]>): Buffer {
  let out = Buffer.from(bytes)
  for (const [at, kind, value] of edits) {
    if (out.length === 0) break
    const i = at % out.length
    switch (kind % 7) {
      case 0:
        out = out.subarray(0, i)
        break
      case 1:
        out[i] = out[i]! ^ (1 << (value & 7))
        break
      case 2:
        out[i] = value & 0xff
        break
      case 3:
        out = Buffer.concat([out.subarray(0, i), Buffer.from([value & 0xff]), out.subarray(i)])
        break
      case 4:
        out = Buffer.concat([out.subarray(0, i), out.subarray(i + 1 + (value % 16))])
        break
      case 5: {
        // A region repeated: lengths and record ids then point at the wrong things.
        const j = value % out.length
        out = Buffer.concat([out.subarray(0, i), out.subarray(Math.min(i, j), Math.max(i, j)), out.subarray(i)])
        break
      }
      default:
        out = Buffer.concat([out, Buffer.from([value & 0xff])])
    }
  }
  return out
}

const edits = fc.array(fc.tuple(fc.nat(), fc.nat(6), fc.nat(1 << 20)), { minLength: 1, maxLength: 4 })

/** Bytes a hostile writer puts where rows go: damaged valid rows, crafted MessagePack, bombs, random. */
const hostileRowBytes: fc.Arbitrary<Buffer> = fc.oneof(
  { arbitrary: fc.tuple(fc.oneof(rows, typedRows), edits).map(([value, changes]) => damage(encoded(typed, value), changes)), weight: 3 },
  { arbitrary: hostileBody(registeredNames).map(framed), weight: 3 },
  fc.oneof(hugeClaims(), deepNesting().map(framed), bundleBomb(), bigintKeyBomb()),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => framed(bytes)),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
)

const entryProperties: FuzzProperty[] = [
  {
    name: 'decodeEntry: any bytes give an entry of well-formed fields or undefined, never a throw',
    family: 'entry',
    quickRuns: 400,
    longShare: 1,
    property: () => {
      const empty = codec.encodeEntry([], Buffer.alloc(0))
      const header = empty.subarray(0, empty.indexOf(0x0a) + 1)
      const token = fc.string({ unit: fc.constantFrom(...'0123456789abcxyz.-_~'), minLength: 1, maxLength: 12 })
      const numberText = fc.oneof(fc.nat().map(String), fc.constantFrom('', ' 1', '1 ', '0x10', '1e3', '-0', '-1', 'NaN', 'Infinity', '9007199254740993', '1.5', '00', '+1'))
      const times = fc.record({ freshUntil: fc.nat(), expiresAt: fc.nat(), computeMs: fc.nat() }, { noNullPrototype: true })
      const valid = fc.tuple(fc.array(token, { maxLength: 4 }), fc.uint8Array({ maxLength: 64 }), times)
      const framedEntry = fc
        .tuple(fc.array(numberText, { minLength: 1, maxLength: 4 }), fc.array(token, { maxLength: 3 }), fc.uint8Array({ maxLength: 32 }), fc.boolean())
        .map(([numbers, generations, rest, newline]) => Buffer.concat([header, Buffer.from(`${numbers.join(',')}\n${generations.join(',')}${newline ? '\n' : ''}`, 'latin1'), rest]))
      const bytes = fc.oneof(
        valid.map(([generations, rowBytes, t]) => ({ bytes: codec.encodeEntry(generations, rowBytes, t), original: { generations, rows: Buffer.from(rowBytes), times: t } })),
        fc.tuple(valid, edits).map(([[generations, rowBytes, t], changes]) => ({ bytes: damage(codec.encodeEntry(generations, rowBytes, t), changes), original: undefined })),
        framedEntry.map((value) => ({ bytes: value, original: undefined })),
        fc.uint8Array({ maxLength: 200 }).map((value) => ({ bytes: Buffer.from(value), original: undefined })),
      )
      return fc.property(bytes, ({ bytes: value, original }) => {
        const outcome = measure(() => codec.decodeEntry(value))
        assertProportionate(outcome.cost, value.length, 'decodeEntry')
        if (outcome.threw) throw new Error('decodeEntry threw', { cause: outcome.error })
        const entry = outcome.value
        if (original !== undefined) {
          const lost = difference(entry === undefined ? undefined : { generations: entry.generations, rows: Buffer.from(entry.rows), times: entry.times }, original)
          if (lost !== undefined) throw new Error(`a valid entry did not come back: ${lost}`)
        }
        if (entry === undefined) return
        const { freshUntil, expiresAt, computeMs } = entry.times
        if (![freshUntil, expiresAt, computeMs].every((n) => Number.isSafeInteger(n) && n >= 0)) throw new Error(`times ${JSON.stringify(entry.times)}`)
        if (!entry.generations.every((g) => typeof g === 'string' && !g.includes(',') && !g.includes('\n'))) throw new Error('a generation with a separator')
        if (entry.rows.buffer !== value.buffer || entry.rows.length > value.length) throw new Error('rows outside the entry')
        // Stable: written again, it reads the same.
        const again = codec.decodeEntry(codec.encodeEntry(entry.generations, entry.rows, entry.times))
        if (again === undefined || difference(again.generations, entry.generations) !== undefined || !again.rows.equals(entry.rows)) {
          throw new Error('a decoded entry does not survive being written again')
        }
      })
    },
  },
  {
    name: 'decodeRows: random bytes (with and without the header) are refused with a TypeError',
    family: 'entry',
    quickRuns: 400,
    longShare: 1,
    property: () =>
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.uint8Array({ maxLength: 2048 }).map(framed)), (bytes) => {
        checkedDecode(plain, bytes)
      }),
  },
  {
    name: 'decodeRows: truncations, bit flips, insertions and region copies of valid encodings',
    family: 'entry',
    quickRuns: 300,
    longShare: 1,
    property: () =>
      fc.property(fc.oneof(rows, typedRows), edits, (value, changes) => {
        checkedDecode(typed, damage(encoded(typed, value), changes), registeredPrototypes)
      }),
  },
  {
    name: 'decodeRows: crafted MessagePack (lying lengths, every extension tag, records, Specials, registered names, C1, prototype keys)',
    family: 'entry',
    quickRuns: 500,
    longShare: 1,
    property: () =>
      fc.property(hostileBody(registeredNames), fc.boolean(), (body, withTypes) => {
        checkedDecode(withTypes ? typed : plain, framed(body), withTypes ? registeredPrototypes : new Set())
      }),
  },
  {
    name: 'decodeRows: bombs (4 GiB length headers in 5 bytes, 60 000 levels of nesting, string bundle bombs, bigint record keys) stay in proportion',
    family: 'entry',
    quickRuns: 60,
    longShare: 0.05,
    property: () =>
      fc.property(fc.oneof(hugeClaims(), deepNesting().map(framed), bundleBomb(), bigintKeyBomb()), (bytes) => {
        checkedDecode(plain, bytes)
      }),
  },
  {
    name: 'rows round-trip: every kind of value (Date, bigint, Buffer, typed arrays, Map, Set, lone surrogates, -0, null-prototype and __proto__ objects, registered classes)',
    family: 'entry',
    quickRuns: 300,
    // Strings of 30 000 characters, Buffers of 70 kB: 10 ms a run at times.
    longShare: 0.25,
    property: () =>
      fc.property(fc.oneof(rows, typedRows), (value) => {
        const bytes = encoded(typed, value)
        const decoded = checkedDecode(typed, bytes, registeredPrototypes)
        const lost = decoded === undefined ? 'refused its own encoding' : difference(decoded, value)
        if (lost !== undefined) throw new Error(`a round trip changed the rows: ${lost}`)
      }),
  },
  {
    name: 'rows round-trip: nesting up to the encoder limit (1000) comes back, deeper is refused on encode; bigints to 8192 bits',
    family: 'entry',
    quickRuns: 60,
    longShare: 0.05,
    property: () =>
      fc.property(fc.integer({ min: 0, max: 1100 }), fc.bigInt({ min: -(2n ** 8200n), max: 2n ** 8200n }), (depth, big) => {
        const deep = [{ deep: nested(depth) }]
        const bytes = plain.encode(deep)
        if (depth > 1000) {
          if (Buffer.isBuffer(bytes)) throw new Error(`nesting ${depth + 1} deep was encoded`)
        } else {
          const lost = difference(checkedDecode(plain, encoded(plain, deep)), deep)
          if (lost !== undefined) throw new Error(`nesting ${depth}: ${lost}`)
        }
        const fits = big < 2n ** 8191n && big >= -(2n ** 8191n)
        const bigBytes = plain.encode([{ big }])
        if (fits !== Buffer.isBuffer(bigBytes)) throw new Error(`a bigint of ${big.toString(2).length} bits was ${fits ? 'refused' : 'encoded'}`)
        if (fits && difference(checkedDecode(plain, bigBytes as Buffer), [{ big }]) !== undefined) throw new Error('a bigint changed')
      }),
  },
  {
    name: 'decodeRows: the decoder keeps no state from hostile bytes (valid rows read right after)',
    family: 'entry',
    quickRuns: 200,
    longShare: 0.2,
    property: () =>
      fc.property(hostileRowBytes, rows, (hostile, value) => {
        const bytes = encoded(typed, value)
        try {
          typed.decode(hostile)
        } catch {
          // Refused: what matters is the next decode.
        }
        const lost = difference(typed.decode(bytes), value)
        if (lost !== undefined) throw new Error(`valid rows read wrong after hostile bytes: ${lost}`)
      }),
  },
  {
    name: 'read path: a hostile entry under a cached query key is a miss served by the database (or the rows it faithfully holds), never a failed query',
    family: 'entry',
    quickRuns: 60,
    longShare: 0.05,
    property: () => {
      const variants = fc.oneof(
        // Framed with the right header and generations: the rows decoder decides.
        { arbitrary: fc.tuple(hostileRowBytes, fc.constant(true)), weight: 3 },
        fc.tuple(fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes)), fc.constant(false)),
        fc.tuple(edits, fc.constant(null)),
      )
      return fc.asyncProperty(variants, async ([payload, kind]) => {
        const fixture = await readPathFixture()
        const bytes =
          kind === true
            ? fixture.codec.encodeEntry(fixture.generations, payload as Buffer, TIMELESS)
            : kind === false
              ? (payload as Buffer)
              : damage(fixture.stored, payload as ReadonlyArray<readonly [number, number, number]>)
        const allowed = servable(fixture.codec, fixture.generations, bytes)
        await fixture.store.set(fixture.key, bytes, 600)
        const before = fixture.counter.executions
        let result: unknown[]
        try {
          result = await fixture.run()
        } catch (error) {
          throw new Error('the cached query failed on a hostile entry', { cause: error })
        }
        assertPrototypesIntact()
        const ran = fixture.counter.executions - before
        if (ran === 1) {
          if (!allowed.miss) throw new Error('a valid fresh entry was not served')
          const lost = difference(result, databaseRows())
          if (lost !== undefined) throw new Error(`rows from the database differ: ${lost}`)
        } else if (ran === 0) {
          if (allowed.hit === undefined) throw new Error('a hostile entry was served instead of the database')
          const lost = difference(result, allowed.hit)
          if (lost !== undefined) throw new Error(`served rows differ from the entry's: ${lost}`)
        } else {
          throw new Error(`the database ran the query ${ran} times`)
        }
      })
    },
  },
]

/**
 * What the read path may do with `bytes` under the key: serve their rows (`hit`: a valid
 * entry, current and fresh) or go to the database (`miss`: anything else); both when its
 * freshness is on the edge of now.
 */
function servable(entryCodec: Codec, generations: readonly string[], bytes: Buffer): { hit?: unknown[]; miss: boolean } {
  const entry = entryCodec.decodeEntry(bytes)
  if (entry === undefined || !sameTokens(entry.generations, generations)) return { miss: true }
  let rowsHeld: unknown[]
  try {
    rowsHeld = entryCodec.decodeRows(entry.rows)
  } catch {
    return { miss: true }
  }
  const times: EntryTimes = entry.times
  const now = Date.now()
  if (times.freshUntil !== 0 && Math.abs(times.freshUntil - now) < 10_000) return { hit: rowsHeld, miss: true }
  return freshness(times, now, 0, false) === 'expired' ? { miss: true } : { hit: rowsHeld, miss: false }
}

// ---------------------------------------------------------------------------
// Shared documents and manifests
// ---------------------------------------------------------------------------

function isTime(value: unknown): boolean {
  return typeof value === 'number' && Math.abs(value) <= 8.64e15 && !Number.isNaN(new Date(value).getTime())
}

function assertOnlyKeys(value: object, keys: readonly string[], what: string): void {
  if (Object.getPrototypeOf(value) !== Object.prototype) throw new Error(`${what} has another prototype`)
  const extra = Reflect.ownKeys(value).filter((key) => typeof key !== 'string' || !keys.includes(key))
  if (extra.length > 0) throw new Error(`${what} carries ${extra.map(String).join(', ')}`)
}

function assertSoundOverride(override: ModeOverride, what: string): void {
  assertOnlyKeys(override, ['mode', 'until', 'setBy', 'at'], what)
  if (override.mode !== 'normal' && override.mode !== 'degraded') throw new Error(`${what}.mode ${String(override.mode)}`)
  if (!isTime(override.until) || !isTime(override.at) || typeof override.setBy !== 'string') throw new Error(`${what} has bad fields`)
  // What `kysely-memcache status` prints.
  new Date(override.until).toISOString()
}

function assertSoundTierState(state: TierState): void {
  assertOnlyKeys(state, ['version', 'mode', 'down', 'since', 'reason', 'setBy', 'at', 'hitRatio', 'override', 'warmup'], 'state')
  if (state.version !== 1 || (state.mode !== 'normal' && state.mode !== 'degraded')) throw new Error('state.version or mode')
  if (!isTime(state.since) || !isTime(state.at)) throw new Error('state times')
  if (typeof state.reason !== 'string' || typeof state.setBy !== 'string') throw new Error('state texts')
  if (!Array.isArray(state.down) || !state.down.every((node) => typeof node === 'string')) throw new Error('state.down')
  if (state.hitRatio !== undefined && !(state.hitRatio >= 0 && state.hitRatio <= 1)) throw new Error(`state.hitRatio ${state.hitRatio}`)
  if (state.override !== undefined) assertSoundOverride(state.override, 'state.override')
  if (state.warmup !== undefined) {
    const { node, done, total, startedAt } = state.warmup
    if (typeof node !== 'string' || !Number.isSafeInteger(done) || !Number.isSafeInteger(total) || !isTime(startedAt)) throw new Error('state.warmup')
  }
  // What `kysely-memcache status` prints.
  new Date(state.since).toISOString()
  state.hitRatio?.toFixed(3)
}

/** A snapshot every consumer can use: valid, parameters decodable, a manifest built from it parses. */
function assertSoundSnapshot(snapshot: StatisticsSnapshot, what: string): void {
  validateSnapshot(JSON.parse(JSON.stringify(snapshot)), what)
  snapshot.entries.forEach((entry, i) => entryShape(entry, `${what}.entries[${i}]`))
}

function assertSoundManifest(manifest: WarmupManifest): void {
  for (const entry of manifest.entries) {
    if (!/^[!-~]{1,250}$/.test(entry.key)) throw new Error(`manifest key ${JSON.stringify(entry.key)}`)
    if (!Array.isArray(entry.parameters) || !isParameterTree(entry.parameters, 1e7)) throw new Error('manifest parameters')
    if (!(entry.score >= 0 && Number.isFinite(entry.score)) || !(entry.ttl >= 0 && entry.ttl <= 2_592_000)) throw new Error('manifest numbers')
  }
  // Written, read and written again, the text is the same (what the monitor's manifest file goes through).
  const text = serializeManifest(manifest)
  if (serializeManifest(parseManifest(text)) !== text) throw new Error('a parsed manifest does not survive being written again')
}

const asBytes = (value: unknown): Buffer => Buffer.from(toJsonText(value))

/** One to three copies (one per node): hostile, valid, or none. */
function copies<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<Array<{ bytes: Buffer | undefined; valid?: T }>> {
  return fc.array(
    fc.oneof(
      { arbitrary: hostileCopy(valid).map((bytes) => ({ bytes })), weight: 4 },
      valid.map((document) => ({ bytes: asBytes(document), valid: document })),
      fc.constant({ bytes: undefined }),
    ),
    { minLength: 1, maxLength: 3 },
  )
}

function statistics(now: number): QueryStatistics {
  const local = new QueryStatistics({ now: () => now })
  for (let i = 0; i < 3; i++) {
    local.record(`ns:q:local${i}`, () => ({ key: `ns:q:local${i}`, sql: 'select $1::int as n', parameters: [i, new Date(i), BigInt(i)], tables: [], tags: ['t'], ttl: 60 }), 'miss', 5 + i)
  }
  return local
}

const NOW = 1_750_000_000_000

const documentProperties: FuzzProperty[] = [
  {
    name: 'tier state: any copies read as a sound state (known fields only, times a Date holds) or none, never a throw; valid ones win',
    family: 'documents',
    quickRuns: 300,
    longShare: 1,
    property: () =>
      fc.asyncProperty(copies(validTierState), async (held) => {
        const state = await readTierState(storeHolding(held.map((copy) => copy.bytes)), 'ns')
        assertPrototypesIntact()
        const valid = held.flatMap((copy) => (copy.valid === undefined ? [] : [copy.valid]))
        if (valid.length > 0 && (state === undefined || state.at < Math.max(...valid.map((document) => document.at)))) {
          throw new Error('a valid copy lost to a hostile one')
        }
        if (state !== undefined) assertSoundTierState(state)
      }),
  },
  {
    name: 'tier state: a valid document reads back as written',
    family: 'documents',
    quickRuns: 200,
    longShare: 0.2,
    property: () =>
      fc.asyncProperty(validTierState, async (document) => {
        const lost = difference(await readTierState(storeHolding([asBytes(document)]), 'ns'), document)
        if (lost !== undefined) throw new Error(`a valid tier state changed: ${lost}`)
      }),
  },
  {
    name: 'mode override: any copies read as a sound override or none, never a throw; a valid one in force reads back as written',
    family: 'documents',
    quickRuns: 300,
    longShare: 1,
    property: () =>
      fc.asyncProperty(copies(validOverride), fc.integer({ min: 0, max: 4_102_444_800_000 }), async (held, now) => {
        const override = await readModeOverride(storeHolding(held.map((copy) => copy.bytes)), 'ns', now)
        assertPrototypesIntact()
        if (override !== undefined) {
          assertSoundOverride(override, 'override')
          if (!(override.until > now)) throw new Error('an expired override is in force')
        }
        if (held.length === 1 && held[0]!.valid !== undefined && held[0]!.valid.until > now) {
          const lost = difference(override, held[0]!.valid)
          if (lost !== undefined) throw new Error(`a valid override changed: ${lost}`)
        }
      }),
  },
  {
    name: 'farm statistics: garbage copies are no document; readSnapshot, read, push and the manifests built never fail, what push writes is valid',
    family: 'documents',
    quickRuns: 200,
    longShare: 0.5,
    property: () =>
      fc.asyncProperty(copies(validSnapshot), async (held) => {
        const store = storeHolding(held.map((copy) => copy.bytes))
        const errors: unknown[] = []
        const farm = new FarmStatistics({ store, namespace: 'ns', local: statistics(NOW), onError: (error) => errors.push(error) })
        const snapshot = await farm.readSnapshot()
        if (snapshot !== undefined) assertSoundSnapshot(snapshot, 'read')
        const valid = held.flatMap((copy) => (copy.valid === undefined ? [] : [copy.valid]))
        if (valid.length > 0 && (snapshot === undefined || snapshot.at < Math.max(...valid.map((document) => document.at)))) {
          throw new Error('a valid statistics copy lost to a hostile one')
        }
        const hot = await farm.read()
        const manifest = createManifest('ns', hot, new Date(NOW))
        assertSoundManifest(parseManifest(serializeManifest(manifest)))
        await farm.push()
        const written = store.written.at(-1)
        if (written === undefined) throw new Error('push wrote nothing')
        assertSoundSnapshot(validateSnapshot(JSON.parse(written.toString('utf8')), 'written'), 'written')
        assertPrototypesIntact()
      }),
  },
  {
    name: 'farm statistics: a valid document reads back as written, its parameters decoded',
    family: 'documents',
    quickRuns: 150,
    longShare: 0.2,
    property: () =>
      fc.asyncProperty(validSnapshot, async (document) => {
        const farm = new FarmStatistics({ store: storeHolding([asBytes(document)]), namespace: 'ns', local: new QueryStatistics() })
        const lost = difference(JSON.parse(JSON.stringify(await farm.readSnapshot())), JSON.parse(JSON.stringify(document)))
        if (lost !== undefined) throw new Error(`a valid snapshot changed: ${lost}`)
        const hot = await farm.read()
        for (const query of hot) {
          const entry = document.entries.find((candidate) => candidate.key === query.key)!
          const changed = difference(query.parameters, decodeValue(entry.parameters))
          if (changed !== undefined) throw new Error(`parameters changed: ${changed}`)
        }
      }),
  },
  {
    name: 'statistics snapshot: merge takes a valid snapshot, or throws a TypeError and merges nothing',
    family: 'documents',
    quickRuns: 300,
    longShare: 1,
    property: () => {
      const parsed = fc.oneof(
        { arbitrary: mutatedDocument(validSnapshot), weight: 4 },
        validSnapshot.map(toJsonText),
        oddJson,
      )
      return fc.property(parsed, (text) => {
        let value: unknown
        try {
          value = JSON.parse(text)
        } catch {
          return
        }
        const local = statistics(NOW)
        const before = JSON.stringify(local.snapshot())
        const outcome = measure(() => local.merge(value as StatisticsSnapshot))
        assertProportionate(outcome.cost, text.length, 'merge')
        assertPrototypesIntact()
        const after = local.snapshot()
        if (outcome.threw) {
          assertFailure(outcome.error, TypeError, 'merge')
          if (JSON.stringify(after) !== before) throw new Error('a refused snapshot merged something')
          return
        }
        assertSoundSnapshot(after, 'merged')
        assertSoundManifest(parseManifest(serializeManifest(createManifest('ns', local.top(50), new Date(NOW)))))
      })
    },
  },
  {
    name: 'warm-up manifest: any text or object parses to a sound manifest or throws a ManifestError',
    family: 'documents',
    quickRuns: 300,
    longShare: 1,
    property: () => {
      const validManifest = fc
        .array(fc.record({ key: fc.constantFrom('ns:q:a', 'ns:q:b'), sql: readSql, parameters, tables: fc.constant(['public.person']), tags: fc.constant([]), ttl: fc.nat(100), requests: fc.constant(1), error: fc.constant(0), hits: fc.constant(0), misses: fc.constant(1), meanDatabaseMs: fc.constant(1), totalDatabaseMs: fc.constant(1), lastSeen: fc.constant(NOW), score: fc.nat(1000) }, { noNullPrototype: true }), { maxLength: 3 })
        .map((hot) => JSON.parse(serializeManifest(createManifest('ns', hot, new Date(NOW)))) as unknown)
      const withParameters = fc.tuple(validManifest, hostileSuperjson).map(([manifest, text]) => {
        const document = manifest as { entries: Array<{ parameters: unknown }> }
        let parameters: unknown = text
        try {
          parameters = JSON.parse(text)
        } catch {
          // Kept as a string: a wrong type.
        }
        if (document.entries.length === 0) document.entries.push({ ...{ key: 'ns:q:x', sql: 'select 1', tables: [], tags: [], ttl: 1, score: 1 }, parameters })
        else document.entries[0]!.parameters = parameters
        return toJsonText(document)
      })
      const texts = fc.oneof(
        { arbitrary: mutatedDocument(validManifest), weight: 4 },
        { arbitrary: withParameters, weight: 2 },
        damagedBytes(validManifest.map(toJsonText)).map((bytes) => bytes.toString('utf8')),
        oddJson,
        validManifest.map(toJsonText),
      )
      return fc.property(texts, fc.boolean(), (text, asObject) => {
        let input: string | object = text
        if (asObject) {
          try {
            const value: unknown = JSON.parse(text)
            if (typeof value === 'object' && value !== null) input = value
          } catch {
            // Parsed as text then.
          }
        }
        const outcome = measure(() => parseManifest(input))
        assertProportionate(outcome.cost, text.length, 'parseManifest')
        assertPrototypesIntact()
        if (outcome.threw) return assertFailure(outcome.error, ManifestError, 'parseManifest')
        assertSoundManifest(outcome.value)
      })
    },
  },
  {
    name: 'warm-up manifest: createManifest leaves out what would not parse (hostile statistics), the rest round-trips',
    family: 'documents',
    quickRuns: 300,
    longShare: 1,
    property: () =>
      fc.property(hotQueries, (hot) => {
        const manifest = createManifest('ns', hot, new Date(NOW))
        const parsed = parseManifest(serializeManifest(manifest))
        const changed = difference(parsed, manifest)
        if (changed !== undefined) throw new Error(`a manifest changed on the way through its text: ${changed}`)
        for (const query of hot) {
          const sound =
            /^ns:q:[\w-]{43}$/.test(query.key) &&
            query.tables.every((table) => table !== '') &&
            query.tags.every((tag) => tag !== '') &&
            query.ttl >= 0 &&
            query.ttl <= 2_592_000 &&
            Number.isFinite(query.score) &&
            query.score >= 0 &&
            !query.sql.startsWith('delete') &&
            !query.sql.includes('; select') &&
            query.sql !== ''
          if (sound && !manifest.entries.some((entry) => entry.key === query.key && entry.sql === query.sql)) throw new Error(`a sound hot query was left out: ${query.key}`)
        }
      }),
  },
  {
    name: 'query parameters: superjson from the tier decodes to a finite tree (no cycles, no exponential sharing) or is refused; its cache key is computed',
    family: 'documents',
    quickRuns: 300,
    longShare: 1,
    property: () =>
      fc.property(hostileSuperjson, (text) => {
        const entry: SnapshotEntry = { key: 'ns:q:x', sql: 'select 1', parameters: text, tables: [], tags: [], ttl: 1, requests: 1, error: 0, hits: 0, misses: 1, executions: 1, databaseMs: 1, lastSeen: NOW }
        const outcome = measure(() => entryShape(entry, 'entry'))
        assertProportionate(outcome.cost, text.length, 'entryShape')
        assertPrototypesIntact()
        if (outcome.threw) return assertFailure(outcome.error, TypeError, 'entryShape')
        const shape = outcome.value
        const key = measure(() => queryKey('ns', 'select 1', shape.parameters, [], 'scope'))
        assertProportionate(key.cost, text.length, 'queryKey')
        // A key is computed, or refused for a parameter no query could carry (a symbol, say).
        if (key.threw) assertFailure(key.error, TypeError, 'queryKey')
        // Written again, the parameters decode the same (what a manifest and a merge do).
        const again = entryShape({ ...entry, parameters: encodeValue(shape.parameters) }, 'again')
        const changed = difference(again.parameters, shape.parameters)
        if (changed !== undefined && !String(changed).includes('prototype')) throw new Error(`parameters changed when written again: ${changed}`)
      }),
  },
  {
    name: 'farm counters: parseCounter reads decimal digits or nothing',
    family: 'documents',
    quickRuns: 200,
    longShare: 0.1,
    property: () =>
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 30 }).map((bytes) => Buffer.from(bytes)), fc.bigInt({ min: 0n, max: 2n ** 64n }).map((n) => Buffer.from(` ${n}\r\n`))), (bytes) => {
        const count = parseCounter(bytes)
        if (count !== undefined && !(Number.isFinite(count) && count >= 0)) throw new Error(`counter ${count}`)
      }),
  },
]

export const properties: readonly FuzzProperty[] = [...entryProperties, ...documentProperties]
