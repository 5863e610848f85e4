import type { CacheType, Uncacheable } from './cache-type.js'
import { CUSTOM, ILL_FORMED_STRING, MAX_BIGINT_BYTES, NEGATIVE_ZERO, ODD_OBJECT, packRows, Special, TYPED_ARRAYS, unpackRows } from './row-msgpack.js'

/**
 * Names the row encoding: part of what versions cache entries (an entry written
 * with another encoding must miss, not be misread). msgpack2: the rows follow an
 * opening string (see row-msgpack.ts), bigints are capped.
 */
export const ROW_ENCODING_FORMAT = 'msgpack2'

/** Deeper than this is refused as `encode` (and is what a circular reference becomes). */
export const MAX_DEPTH = 1000

/** Beyond ±2^8191 a bigint is refused as `encode` (the reader's cap: see row-msgpack.ts). */
const BIGINT_LIMIT = 1n << BigInt(MAX_BIGINT_BYTES * 8 - 1)

/** Prototypes of the values written as they are: msgpackr (and its extensions here) brings them back as themselves. */
const AS_THEY_ARE = new Set<unknown>([
  RegExp.prototype,
  URL.prototype,
  Buffer.prototype,
  ...TYPED_ARRAYS.map((type) => type.prototype),
])

const NEGATIVE_ZERO_VALUE = new Special([NEGATIVE_ZERO])

/** Why a value is not written; only thrown and caught inside this module, so no stack is captured. */
class Refusal {
  constructor(
    readonly value: unknown,
    readonly reason: 'class' | 'encode',
    readonly detail?: string,
  ) {}
}

interface WellFormed {
  isWellFormed(): boolean
}

/** Whether UTF-8 holds the string (no lone surrogate): `String.prototype.isWellFormed`, Node 20 on. */
function isWellFormed(text: string): boolean {
  return (text as unknown as WellFormed).isWellFormed()
}

function prepareString(text: string): unknown {
  return isWellFormed(text) ? text : new Special([ILL_FORMED_STRING, JSON.stringify(text)])
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** The class a warning names: the prototype's own constructor (a data key "constructor" does not answer). */
function classOf(value: unknown): string {
  if (typeof value === 'function') return 'Function'
  if (value === null || typeof value !== 'object') return typeof value
  const prototype = Object.getPrototypeOf(value) as object | null
  if (prototype === null) return 'Object'
  const constructor: unknown = Object.getOwnPropertyDescriptor(prototype, 'constructor')?.value
  const name = typeof constructor === 'function' ? constructor.name : ''
  return name === '' ? 'anonymous class' : name
}

/**
 * Result rows as MessagePack (msgpackr, records: see row-msgpack.ts), brought back
 * as the driver returned them or refused.
 *
 * Faithful: null, undefined, booleans, numbers (-0, NaN, ±Infinity), strings (lone
 * surrogates too), bigint up to 8192 bits, valid Dates, Buffer, the typed arrays, Map,
 * Set, RegExp, URL, arrays, plain objects (null-prototype ones, and any key:
 * `__proto__` and `constructor` included), and the registered types. Anything else
 * (other classes, invalid Dates, functions, symbols, larger bigints) is refused, naming its column.
 *
 * Encoding walks the rows once before msgpackr does: to refuse, to call the
 * registered types, and to wrap the few values msgpackr alone would change (-0,
 * ill-formed strings, null-prototype objects, odd keys) in a private extension.
 * Rows without such values are handed to msgpackr as they are, not copied.
 * Decoding is msgpackr's alone, with no code generated; it runs no code of the
 * application but the registered `deserialize`. The bytes are not trusted: any bytes
 * decode to rows of the values above or throw a TypeError, in time and memory in
 * proportion to their length (see row-msgpack.ts).
 *
 * Where it differs from the superjson codec: keys `__proto__`, `constructor` and
 * `prototype` are kept (superjson refused them), BigInt64Array and BigUint64Array
 * too; array holes come back as undefined (not null); a value referenced twice comes
 * back as two copies, and a circular reference is refused (`encode`).
 */
export class RowEncoding {
  readonly #types: readonly CacheType[]
  readonly #byName: ReadonlyMap<string, CacheType>

  /** `types` must have been checked by validateTypes (codec.ts): names are unique. */
  constructor(types: readonly CacheType[] = []) {
    this.#types = [...types]
    this.#byName = new Map(types.map((type) => [type.name, type]))
  }

  /** The rows' bytes, or why they cannot be stored. */
  encode(rows: readonly unknown[]): Buffer | Uncacheable {
    let prepared: unknown[] | undefined
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]
      let value: unknown
      try {
        value = this.#prepare(row, 0, true)
      } catch (error) {
        return this.#locate([row], error, (item) => this.#prepare(item, 1, true))
      }
      if (prepared !== undefined) prepared.push(value)
      else if (value !== row) prepared = [...rows.slice(0, i), value]
    }
    try {
      return packRows(prepared ?? rows)
    } catch (error) {
      // Not expected once prepared: a limit of msgpackr's, say.
      return this.#locate(rows, error, (item) => packRows(this.#prepare(item, 1, true)))
    }
  }

  /**
   * The rows of `bytes`; throws a TypeError on bytes this encoding did not write
   * (garbage, truncated, other types, nested deeper than it writes), with msgpackr's
   * error or a registered `deserialize`'s as its cause.
   */
  decode(bytes: Uint8Array): unknown[] {
    let rows: unknown
    try {
      rows = unpackRows(bytes, this.#byName)
    } catch (error) {
      // One kind of failure for callers, whatever msgpackr threw (a RangeError for a stack overflow, say).
      throw error instanceof TypeError ? error : new TypeError(`cached rows are malformed: ${messageOf(error)}`, { cause: error })
    }
    if (!Array.isArray(rows)) throw new TypeError('cached entry does not hold a row array')
    // msgpackr reads a few thousand levels before its stack gives out; what reads the rows
    // next (Kysely's ParseJSONResultsPlugin, say) may not, and would fail the query. Each
    // level takes a byte at least: fewer bytes than MAX_DEPTH cannot nest deeper.
    if (bytes.length > MAX_DEPTH) {
      for (const row of rows) {
        if (typeof row === 'object' && row !== null && nestedTooDeep(row, 0)) {
          throw new TypeError(`cached rows nest deeper than ${MAX_DEPTH} levels, which the encoder refuses`)
        }
      }
    }
    return rows
  }

  /** `value`, or what stands for it in the bytes; throws a Refusal. */
  #prepare(value: unknown, depth: number, typed: boolean): unknown {
    if (typed && this.#types.length !== 0) {
      // As superjson did: a registered type is asked first, about every value.
      for (const type of this.#types) {
        if (type.isApplicable(value)) return this.#custom(type, value, depth)
      }
    }
    switch (typeof value) {
      case 'string':
        return prepareString(value)
      case 'number':
        return value === 0 && 1 / value < 0 ? NEGATIVE_ZERO_VALUE : value
      case 'object':
        return value === null ? null : this.#prepareObject(value, depth, typed)
      case 'function':
      case 'symbol':
        throw new Refusal(value, 'class')
      case 'bigint':
        if (value >= BIGINT_LIMIT || value < -BIGINT_LIMIT) throw new Refusal(value, 'encode', `bigint beyond ${MAX_BIGINT_BYTES * 8} bits`)
        return value
      default:
        // boolean, undefined
        return value
    }
  }

  #custom(type: CacheType, value: unknown, depth: number): Special {
    let payload: unknown
    try {
      payload = type.serialize(value)
    } catch (error) {
      throw new Refusal(value, 'encode', `${type.name}.serialize failed: ${messageOf(error)}`)
    }
    // The payload is JSON, not searched for registered types again.
    return new Special([CUSTOM, type.name, this.#prepare(payload, depth + 1, false)])
  }

  #prepareObject(value: object, depth: number, typed: boolean): unknown {
    if (depth > MAX_DEPTH) {
      throw new Refusal(value, 'encode', `values nested deeper than ${MAX_DEPTH} levels (a circular reference?)`)
    }
    const prototype: unknown = Object.getPrototypeOf(value)
    if (prototype === Object.prototype) return this.#prepareRecord(value, depth, typed, false)
    if (prototype === Array.prototype) return this.#prepareArray(value as readonly unknown[], depth, typed)
    if (prototype === null) return this.#prepareRecord(value, depth, typed, true)
    if (prototype === Date.prototype) {
      if (Number.isNaN((value as Date).getTime())) throw new Refusal(value, 'class')
      return value
    }
    if (prototype === Map.prototype) return this.#prepareMap(value as ReadonlyMap<unknown, unknown>, depth, typed)
    if (prototype === Set.prototype) {
      const items = [...(value as ReadonlySet<unknown>)]
      const prepared = this.#prepareArray(items, depth, typed)
      return prepared === items ? value : new Set(prepared as unknown[])
    }
    if (AS_THEY_ARE.has(prototype)) return value
    throw new Refusal(value, 'class')
  }

  /** A plain object: itself, a copy with prepared values, or a Special when a record would not bring it back. */
  #prepareRecord(value: object, depth: number, typed: boolean, bare: boolean): unknown {
    const source = value as Record<string, unknown>
    const keys = Object.keys(source)
    let odd = bare
    let values: unknown[] | undefined
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      if (key === '__proto__' || !isWellFormed(key)) odd = true
      const item = source[key]
      const prepared = this.#prepare(item, depth + 1, typed)
      if (values !== undefined) values.push(prepared)
      else if (prepared !== item) values = [...keys.slice(0, i).map((earlier) => source[earlier]), prepared]
    }
    if (!odd && values === undefined) return value
    const all = values ?? keys.map((key) => source[key])
    if (odd) {
      const parts: unknown[] = [ODD_OBJECT, bare]
      keys.forEach((key, i) => parts.push(prepareString(key), all[i]))
      return new Special(parts)
    }
    // Safe to assign: no key is `__proto__` here.
    const copy: Record<string, unknown> = {}
    keys.forEach((key, i) => {
      copy[key] = all[i]
    })
    return copy
  }

  #prepareArray(value: readonly unknown[], depth: number, typed: boolean): readonly unknown[] {
    let copy: unknown[] | undefined
    for (let i = 0; i < value.length; i++) {
      const item = value[i]
      const prepared = this.#prepare(item, depth + 1, typed)
      if (copy !== undefined) copy.push(prepared)
      else if (prepared !== item) copy = [...value.slice(0, i), prepared]
    }
    return copy ?? value
  }

  #prepareMap(value: ReadonlyMap<unknown, unknown>, depth: number, typed: boolean): unknown {
    let changed = false
    const entries: Array<[unknown, unknown]> = []
    for (const [key, item] of value) {
      const entry: [unknown, unknown] = [this.#prepare(key, depth + 1, typed), this.#prepare(item, depth + 1, typed)]
      changed ||= entry[0] !== key || entry[1] !== item
      entries.push(entry)
    }
    return changed ? new Map(entries) : value
  }

  /**
   * Only on failure: the first column, in row and column order, whose value fails
   * `attempt` alone (`?` when none does: the row itself, say).
   */
  #locate(rows: readonly unknown[], error: unknown, attempt: (value: unknown) => unknown): Uncacheable {
    for (const row of rows) {
      if (row === null || typeof row !== 'object') continue
      for (const column of Object.keys(row)) {
        let value: unknown
        try {
          value = (row as Record<string, unknown>)[column]
          attempt(value)
        } catch (inner) {
          return describeRefusal(column, value, inner)
        }
      }
    }
    return describeRefusal('?', undefined, error)
  }
}

/** Whether `value` (at `depth`) holds containers deeper than MAX_DEPTH, as #prepareObject counts them; other classes are not looked into. */
function nestedTooDeep(value: object, depth: number): boolean {
  if (depth > MAX_DEPTH) return true
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      if (typeof item === 'object' && item !== null && nestedTooDeep(item, depth + 1)) return true
    }
    return false
  }
  const prototype: unknown = Object.getPrototypeOf(value)
  if (prototype === Object.prototype || prototype === null) {
    const record = value as Record<string, unknown>
    for (const key in record) {
      const item = record[key]
      if (typeof item === 'object' && item !== null && nestedTooDeep(item, depth + 1)) return true
    }
  } else if (prototype === Map.prototype) {
    for (const [key, item] of value as ReadonlyMap<unknown, unknown>) {
      if (typeof key === 'object' && key !== null && nestedTooDeep(key, depth + 1)) return true
      if (typeof item === 'object' && item !== null && nestedTooDeep(item, depth + 1)) return true
    }
  } else if (prototype === Set.prototype) {
    for (const item of value as ReadonlySet<unknown>) {
      if (typeof item === 'object' && item !== null && nestedTooDeep(item, depth + 1)) return true
    }
  }
  return false
}

function describeRefusal(column: string, columnValue: unknown, error: unknown): Uncacheable {
  if (error instanceof Refusal && error.reason === 'class') {
    return { column, className: classOf(error.value), reason: 'class' }
  }
  const detail = error instanceof Refusal ? (error.detail ?? 'cannot be encoded') : messageOf(error)
  return { column, className: column === '?' ? '?' : classOf(columnValue), reason: 'encode', detail }
}
