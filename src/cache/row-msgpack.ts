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
 * - `mapsAsObjects: false`: a msgpack map is read as a Map (plain objects are records).
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
  read: (time: unknown) => (typeof time === 'number' ? new Date(time) : fail('Date')),
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

const packr = new msgpackr.Packr({ ...OPTIONS })
const unpackr = new msgpackr.Unpackr({ ...OPTIONS })

/**
 * The bytes of a prepared value (see RowEncoding), in a Buffer of their own: msgpackr
 * returns a view of the slab it writes into (as large as the largest value written
 * lately), which a stored entry must not keep alive.
 */
export function packRows(value: unknown): Buffer {
  return Buffer.from(packr.pack(value))
}

/** Whatever value the bytes hold; throws on malformed bytes. `types` revive the custom values. */
export function unpackRows(bytes: Uint8Array, types: ReadonlyMap<string, CacheType>): unknown {
  const outer = decodingTypes
  decodingTypes = types
  try {
    return unpackr.unpack(bytes)
  } finally {
    decodingTypes = outer
  }
}
