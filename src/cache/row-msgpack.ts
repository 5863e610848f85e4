/**
 * The msgpackr instance the row encoding writes and reads with, and the four
 * extensions it adds: Date, Buffer, URL, and the values msgpackr would not bring back
 * as themselves on its own (see {@link Special}).
 *
 * Loaded from msgpackr's `index-no-eval` build, on purpose:
 * - that build never calls `new Function`: the stock build compiles a reader for
 *   each record (object shape) from the keys found in the bytes being read;
 * - it is a module instance of its own, so the extensions added here are not seen
 *   by other users of msgpackr in the process, nor theirs by this one (`addExtension`
 *   is global to a module instance).
 *
 * Configuration, and why (see docs of msgpackr's options):
 * - `useRecords: true` without `structures`/`getStructures`/`saveStructures`: object
 *   shapes are written as records defined inside each buffer (nothing shared between
 *   buffers, so a reader in another process needs only the bytes);
 * - `bundleStrings`: the strings of 4 to 4095 characters are gathered into two strings
 *   inside the same buffer, each read with one decode instead of one per value (what
 *   makes decoding fast without native string extraction, which this build lacks);
 * - `moreTypes`: Set, RegExp and typed arrays as extensions (else Set and RegExp come
 *   back as arrays);
 * - `useBigIntExtension`, `largeBigIntToFloat: false`: bigints beyond 64 bits exactly,
 *   `int64AsType: 'bigint'` (the default) reads 64-bit integers back as bigint (msgpackr
 *   writes numbers as integers up to 32 bits, else as doubles, so an int64 is a bigint);
 * - `useToJSON: false`: a JSON key `toJSON` is data, not a method to call;
 * - `structuredClone: false`: no shared-reference extension on either side;
 * - `mapsAsObjects: false`: a msgpack map is read as a Map (plain objects are records);
 * - `copyBuffers` (reading): a msgpack bin is copied, not a view of the bytes read.
 *
 * Reading trusts nothing in the bytes (the cache tier is not trusted): msgpackr's own
 * readers that could build what packRows never writes (ArrayBuffer, DataView, invalid
 * Dates, a Set of a string's characters, its C1 marker object) or take time out of
 * proportion to the bytes (bigint record keys, string bundles) are replaced or checked
 * here, and unpackRows refuses bytes packRows could not have written before msgpackr
 * reads them (see {@link unpackRows}).
 */
import { createRequire } from 'node:module'
import type { CacheType } from './cache-type.js'

type Msgpackr = typeof import('msgpackr')

const msgpackr = createRequire(import.meta.url)('msgpackr/index-no-eval') as Msgpackr

const OPTIONS = {
  useRecords: true,
  moreTypes: true,
  useBigIntExtension: true,
  largeBigIntToFloat: false,
  int64AsType: 'bigint',
  useToJSON: false,
  structuredClone: false,
  mapsAsObjects: false,
  useFloat32: 0,
  useTimestamp32: false,
  encodeUndefinedAsNil: false,
  bundleStrings: true,
} as const

/** Extension types (msgpack application types, 0–127); msgpackr's own are 0, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72–0x74, 0x78. */
const DATE_TYPE = 0x64
/** msgpackr's Error extension. */
const ERROR_TYPE = 0x65
const SPECIAL_TYPE = 0x6b
const BUFFER_TYPE = 0x6e
const URL_TYPE = 0x75
/** msgpackr's extensions for bigints beyond 64 bits, string bundles, Set, typed arrays and RegExp. */
const BIGINT_TYPE = 0x42
const BUNDLE_TYPE = 0x62
const SET_TYPE = 0x73
const TYPED_ARRAY_TYPE = 0x74
const REGEXP_TYPE = 0x78
/** msgpack's timestamp (type -1), which msgpackr reads as a Date; never written (Dates are DATE_TYPE). */
const TIMESTAMP_TYPE = 0xff

/**
 * Bytes of the largest bigint written (two's complement): 8192 bits. Reading one costs
 * little, but msgpackr turns a bigint record key into decimal text, superlinear in its size
 * (a 400 kB one took 0.3 s): a cap keeps every read in proportion to its bytes.
 */
export const MAX_BIGINT_BYTES = 1024

/**
 * The first value of every buffer packRows writes, before the rows: a string msgpackr
 * bundles, so the bytes start with a string bundle (`0x92 0xd6 0x62`). While a bundle is
 * in force, msgpackr reads the byte 0xc1 as a reference into it; without one, as its C1
 * marker object, which would land in the rows as a value of a class nobody wrote.
 */
const OPENER = 'rows'
const HEAD = [0x92, 0xd6, BUNDLE_TYPE] as const

/** First item of a {@link Special}'s parts. */
export const NEGATIVE_ZERO = 0
export const ILL_FORMED_STRING = 1
export const ODD_OBJECT = 2
export const CUSTOM = 3

/**
 * A value written as `[tag, ...data]` under one private extension type:
 * - `[NEGATIVE_ZERO]`: -0 (msgpack integers have no sign for zero);
 * - `[ILL_FORMED_STRING, json]`: a string with a lone surrogate, as JSON text (UTF-8 cannot hold it);
 * - `[ODD_OBJECT, bare, key, value, …]`: a plain object whose prototype is null (`bare`), or with a
 *   key a record would not bring back (`__proto__`, a lone surrogate);
 * - `[CUSTOM, name, payload]`: a value of a registered class, as its `serialize` returned it.
 */
export class Special {
  constructor(readonly parts: readonly unknown[]) {}
}

/** The registered types of the encoding now decoding (decoding is synchronous; nested decodes restore it). */
let decodingTypes: ReadonlyMap<string, CacheType> | undefined

function fail(what: string): never {
  throw new TypeError(`cached rows hold a malformed ${what}`)
}

function reviveString(json: unknown): string {
  const text: unknown = typeof json === 'string' ? JSON.parse(json) : undefined
  return typeof text === 'string' ? text : fail('string')
}

function reviveObject(parts: readonly unknown[]): object {
  if (parts.length % 2 !== 0 || typeof parts[1] !== 'boolean') fail('object')
  const object: object = parts[1] ? Object.create(null) : {}
  for (let i = 2; i < parts.length; i += 2) {
    const key = parts[i]
    if (typeof key !== 'string') fail('object key')
    // Defined, never assigned: a key `__proto__` stays data.
    Object.defineProperty(object, key, { value: parts[i + 1], writable: true, enumerable: true, configurable: true })
  }
  return object
}

function reviveCustom(parts: readonly unknown[]): unknown {
  const name = parts[1]
  const type = typeof name === 'string' && parts.length === 3 ? decodingTypes?.get(name) : undefined
  if (type === undefined) fail(`value of type ${JSON.stringify(name)}`)
  // Through the user's object, so methods that use `this` keep working.
  return type.deserialize(parts[2])
}

function revive(parts: unknown): unknown {
  if (!Array.isArray(parts)) fail('value')
  switch (parts[0]) {
    case NEGATIVE_ZERO:
      return parts.length === 1 ? -0 : fail('number')
    case ILL_FORMED_STRING:
      return parts.length === 2 ? reviveString(parts[1]) : fail('string')
    case ODD_OBJECT:
      return reviveObject(parts)
    case CUSTOM:
      return reviveCustom(parts)
    default:
      return fail('value')
  }
}

msgpackr.addExtension({ Class: Special, type: SPECIAL_TYPE, write: (value: Special) => value.parts, read: revive })
// Milliseconds as a number: read without the view and bit arithmetic of msgpack's timestamp.
msgpackr.addExtension({
  Class: Date,
  type: DATE_TYPE,
  write: (value: Date) => value.getTime(),
  read: readDate,
})
msgpackr.addExtension({
  Class: URL,
  type: URL_TYPE,
  write: (value: URL) => value.href,
  read: (href: unknown) => (typeof href === 'string' ? new URL(href) : fail('URL')),
})
// Added last, so it is tried first: a Buffer is also a typed array, which would come back as Uint8Array.
msgpackr.addExtension({
  Class: Buffer,
  type: BUFFER_TYPE,
  pack: (value: Buffer) => value,
  // A copy: the bytes read are a view of the caller's buffer.
  unpack: (bytes: Uint8Array) => Buffer.from(bytes),
})

// Never written (errors are refused): read as malformed rather than built.
msgpackr.addExtension({ type: ERROR_TYPE, unpack: () => fail('value') })
msgpackr.addExtension({ type: TIMESTAMP_TYPE, unpack: () => fail('value') })
// msgpackr's readers of its own types, replaced by readers of what its writers write (same
// bytes): theirs also build ArrayBuffer and DataView, a Set of any iterable (a string's
// characters, say), a RegExp of anything turned to text, and bigints of any size.
msgpackr.addExtension({ type: BIGINT_TYPE, unpack: readBigInt })
msgpackr.addExtension({ type: TYPED_ARRAY_TYPE, unpack: readTypedArray })
msgpackr.addExtension({ type: SET_TYPE, read: (items: unknown) => (Array.isArray(items) ? new Set(items) : fail('Set')) })
msgpackr.addExtension({
  type: REGEXP_TYPE,
  read: (parts: unknown) =>
    Array.isArray(parts) && parts.length === 2 && typeof parts[0] === 'string' && typeof parts[1] === 'string'
      ? new RegExp(parts[0], parts[1])
      : fail('RegExp'),
})

const packr = new msgpackr.Packr({ ...OPTIONS })
const unpackr = new msgpackr.Unpackr({ ...OPTIONS, copyBuffers: true })

function readDate(time: unknown): Date {
  const date = typeof time === 'number' ? new Date(time) : fail('Date')
  // NaN or beyond ±8.64e15 ms: an invalid Date, which the encoder refuses.
  return Number.isNaN(date.getTime()) ? fail('Date') : date
}

/** Two's complement, big-endian, as msgpackr writes it. */
function readBigInt(bytes: Uint8Array): bigint {
  if (bytes.length === 0 || bytes.length > MAX_BIGINT_BYTES) fail('bigint')
  const value = BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex')}`)
  return bytes[0]! & 0x80 ? value - (1n << BigInt(bytes.length * 8)) : value
}

/** The typed arrays rows may hold, in msgpackr's type-code order. */
export const TYPED_ARRAYS = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
] as const

/** A type code (msgpackr's order), then the elements' bytes. */
function readTypedArray(bytes: Uint8Array): unknown {
  const code = bytes[0]
  const Type = code === undefined ? undefined : TYPED_ARRAYS[code]
  if (Type === undefined || (bytes.length - 1) % Type.BYTES_PER_ELEMENT !== 0) fail('typed array')
  // A copy, aligned for the element type.
  return new Type(Uint8Array.prototype.slice.call(bytes, 1).buffer)
}

/**
 * The bytes of a prepared value (see RowEncoding), after the {@link OPENER}, in a Buffer
 * of their own: msgpackr returns a view of the slab it writes into (as large as the
 * largest value written lately), which a stored entry must not keep alive.
 */
export function packRows(value: unknown): Buffer {
  return Buffer.from(packr.pack([OPENER, value]))
}

/**
 * The value packRows wrote into `bytes`; throws on bytes it did not write. `types` revive
 * the custom values. What msgpackr builds from any bytes is in proportion to their length
 * (it checks lengths against the bytes left); nesting too deep for the stack throws.
 */
export function unpackRows(bytes: Uint8Array, types: ReadonlyMap<string, CacheType>): unknown {
  if (bytes[0] !== HEAD[0] || bytes[1] !== HEAD[1] || bytes[2] !== HEAD[2]) fail('header')
  if (bundledBytes(bytes) > bytes.length) fail('string bundle')
  const outer = decodingTypes
  decodingTypes = types
  let value: unknown
  try {
    value = unpackr.unpack(bytes)
  } finally {
    decodingTypes = outer
  }
  if (!Array.isArray(value) || value.length !== 2 || value[0] !== OPENER) fail('header')
  return value[1]
}

const FIXEXT4 = 0xd6
const FIXEXT8 = 0xd7
const FIXEXT16 = 0xd8
const EXT8 = 0xc7
const EXT16 = 0xc8
const EXT32 = 0xc9

/**
 * At most how many bytes of string msgpackr decodes for the string bundles in `bytes`.
 * A bundle (extension 0x62) holds the offset of its two strings, which msgpackr follows
 * unchecked: crafted bytes could point thousands of bundles at one long string and have
 * it decoded once each (a 440 kB value exhausted a 1.5 GB heap). The bundles packRows
 * writes hold strings that do not overlap, so their total is at most the length of the
 * bytes. Counted at every place that reads as a bundle header (a superset of those
 * msgpackr will meet), before it reads anything.
 */
function bundledBytes(bytes: Uint8Array): number {
  // Buffer#indexOf searches natively: a few µs for a 50 kB result.
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  let total = 0
  for (let at = view.indexOf(BUNDLE_TYPE); at !== -1; at = view.indexOf(BUNDLE_TYPE, at + 1)) {
    // The type byte of fixext 4, 8 and 16, ext 8, 16 and 32 (fixext 1 and 2 give msgpackr no offset).
    const before = bytes[at - 1]
    if (before === FIXEXT4) total += bundleCost(view, at + 1, 4)
    else if (before === FIXEXT8) total += bundleCost(view, at + 1, 8)
    else if (before === FIXEXT16) total += bundleCost(view, at + 1, 16)
    if (at >= 2 && view[at - 2] === EXT8) total += bundleCost(view, at + 1, view[at - 1]!)
    if (at >= 3 && view[at - 3] === EXT16) total += bundleCost(view, at + 1, view.readUInt16BE(at - 2))
    if (at >= 5 && view[at - 5] === EXT32) total += bundleCost(view, at + 1, view.readUInt32BE(at - 4))
  }
  return total
}

/** The string bytes a bundle whose data (`length` bytes) starts at `data` makes msgpackr decode. */
function bundleCost(bytes: Buffer, data: number, length: number): number {
  // msgpackr takes the offset from the first 4 bytes of data that must fit the bytes.
  if (length < 4 || data + length > bytes.length) return 0
  const first = stringAt(bytes, data + bytes.readInt32BE(data))
  if (first === undefined) return 0
  return first.cost + (stringAt(bytes, first.end)?.cost ?? 0)
}

/**
 * The string msgpackr's bundle reader would read at `at`: how many bytes it decodes and
 * where it stops (by the declared length: it does not check it against the bytes);
 * `undefined` where it throws.
 */
function stringAt(bytes: Buffer, at: number): { cost: number; end: number } | undefined {
  if (!Number.isSafeInteger(at) || at < 0 || at >= bytes.length) return undefined
  const token = bytes[at]!
  if (token < 0xc0) {
    // fixstr; below 0xa0 a negative length: one character is read, unless its byte is not ASCII.
    const length = token - 0xa0
    if (length >= 0) return { cost: length, end: at + 1 + length }
    return { cost: 1, end: (bytes[at + 1] ?? 0) & 0x80 ? at + 1 : at + 2 }
  }
  const header = token === 0xd9 ? 2 : token === 0xda ? 3 : token === 0xdb ? 5 : 0
  if (header === 0 || at + header > bytes.length) return undefined
  const length = header === 2 ? bytes[at + 1]! : header === 3 ? bytes.readUInt16BE(at + 1) : bytes.readUInt32BE(at + 1)
  const start = at + header
  return { cost: Math.min(length, bytes.length - start), end: start + length }
}
