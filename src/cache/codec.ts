import { createHash } from 'node:crypto'
import { SuperJSON } from 'superjson'
import { describe } from '../util/validate.js'

/** What a registered type's `serialize` returns. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

/**
 * A class of the application's (typically what a custom pg type parser returns)
 * and how to write it as JSON and bring it back: a superjson custom transformer
 * with its name.
 */
// `any` by default: one list mixes types, and `deserialize: (s) => new Decimal(s)` must type-check.
export interface CacheType<T = any, S extends JsonValue = any> {
  /** Stored with each value; the sorted names version the cache's entries. */
  readonly name: string
  isApplicable(value: unknown): value is T
  serialize(value: T): S
  deserialize(value: S): T
}

/** Why a result is not stored: a value of `column` could not be written or brought back as itself. */
export interface Uncacheable {
  /** The row key holding the value (`"?"` if it cannot be told). */
  readonly column: string
  /** The class of the value (of the outermost one when it is nested in JSON, arrays, maps or sets). */
  readonly className: string
  /** `class`: it would come back as another class; `encode`: it could not be written at all. */
  readonly reason: 'class' | 'encode'
  /** The encoder's message, for `encode`. */
  readonly detail?: string
}

const WARNING_CODE = 'KYSELY_MEMCACHE_UNCACHEABLE_TYPE'
const BUFFER = 'Buffer'
const UNFAITHFUL = 'kysely-memcache:unfaithful'
const RESERVED = new Set([BUFFER, UNFAITHFUL])

/**
 * Bump when a release changes how rows are written or read back: entries of
 * other releases then miss instead of being misread.
 */
const ENTRY_FORMAT = 'k3'

/** Prototypes superjson brings back as themselves: anything else would return as another class. */
const FAITHFUL = new Set<unknown>([
  null,
  Object.prototype,
  Array.prototype,
  Date.prototype,
  Map.prototype,
  Set.prototype,
  RegExp.prototype,
  URL.prototype,
  Buffer.prototype,
  // superjson's typed arrays; not the BigInt64 ones, which it cannot write.
  ...[Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array].map(
    (type) => type.prototype,
  ),
])

/** Thrown from inside superjson's walk, so detection costs no walk of its own. */
class UnfaithfulValue extends Error {
  constructor(readonly value: unknown) {
    super(`a ${className(value)} would come back from the cache as another class`)
  }
}

/** Called by superjson for each value it has no rule for, and for each object (cheap: a typeof and a set lookup). */
function isUnfaithful(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) {
    return typeof value === 'function' || typeof value === 'symbol'
  }
  const prototype: unknown = Object.getPrototypeOf(value)
  // superjson writes an invalid Date as null.
  if (prototype === Date.prototype) return Number.isNaN((value as Date).getTime())
  return !FAITHFUL.has(prototype)
}

function className(value: unknown): string {
  if (typeof value === 'function') return 'Function'
  if (typeof value !== 'object' || value === null) return typeof value
  const prototype: unknown = Object.getPrototypeOf(value)
  if (prototype === null) return 'Object'
  // The prototype's own constructor: a JSON key "constructor" on the value must not answer.
  const constructor: unknown = Object.getOwnPropertyDescriptor(prototype, 'constructor')?.value
  return typeof constructor === 'function' && constructor.name !== '' ? constructor.name : 'anonymous class'
}

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

export interface DecodedEntry {
  readonly generations: readonly string[]
  readonly rowsText: string
  /** When the entry expires in the store (ms since the epoch); 0: never. */
  readonly expiresAt: number
}

/**
 * One cache's serialisation of rows and entries. Rows round-trip as the driver
 * returned them (Date, bigint, Buffer, Uint8Array, undefined, Map, Set, JSON, and
 * the registered types), or are refused.
 *
 * A stored entry is `k3.<fingerprint>\n<expires at>\n<generation>,<generation>,…\n<rows>`. The
 * fingerprint names the entry format and the registered types, so an entry
 * written under another configuration is not read. The generations are those
 * the rows were computed under, in the order the reader derives them, so a hit
 * is checked without parsing the rows first. The expiry (ms since the epoch, 0 for
 * none) lets a near copy expire with the entry it was read from.
 */
export class Codec {
  /** Short hash of the entry format and the registered type names. */
  readonly fingerprint: string
  readonly #serializer = newSerializer()
  readonly #header: string
  /** `column\0class` already warned about, so a hot query warns once. */
  readonly #warned = new Set<string>()

  /** `types` must have been checked by {@link validateTypes}. */
  constructor(types: readonly CacheType[] = []) {
    for (const type of types) {
      // Through the user's object, so methods that use `this` keep working.
      this.#serializer.registerCustom<unknown, JsonValue>(
        {
          isApplicable: (value): value is unknown => type.isApplicable(value),
          serialize: (value) => type.serialize(value),
          deserialize: (value) => type.deserialize(value),
        },
        type.name,
      )
    }
    // Registered last, so it sees only what no other rule claims.
    this.#serializer.registerCustom<unknown, JsonValue>(
      {
        isApplicable: (value): value is unknown => isUnfaithful(value),
        serialize: (value) => {
          throw new UnfaithfulValue(value)
        },
        deserialize: () => {
          throw new TypeError('cached entry holds a value that was never written')
        },
      },
      UNFAITHFUL,
    )
    const names = types.map((type) => type.name).sort()
    this.fingerprint = createHash('sha256').update(JSON.stringify([ENTRY_FORMAT, names])).digest('base64url').slice(0, 8)
    this.#header = `${ENTRY_FORMAT}.${this.fingerprint}`
  }

  /** Rows as text, or why they cannot be stored. */
  tryEncodeRows(rows: readonly unknown[]): string | Uncacheable {
    try {
      return this.#serializer.stringify(rows)
    } catch (error) {
      return this.#locate(rows, error)
    }
  }

  /** Rows as text, or `undefined` (warned once per column and class) when they cannot be stored. */
  encodeRows(rows: readonly unknown[]): string | undefined {
    const encoded = this.tryEncodeRows(rows)
    if (typeof encoded === 'string') return encoded
    const seen = `${encoded.column}\u0000${encoded.className}`
    if (!this.#warned.has(seen)) {
      this.#warned.add(seen)
      process.emitWarning(warningText(encoded), { code: WARNING_CODE })
    }
    return undefined
  }

  decodeRows(text: string): unknown[] {
    const rows = this.#serializer.parse<unknown>(text)
    if (!Array.isArray(rows)) {
      throw new TypeError('cached entry does not hold a row array')
    }
    return rows
  }

  encodeEntry(generations: readonly string[], rowsText: string, expiresAt = 0): Buffer {
    return Buffer.from(`${this.#header}\n${expiresAt}\n${generations.join(',')}\n${rowsText}`, 'utf8')
  }

  /** `undefined` for anything that is not an entry of this codec (garbage, other releases or `types`). */
  decodeEntry(value: Buffer): DecodedEntry | undefined {
    const text = value.toString('utf8')
    const header = this.#header
    if (!text.startsWith(header) || text.charCodeAt(header.length) !== 0x0a) {
      return undefined
    }
    const second = text.indexOf('\n', header.length + 1)
    const third = second < 0 ? -1 : text.indexOf('\n', second + 1)
    if (third < 0) {
      return undefined
    }
    const expiresAt = Number(text.slice(header.length + 1, second))
    if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) {
      return undefined
    }
    const list = text.slice(second + 1, third)
    return {
      generations: list === '' ? [] : list.split(','),
      rowsText: text.slice(third + 1),
      expiresAt,
    }
  }

  /** Only on failure: finds the column, walking the rows again. */
  #locate(rows: readonly unknown[], error: unknown): Uncacheable {
    if (error instanceof UnfaithfulValue) {
      const kind = className(error.value)
      for (const row of rows) {
        if (row === null || typeof row !== 'object') continue
        for (const [column, value] of Object.entries(row)) {
          if (holds(value, error.value)) return { column, className: kind, reason: 'class' }
        }
      }
      return { column: '?', className: kind, reason: 'class' }
    }
    const detail = error instanceof Error ? error.message : String(error)
    // superjson stops at the first problem in row and column order: so does this.
    for (const row of rows) {
      if (row === null || typeof row !== 'object') continue
      for (const [column, value] of Object.entries(row)) {
        try {
          this.#serializer.stringify({ [column]: value })
        } catch {
          return { column, className: className(value), reason: 'encode', detail }
        }
      }
    }
    return { column: '?', className: '?', reason: 'encode', detail }
  }
}

/** Whether `target` is `value` or inside it, through the containers superjson walks. */
function holds(value: unknown, target: unknown): boolean {
  if (value === target) return true
  if (value === null || typeof value !== 'object') return false
  if (value instanceof Map) {
    for (const [key, item] of value) if (holds(key, target) || holds(item, target)) return true
    return false
  }
  if (value instanceof Set) {
    for (const item of value) if (holds(item, target)) return true
    return false
  }
  const prototype: unknown = Object.getPrototypeOf(value)
  if (Array.isArray(value) || prototype === Object.prototype || prototype === null) {
    for (const item of Object.values(value)) if (holds(item, target)) return true
  }
  return false
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

/** Rows as text with the codec of a cache without `types`; throws when they cannot be stored. */
export function encodeRows(rows: readonly unknown[]): string {
  const encoded = defaultCodec.tryEncodeRows(rows)
  if (typeof encoded !== 'string') {
    throw new TypeError(warningText(encoded))
  }
  return encoded
}

export function decodeRows(text: string): unknown[] {
  return defaultCodec.decodeRows(text)
}

export function encodeEntry(generations: readonly string[], rowsText: string, expiresAt = 0): Buffer {
  return defaultCodec.encodeEntry(generations, rowsText, expiresAt)
}

export function decodeEntry(value: Buffer): DecodedEntry | undefined {
  return defaultCodec.decodeEntry(value)
}
