import { createHash } from 'node:crypto'
import { SuperJSON } from 'superjson'
import { describe } from '../util/validate.js'
import type { CacheType, Uncacheable } from './cache-type.js'
import { RowEncoding, ROW_ENCODING_FORMAT } from './row-encoding.js'

const WARNING_CODE = 'KYSELY_MEMCACHE_UNCACHEABLE_TYPE'
const BUFFER = 'Buffer'
// Names the row encoding and superjson use for their own values.
const RESERVED = new Set([BUFFER, 'kysely-memcache:unfaithful'])

/**
 * Bump when a release changes how entries are framed: entries of other releases
 * then miss instead of being misread. (The row encoding versions itself too.)
 */
const ENTRY_FORMAT = 'k5'

/** superjson with Buffer, for query parameters (keys, statistics, manifests). */
function newSerializer(): SuperJSON {
  const serializer = new SuperJSON()
  // pg returns bytea as Buffer; stock superjson would revive it as a plain Uint8Array.
  serializer.registerCustom<Buffer, string>(
    {
      isApplicable: (value): value is Buffer => Buffer.isBuffer(value),
      serialize: (value) => value.toString('base64'),
      deserialize: (value) => Buffer.from(value, 'base64'),
    },
    BUFFER,
  )
  return serializer
}

/** Checks the `types` option of createQueryCache. */
export function validateTypes(value: unknown, name = 'types'): CacheType[] {
  const shape = '{ name, isApplicable, serialize, deserialize }'
  if (!Array.isArray(value)) {
    throw new TypeError(`${name} must be an array of ${shape}, got ${describe(value)}`)
  }
  const seen = new Map<string, number>()
  value.forEach((type: unknown, index) => {
    const at = `${name}[${index}]`
    if (type === null || typeof type !== 'object') {
      throw new TypeError(`${at} must be an object ${shape}, got ${describe(type)}`)
    }
    const entry = type as Record<string, unknown>
    if (typeof entry.name !== 'string' || entry.name === '') {
      throw new TypeError(`${at}.name must be a non-empty string, got ${describe(entry.name)}`)
    }
    if (RESERVED.has(entry.name)) {
      throw new TypeError(`${at}.name ${JSON.stringify(entry.name)} is reserved by kysely-memcache (Buffer is built in); choose another name`)
    }
    const first = seen.get(entry.name)
    if (first !== undefined) {
      throw new TypeError(`${at}.name repeats ${name}[${first}].name, got ${describe(entry.name)}`)
    }
    seen.set(entry.name, index)
    for (const method of ['isApplicable', 'serialize', 'deserialize'] as const) {
      if (typeof entry[method] !== 'function') {
        throw new TypeError(`${at}.${method} must be a function, got ${describe(entry[method])}`)
      }
    }
  })
  return value as CacheType[]
}

/**
 * When an entry stops being fresh and when it goes (ms since the epoch, 0 for never),
 * and how long computing it took: what early refresh and stale-while-revalidate decide by.
 */
export interface EntryTimes {
  /** Served as fresh until then. */
  readonly freshUntil: number
  /** Served (stale, refreshed in the background) until then, where `swr` allows; gone after. */
  readonly expiresAt: number
  /** Milliseconds the database took to compute it (XFetch's δ). */
  readonly computeMs: number
}

/** Times of an entry that never expires and was free to compute. */
export const TIMELESS: EntryTimes = Object.freeze({ freshUntil: 0, expiresAt: 0, computeMs: 0 })

export interface DecodedEntry {
  readonly generations: readonly string[]
  /** The encoded rows (see {@link Codec.decodeRows}). */
  readonly rows: Buffer
  readonly times: EntryTimes
}

/**
 * One cache's serialisation of rows and entries. Rows round-trip as the driver
 * returned them (Date, bigint, Buffer, typed arrays, undefined, Map, Set, JSON,
 * and the registered types), or are refused (see row-encoding.ts).
 *
 * A stored entry is the text `k5.<fingerprint>\n<fresh until>,<expires at>,<compute ms>\n<generation>,…\n`
 * followed by the encoded rows. The fingerprint names the entry format, the row
 * encoding and the registered types, so an entry written under another
 * configuration is not read. The generations are those the rows were computed
 * under, in the order the reader derives them, so a hit is checked without
 * decoding the rows first. The times (see {@link EntryTimes}) let a near copy
 * expire with the entry it was read from, and a hit refresh early or serve stale.
 */
export class Codec {
  /** Short hash of the entry format, the row encoding and the registered type names. */
  readonly fingerprint: string
  readonly #rows: RowEncoding
  readonly #header: Buffer
  /** `column\0class` already warned about, so a hot query warns once. */
  readonly #warned = new Set<string>()

  /** `types` must have been checked by {@link validateTypes}. */
  constructor(types: readonly CacheType[] = []) {
    this.#rows = new RowEncoding(types)
    const names = types.map((type) => type.name).sort()
    this.fingerprint = createHash('sha256')
      .update(JSON.stringify([ENTRY_FORMAT, ROW_ENCODING_FORMAT, names]))
      .digest('base64url')
      .slice(0, 8)
    this.#header = Buffer.from(`${ENTRY_FORMAT}.${this.fingerprint}\n`, 'latin1')
  }

  /** The rows' bytes, or why they cannot be stored. */
  tryEncodeRows(rows: readonly unknown[]): Buffer | Uncacheable {
    return this.#rows.encode(rows)
  }

  /** The rows' bytes, or `undefined` (warned once per column and class) when they cannot be stored. */
  encodeRows(rows: readonly unknown[]): Buffer | undefined {
    const encoded = this.#rows.encode(rows)
    if (Buffer.isBuffer(encoded)) return encoded
    const seen = `${encoded.column}\u0000${encoded.className}`
    if (!this.#warned.has(seen)) {
      this.#warned.add(seen)
      process.emitWarning(warningText(encoded), { code: WARNING_CODE })
    }
    return undefined
  }

  /** A fresh copy of the rows; throws on bytes this codec did not write. */
  decodeRows(bytes: Uint8Array): unknown[] {
    return this.#rows.decode(bytes)
  }

  encodeEntry(generations: readonly string[], rows: Uint8Array, times: EntryTimes = TIMELESS): Buffer {
    const frame = Buffer.from(
      `${times.freshUntil},${times.expiresAt},${Math.round(times.computeMs)}\n${generations.join(',')}\n`,
      'latin1',
    )
    return Buffer.concat([this.#header, frame, rows])
  }

  /** `undefined` for anything that is not an entry of this codec (garbage, other releases or `types`). */
  decodeEntry(value: Buffer): DecodedEntry | undefined {
    const header = this.#header
    if (value.length < header.length || !value.subarray(0, header.length).equals(header)) {
      return undefined
    }
    const second = value.indexOf(0x0a, header.length)
    const third = second < 0 ? -1 : value.indexOf(0x0a, second + 1)
    if (third < 0) {
      return undefined
    }
    const fields = value.toString('latin1', header.length, second).split(',')
    // Decimal digits only: Number() would also take '', ' 1' and '0x10'.
    const numbers = fields.every((field) => /^\d{1,16}$/.test(field)) ? fields.map(Number) : []
    if (numbers.length !== 3 || !numbers.every((n) => Number.isSafeInteger(n))) {
      return undefined
    }
    const [freshUntil, expiresAt, computeMs] = numbers as [number, number, number]
    const list = value.toString('latin1', second + 1, third)
    return { generations: list === '' ? [] : list.split(','), rows: value.subarray(third + 1), times: { freshUntil, expiresAt, computeMs } }
  }
}

function warningText(problem: Uncacheable): string {
  const column = JSON.stringify(problem.column)
  if (problem.reason === 'class') {
    return (
      `kysely-memcache: results with column ${column} are not cached: its ${problem.className} values would not come back ` +
      `from the cache as ${problem.className}. To cache them, register the class with the createQueryCache option \`types\`.`
    )
  }
  return (
    `kysely-memcache: results with column ${column} are not cached: a value of class ${problem.className} in it cannot be ` +
    `encoded (${problem.detail ?? 'unknown error'}).`
  )
}

/*
 * Module-level helpers: parameters (query statistics, warm-up manifests) and the
 * codec of a cache created without `types`.
 */

const valueSerializer = newSerializer()

/** Any JSON-able value with types preserved; used for query parameters in manifests and keys. */
export function encodeValue(value: unknown): string {
  return valueSerializer.stringify(value)
}

export function decodeValue(text: string): unknown {
  return valueSerializer.parse(text)
}

const defaultCodec = new Codec()

/** Rows' bytes with the codec of a cache without `types`; throws when they cannot be stored. */
export function encodeRows(rows: readonly unknown[]): Buffer {
  const encoded = defaultCodec.tryEncodeRows(rows)
  if (!Buffer.isBuffer(encoded)) {
    throw new TypeError(warningText(encoded))
  }
  return encoded
}

export function decodeRows(bytes: Uint8Array): unknown[] {
  return defaultCodec.decodeRows(bytes)
}

export function encodeEntry(generations: readonly string[], rows: Uint8Array, times: EntryTimes = TIMELESS): Buffer {
  return defaultCodec.encodeEntry(generations, rows, times)
}

export function decodeEntry(value: Buffer): DecodedEntry | undefined {
  return defaultCodec.decodeEntry(value)
}
