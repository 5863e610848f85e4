/**
 * The JSON documents processes share through memcached (tier state, mode override,
 * farm statistics) and warm-up manifests: valid ones, and hostile copies of them
 * (wrong types in every field, prototype keys, numbers JSON should not carry, deep
 * nesting, oversize, truncations and bit flips, random bytes).
 */
import fc from 'fast-check'
import { encodeValue } from '../../src/cache/codec.js'
import type { Store } from '../../src/store/store.js'
import { PROTOTYPE_KEYS } from './msgpack.js'

/** fast-check makes null-prototype records by default; documents are plain objects. */
const PLAIN = { noNullPrototype: true } as const

const time = fc.integer({ min: 0, max: 4_102_444_800_000 })
const mode = fc.constantFrom('normal' as const, 'degraded' as const)
const node = fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([host, port]) => `${host}:${port}`)

export const validOverride = fc.record({ mode, until: time, setBy: fc.string(), at: time }, PLAIN)

export const validTierState = fc.record(
  {
    version: fc.constant(1 as const),
    mode,
    down: fc.array(node, { maxLength: 4 }),
    since: time,
    reason: fc.string(),
    setBy: fc.string(),
    at: time,
    hitRatio: fc.double({ min: 0, max: 1, noNaN: true }),
    override: validOverride,
    warmup: fc.record({ node, done: fc.nat(), total: fc.nat(), startedAt: time }, PLAIN),
  },
  { requiredKeys: ['version', 'mode', 'down', 'since', 'reason', 'setBy', 'at'], noNullPrototype: true },
)

/** Query parameters as applications pass them (superjson keeps their types); sometimes one object twice. */
export const parameters = fc
  .array(
    fc.oneof(
      fc.integer(),
      fc.double({ noNaN: true }),
      fc.string(),
      fc.boolean(),
      fc.constant(null),
      fc.bigInt(),
      fc.date({ noInvalidDate: true }),
      fc.uint8Array({ maxLength: 8 }).map((bytes) => Buffer.from(bytes)),
      fc.jsonValue({ maxDepth: 2 }),
      fc.array(fc.integer(), { maxLength: 3 }),
    ),
    { maxLength: 5 },
  )
  .chain((list) =>
    fc.boolean().map((repeat) => {
      // The same object in two places: superjson's referentialEqualities, which a reader must accept.
      const shared = list.find((item) => typeof item === 'object' && item !== null)
      return repeat && shared !== undefined ? [...list, shared] : list
    }),
  )

export const cacheKey = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_'), minLength: 43, maxLength: 43 }).map((hash) => `ns:q:${hash}`)
const name = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz_.'), minLength: 1, maxLength: 12 })
export const readSql = fc.constantFrom('select * from "person" where "id" = $1', 'select 1', "select 'a;b' as x;", 'with t as (select 1) select * from t')

export const validSnapshot = fc.record({
  version: fc.constant(1 as const),
  at: time,
  halfLifeMs: fc.integer({ min: 1, max: 86_400_000 }),
  entries: fc.array(
    fc.record({
      key: cacheKey,
      sql: readSql,
      parameters: parameters.map(encodeValue),
      tables: fc.array(name, { maxLength: 3 }),
      tags: fc.array(name, { maxLength: 3 }),
      ttl: fc.integer({ min: 0, max: 2_592_000 }),
      requests: fc.double({ min: 0, max: 1e6, noNaN: true }),
      error: fc.double({ min: 0, max: 10, noNaN: true }),
      hits: fc.double({ min: 0, max: 1e6, noNaN: true }),
      misses: fc.double({ min: 0, max: 1e6, noNaN: true }),
      executions: fc.double({ min: 0, max: 1e6, noNaN: true }),
      databaseMs: fc.double({ min: 0, max: 1e9, noNaN: true }),
      lastSeen: time,
    }, PLAIN),
    { maxLength: 6 },
  ),
}, PLAIN)

/** Hot queries as read from farm statistics (any values a hostile document could pass the checks with). */
export const hotQueries = fc.array(
  fc.record({
    key: fc.oneof(cacheKey, fc.string(), fc.constant('has space'), fc.constant('x'.repeat(300))),
    sql: fc.oneof(readSql, fc.constantFrom('delete from person', 'select 1; select 2', '')),
    parameters,
    tables: fc.array(fc.oneof(name, fc.constant('')), { maxLength: 3 }),
    tags: fc.array(fc.oneof(name, fc.constant('')), { maxLength: 3 }),
    ttl: fc.oneof(fc.integer({ min: 0, max: 2_592_000 }), fc.constantFrom(-1, 2_592_001, Number.NaN, Number.POSITIVE_INFINITY)),
    requests: fc.double({ min: 0, max: 1e6, noNaN: true }),
    error: fc.double({ min: 0, max: 10, noNaN: true }),
    hits: fc.double({ min: 0, noNaN: true }),
    misses: fc.double({ min: 0, noNaN: true }),
    meanDatabaseMs: fc.double(),
    totalDatabaseMs: fc.double(),
    lastSeen: time,
    score: fc.oneof(fc.double({ min: 0, max: 1e12, noNaN: true }), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1)),
  }, PLAIN),
  { maxLength: 5 },
)

// ---------------------------------------------------------------------------
// Hostile JSON
// ---------------------------------------------------------------------------

/** Stands in a JSON value for a number token JSON.stringify cannot write (replaced in the text). */
const NUMBER_MARK = '\u0000number:'

/** Numbers a JSON text can hold that no writer of ours would: 1e999 parses as Infinity. */
const oddNumbers = fc.constantFrom('1e999', '-1e999', '1e308', '-0', '0.0000000001', '9007199254740993', '1e16', '-8.64e15', '8640000000000001', '1E2', '0e0')

/** Any JSON value of any type, with odd numbers and prototype keys (own properties) in objects. */
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  oddNumbers.map((token) => `${NUMBER_MARK}${token}`),
  fc.constantFrom(...PROTOTYPE_KEYS).chain((key) =>
    fc.jsonValue({ maxDepth: 2 }).map((value) => {
      const object: Record<string, unknown> = {}
      Object.defineProperty(object, key, { value: { polluted: true, mode: 'degraded', version: 1, ...(typeof value === 'object' ? {} : { value }) }, enumerable: true })
      return object
    }),
  ),
  fc.constantFrom('', 'degraded', 'normal', 'auto', 'DEGRADED', ' normal', [], {}, [1], null, true, 0, -1, 1.5, 'x'.repeat(1000)),
)

/** `JSON.stringify` with the number marks turned into the tokens they stand for. */
export function toJsonText(value: unknown): string {
  return (JSON.stringify(value) ?? 'null').replace(/"\\u0000number:([^"]*)"/g, '$1')
}

/** Every path to a value in a JSON-like tree. */
function pathsOf(value: unknown, path: ReadonlyArray<string | number> = []): Array<ReadonlyArray<string | number>> {
  const paths: Array<ReadonlyArray<string | number>> = [path]
  if (Array.isArray(value)) value.forEach((item, i) => paths.push(...pathsOf(item, [...path, i])))
  else if (typeof value === 'object' && value !== null) for (const [key, item] of Object.entries(value)) paths.push(...pathsOf(item, [...path, key]))
  return paths
}

function withAt(value: unknown, path: ReadonlyArray<string | number>, replace: (old: unknown) => unknown): unknown {
  if (path.length === 0) return replace(value)
  const [head, ...rest] = path
  if (Array.isArray(value)) return value.map((item, i) => (i === head ? withAt(item, rest, replace) : item))
  const copy: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (key === head) {
      const next = withAt(item, rest, replace)
      if (next !== DELETE) Object.defineProperty(copy, key, { value: next, enumerable: true, writable: true, configurable: true })
    } else {
      Object.defineProperty(copy, key, { value: item, enumerable: true, writable: true, configurable: true })
    }
  }
  return copy
}

const DELETE = Symbol('delete')

/** A valid document with one to three of its values (or keys) changed to something hostile. */
export function mutatedDocument(valid: fc.Arbitrary<unknown>): fc.Arbitrary<string> {
  const edit = fc.tuple(fc.nat(), fc.oneof({ arbitrary: wrongValue.map((value) => ({ value })), weight: 4 }, fc.constant({ value: DELETE }), fc.constantFrom(...PROTOTYPE_KEYS).map((key) => ({ key }))))
  return fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 3 })).map(([document, edits]) => {
    let current = document
    for (const [pick, change] of edits) {
      const paths = pathsOf(current)
      const path = paths[pick % paths.length]!
      current =
        'key' in change
          ? withAt(current, path, (old) => {
              // Adds an own property named like a prototype key next to the others.
              if (typeof old !== 'object' || old === null || Array.isArray(old)) return old
              const copy = { ...(old as object) }
              Object.defineProperty(copy, change.key, { value: { polluted: true }, enumerable: true })
              return copy
            })
          : path.length === 0 && change.value === DELETE
            ? current
            : withAt(current, path, () => change.value)
    }
    return toJsonText(current)
  })
}

/** Bytes of a valid document, truncated, bit-flipped, or with bytes inserted. */
export function damagedBytes(text: fc.Arbitrary<string>): fc.Arbitrary<Buffer> {
  return fc.tuple(text, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })).map(([value, edits]) => {
    let bytes = Buffer.from(value, 'utf8')
    for (const [at, kind, byte] of edits) {
      if (bytes.length === 0) break
      const i = at % bytes.length
      if (kind === 0) bytes = bytes.subarray(0, i)
      else if (kind === 1) bytes[i] = bytes[i]! ^ (1 << (byte & 7))
      else if (kind === 2) bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([byte]), bytes.subarray(i)])
      else bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1 + (byte & 7))])
    }
    return bytes
  })
}

/** JSON texts no document is: deep nesting, huge, duplicate keys, JSON of another shape. */
export const oddJson = fc.oneof(
  fc.integer({ min: 1000, max: 200_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
  fc.integer({ min: 1000, max: 100_000 }).map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
  fc.integer({ min: 1000, max: 50_000 }).map((depth) => `{"version":1,"entries":${'['.repeat(depth)}${']'.repeat(depth)}}`),
  fc.constant('{"version":1,"mode":"normal","mode":"degraded","down":[],"since":0,"reason":"","setBy":"","at":0}'),
  fc.integer({ min: 10_000, max: 400_000 }).map((length) => JSON.stringify({ version: 1, mode: 'degraded', down: [], since: 0, reason: 'x'.repeat(length), setBy: '', at: 0 })),
  fc.integer({ min: 1000, max: 60_000 }).map((count) => JSON.stringify({ version: 1, at: 0, halfLifeMs: 1, entries: Array.from({ length: count }, () => ({})) })),
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.constantFrom('', 'null', 'true', '[]', '{}', '"x"', '1e999', '\ufeff{}', '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}'),
)

/** Copies of a document as a hostile writer leaves them: any bytes, a mutated document, damaged bytes, odd JSON. */
export function hostileCopy(valid: fc.Arbitrary<unknown>): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { arbitrary: mutatedDocument(valid).map((value) => Buffer.from(value)), weight: 5 },
    { arbitrary: damagedBytes(valid.map(toJsonText)), weight: 2 },
    { arbitrary: oddJson.map((value) => Buffer.from(value)), weight: 2 },
    fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
  )
}

/**
 * superjson texts a hostile writer could put where parameters go: referentialEqualities
 * making cycles and exponential sharing, values of unknown types, prototype paths.
 */
export const hostileSuperjson = fc.oneof(
  parameters.map(encodeValue),
  fc.integer({ min: 1, max: 60 }).map((depth) => {
    // [[[…, 0], 0], 0]: each level's second item made its first, 2^depth values from a few characters a level.
    let json: unknown = 0
    const equal: Record<string, string[]> = {}
    let path = '0'
    for (let i = 0; i < depth; i++) {
      json = [json, 0]
      equal[`${path}.0`] = [`${path}.1`]
      path = `${path}.0`
    }
    return JSON.stringify({ json: [json], meta: { referentialEqualities: equal } })
  }),
  fc.constantFrom(
    '{"json":[[0]],"meta":{"referentialEqualities":{"0":["0.0"]}}}',
    '{"json":[{"a":{}}],"meta":{"referentialEqualities":{"0":["0.a.b"]}}}',
    '{"json":[[],0],"meta":{"referentialEqualities":{"0":["1"]}}}',
    '{"json":[{"a":1}],"meta":{"values":{"0.__proto__":["map"]}}}',
    '{"json":[{}],"meta":{"values":{"0.constructor.prototype":["map"]}}}',
    '{"json":[1],"meta":{"values":{"0":[["custom","Buffer"]]}}}',
    '{"json":["1e999"],"meta":{"values":{"0":["bigint"]}}}',
    '{"json":["x"],"meta":{"values":{"0":[["class","Object"]]}}}',
    '{"json":["x"],"meta":{"values":{"0":[["symbol","s"]]}}}',
    '{"json":[[[0,0]]],"meta":{"values":{"0":["map"]},"referentialEqualities":{"0":["0.0.0"]}}}',
    '{"json":{"0":1},"meta":{"v":1}}',
    '{"json":[],"meta":{"values":"x"}}',
    '{"json":[1],"meta":null}',
    '{"json":["abc"],"meta":{"values":{"0":["regexp"]}}}',
    '[1,2]',
  ),
  fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }))).map(([json, meta]) => JSON.stringify({ json, meta })),
  fc.string(),
)

/** A store holding these copies of a shared document (one per node); takes what is written. */
export function storeHolding(copies: ReadonlyArray<Buffer | undefined>): Store & { readonly written: Buffer[] } {
  const written: Buffer[] = []
  const unsupported = (): never => {
    throw new Error('not part of the shared-document fuzz store')
  }
  return {
    written,
    maxValueBytes: 1024 * 1024,
    getReplicas: async () => [...copies],
    setReplicas: async (_key: string, value: Buffer) => {
      written.push(value)
      return copies.map(() => true as const)
    },
    get: unsupported,
    set: unsupported,
    add: unsupported,
    delete: unsupported,
    increment: unsupported,
    readHomes: unsupported,
    writeHomes: unsupported,
    addHomes: unsupported,
    close: async () => {},
  }
}
