/**
 * Rows as drivers (and jsonb) return them, for the round-trip properties: every
 * kind of value the row encoding keeps, nested, with the keys and numbers that
 * are easy to lose (`__proto__`, lone surrogates, -0, NaN payloads), and a strict
 * comparison that tells where two values differ.
 */
import fc from 'fast-check'
import type { CacheType } from '../../src/cache/cache-type.js'
import { Decimal, decimalType } from '../harness/decimal.js'
import { PROTOTYPE_KEYS } from './msgpack.js'

export class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

/** A registered type whose deserialize checks nothing: garbage payloads reach it. */
export const pointType: CacheType<Point, [number, number]> = {
  name: 'Point',
  isApplicable: (value): value is Point => value instanceof Point,
  serialize: (value) => [value.x, value.y],
  // At run time any decoded value: a number gives Point(undefined, undefined), null throws.
  deserialize: (value) => new Point(value[0], value[1]),
}

export const registeredTypes: readonly CacheType[] = [decimalType as CacheType, pointType as CacheType]
export const registeredNames = registeredTypes.map((type) => type.name)
export const registeredPrototypes: ReadonlySet<object> = new Set([Decimal.prototype, Point.prototype])

/** Strings with lone surrogates: UTF-8 cannot hold them, the encoding must still bring them back. */
const loneSurrogates = fc
  .array(fc.oneof(fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)), fc.string({ maxLength: 3 })), { maxLength: 6 })
  .map((parts) => parts.join(''))

export const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  loneSurrogates,
  // Long enough for several string bundles (msgpackr bundles 4 to 4095 characters).
  fc.integer({ min: 4000, max: 30_000 }).map((length) => 'ü'.repeat(length)),
  fc.constantFrom('', 'rows', 'a'.repeat(4095), 'b'.repeat(4096)),
)

export const keyString = fc.oneof({ arbitrary: fc.string({ maxLength: 8 }), weight: 4 }, fc.constantFrom(...PROTOTYPE_KEYS, '', '0', '01', '1e3', '-1', '4294967295'), loneSurrogates)

const validDate = fc.date({ noInvalidDate: true, min: new Date(-8.64e15), max: new Date(8.64e15) })

const typedArray = fc.oneof(
  fc.int8Array({ maxLength: 8 }),
  fc.uint8Array({ maxLength: 8 }),
  fc.uint8ClampedArray({ maxLength: 8 }),
  fc.int16Array({ maxLength: 8 }),
  fc.uint16Array({ maxLength: 8 }),
  fc.int32Array({ maxLength: 8 }),
  fc.uint32Array({ maxLength: 8 }),
  fc.float32Array({ maxLength: 8 }),
  fc.float64Array({ maxLength: 8 }),
  fc.bigInt64Array({ maxLength: 4 }),
  fc.bigUint64Array({ maxLength: 4 }),
  // A view into a larger buffer, at an offset.
  fc.uint8Array({ minLength: 4, maxLength: 12 }).map((bytes) => new Uint16Array(bytes.buffer, 2, Math.floor((bytes.length - 2) / 2))),
)

/** Bigints up to the encoder's cap (8192 bits), both signs. */
const anyBigint = fc.oneof(fc.bigInt(), fc.bigInt({ min: -(2n ** 8191n), max: 2n ** 8191n - 1n }), fc.constantFrom(2n ** 63n, -(2n ** 63n) - 1n, 2n ** 64n, 2n ** 8191n - 1n, -(2n ** 8191n)))

const leaf = fc.oneof(
  fc.constantFrom(null, undefined, true, false, -0, 0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.MAX_SAFE_INTEGER, 2 ** 32, -(2 ** 31) - 1),
  fc.integer(),
  fc.double(),
  anyString,
  anyBigint,
  validDate,
  fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
  fc.integer({ min: 17, max: 70_000 }).map((length) => Buffer.alloc(length, length & 0xff)),
  typedArray,
  fc.constantFrom(/a+b/giu, new RegExp('[\\u{1F600}-\\u{1F64F}]', 'u'), new RegExp('x', 'dy'), /\/\\/ms),
  fc.webUrl({ withQueryParameters: true, withFragments: true }).map((url) => new URL(url)),
  fc.jsonValue({ maxDepth: 3 }),
)

/** An object with these entries: defined, not assigned, so a `__proto__` key is data. */
export function objectOf(entries: ReadonlyArray<readonly [string, unknown]>, bare: boolean): Record<string, unknown> {
  const object: Record<string, unknown> = bare ? (Object.create(null) as Record<string, unknown>) : {}
  for (const [key, value] of entries) Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true })
  return object
}

const { value: rowValue } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { arbitrary: leaf, weight: 8 },
    fc.array(tie('value'), { maxLength: 5 }),
    fc.array(fc.tuple(keyString, tie('value')), { maxLength: 5 }).map((entries) => objectOf(entries, false)),
    fc.array(fc.tuple(keyString, tie('value')), { maxLength: 4 }).map((entries) => objectOf(entries, true)),
    fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 4 }).map((entries) => new Map(entries)),
    fc.array(tie('value'), { maxLength: 4 }).map((items) => new Set(items)),
  ),
}))

export { rowValue }

/** A result: rows of columns, sometimes rows that are not objects (raw queries can return anything). */
export const rows = fc.array(
  fc.oneof(
    { arbitrary: fc.array(fc.tuple(keyString, rowValue), { maxLength: 8 }).map((entries) => objectOf(entries, false)), weight: 6 },
    fc.array(fc.tuple(keyString, rowValue), { maxLength: 4 }).map((entries) => objectOf(entries, true)),
    rowValue,
  ),
  { maxLength: 6 },
)

/** Rows with values of the registered classes anywhere. */
export const typedRows = fc.array(
  fc
    .array(
      fc.tuple(
        keyString,
        fc.oneof(
          rowValue,
          fc.tuple(fc.double(), fc.double()).map(([x, y]) => new Point(x, y)),
          fc.tuple(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), fc.integer({ min: 0, max: 20 })).map(([digits, scale]) => {
            const text = digits.toString().padStart(scale + 1, '0')
            return new Decimal(scale === 0 ? text : `${text.slice(0, -scale)}.${text.slice(-scale)}`)
          }),
          fc.array(fc.tuple(fc.integer(), fc.integer()).map(([x, y]) => new Point(x, y)), { maxLength: 3 }),
        ),
      ),
      { maxLength: 6 },
    )
    .map((entries) => objectOf(entries, false)),
  { maxLength: 5 },
)

/** Nested `depth` levels (arrays and objects alternating), a leaf at the bottom. */
export function nested(depth: number): unknown {
  let value: unknown = 'bottom'
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { next: value }
  return value
}

/**
 * Where `actual` differs from `expected`, or `undefined`: prototypes by identity,
 * numbers by Object.is, own keys in order, typed arrays byte by byte, Dates by time,
 * URLs by href, RegExps by source and flags, Maps and Sets in order.
 */
export function difference(actual: unknown, expected: unknown, path = 'rows'): string | undefined {
  if (typeof expected !== 'object' || expected === null) {
    return Object.is(actual, expected) ? undefined : `${path}: ${describeValue(actual)} instead of ${describeValue(expected)}`
  }
  if (typeof actual !== 'object' || actual === null) return `${path}: ${describeValue(actual)} instead of an object`
  if (Object.getPrototypeOf(actual) !== Object.getPrototypeOf(expected)) return `${path}: another prototype`
  if (expected instanceof Date) return (actual as Date).getTime() === expected.getTime() ? undefined : `${path}: another time`
  if (expected instanceof URL) return (actual as URL).href === expected.href ? undefined : `${path}: another URL`
  if (expected instanceof RegExp) {
    const regexp = actual as RegExp
    return regexp.source === expected.source && regexp.flags === expected.flags ? undefined : `${path}: another RegExp`
  }
  if (ArrayBuffer.isView(expected)) {
    const a = Buffer.from((actual as ArrayBufferView).buffer, (actual as ArrayBufferView).byteOffset, (actual as ArrayBufferView).byteLength)
    const b = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)
    return a.equals(b) ? undefined : `${path}: other bytes`
  }
  if (expected instanceof Set) {
    // Values once each (a Set's entries() repeats them: nested Sets would be compared 2^depth times).
    const a = [...(actual as Set<unknown>)]
    const b = [...expected]
    if (a.length !== b.length) return `${path}: ${a.length} items instead of ${b.length}`
    for (let i = 0; i < b.length; i++) {
      const found = difference(a[i], b[i], `${path}<${i}>`)
      if (found !== undefined) return found
    }
    return undefined
  }
  if (expected instanceof Map) {
    const a = [...(actual as Map<unknown, unknown>)]
    const b = [...expected]
    if (a.length !== b.length) return `${path}: ${a.length} entries instead of ${b.length}`
    for (let i = 0; i < b.length; i++) {
      const found = difference(a[i]![0], b[i]![0], `${path}<key ${i}>`) ?? difference(a[i]![1], b[i]![1], `${path}<${i}>`)
      if (found !== undefined) return found
    }
    return undefined
  }
  const keysA = Reflect.ownKeys(actual)
  const keysB = Reflect.ownKeys(expected)
  if (keysA.length !== keysB.length || keysA.some((key, i) => key !== keysB[i])) {
    return `${path}: keys ${JSON.stringify(keysA.map(String))} instead of ${JSON.stringify(keysB.map(String))}`
  }
  for (const key of keysB) {
    const a = Object.getOwnPropertyDescriptor(actual, key)!
    const b = Object.getOwnPropertyDescriptor(expected, key)!
    if (a.enumerable !== b.enumerable) return `${path}.${String(key)}: enumerable differs`
    if (key === 'length' && Array.isArray(expected)) continue
    const found = difference(a.value, b.value, `${path}.${String(key)}`)
    if (found !== undefined) return found
  }
  return undefined
}

function describeValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (Object.is(value, -0)) return '-0'
  return typeof value === 'object' && value !== null ? `a ${value.constructor?.name ?? 'bare object'}` : String(value)
}
