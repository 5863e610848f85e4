/**
 * What every fuzzed reader must keep, checked after each run: no prototype changed,
 * nothing decoded of a class the encoder never writes, time and memory in proportion
 * to the input.
 */
import v8 from 'node:v8'
import { MAX_DEPTH } from '../../src/cache/row-encoding.js'

/** The prototypes (and a few constructors) a polluting decoder would touch. */
const WATCHED: ReadonlyArray<readonly [string, object]> = [
  ['Object.prototype', Object.prototype],
  ['Array.prototype', Array.prototype],
  ['Function.prototype', Function.prototype],
  ['Map.prototype', Map.prototype],
  ['Set.prototype', Set.prototype],
  ['String.prototype', String.prototype],
  ['Number.prototype', Number.prototype],
  ['Boolean.prototype', Boolean.prototype],
  ['BigInt.prototype', BigInt.prototype],
  ['Date.prototype', Date.prototype],
  ['RegExp.prototype', RegExp.prototype],
  ['Error.prototype', Error.prototype],
  ['Promise.prototype', Promise.prototype],
  ['TypedArray.prototype', Object.getPrototypeOf(Uint8Array.prototype) as object],
  ['Uint8Array.prototype', Uint8Array.prototype],
  ['Buffer.prototype', Buffer.prototype],
  ['URL.prototype', URL.prototype],
  ['Object', Object],
  ['Array', Array],
  ['JSON', JSON],
]

type Snapshot = ReadonlyMap<string, PropertyDescriptor>

/** Every own property (symbols too) of the watched objects, with its descriptor, and each one's prototype. */
export function snapshotPrototypes(): Snapshot {
  const snapshot = new Map<string, PropertyDescriptor>()
  for (const [name, target] of WATCHED) {
    snapshot.set(`${name} [[Prototype]]`, { value: Object.getPrototypeOf(target) })
    snapshot.set(`${name} [[Extensible]]`, { value: Object.isExtensible(target) })
    for (const key of Reflect.ownKeys(target)) {
      snapshot.set(`${name}.${String(key)}`, Object.getOwnPropertyDescriptor(target, key)!)
    }
  }
  return snapshot
}

const SAME_FIELDS = ['value', 'get', 'set', 'writable', 'enumerable', 'configurable'] as const

/** What differs between two snapshots, or `undefined`. */
export function prototypeChanges(before: Snapshot, after: Snapshot): string | undefined {
  const changes: string[] = []
  for (const [key, descriptor] of after) {
    const earlier = before.get(key)
    if (earlier === undefined) changes.push(`added ${key}`)
    else if (SAME_FIELDS.some((field) => !Object.is(earlier[field], descriptor[field]))) changes.push(`changed ${key}`)
  }
  for (const key of before.keys()) if (!after.has(key)) changes.push(`removed ${key}`)
  return changes.length === 0 ? undefined : changes.slice(0, 5).join(', ')
}

/** Taken when the fuzz modules load, before any property runs. */
const BASELINE = snapshotPrototypes()

/** Names hostile inputs use for pollution: none may show up on a fresh object or array. */
const CANARIES = ['polluted', 'isAdmin', 'k', 'x', 'a', 'toJSON', 'then']

/** Throws when any watched prototype differs from the baseline, or a canary shows on fresh objects. */
export function assertPrototypesIntact(): void {
  const fresh: Record<string, unknown> = {}
  const list: unknown[] = []
  for (const canary of CANARIES) {
    if (fresh[canary] !== undefined || (list as unknown as Record<string, unknown>)[canary] !== undefined) {
      throw new Error(`prototype polluted: ({}).${canary} is ${String(fresh[canary])}`)
    }
  }
  const changes = prototypeChanges(BASELINE, snapshotPrototypes())
  if (changes !== undefined) throw new Error(`prototype changed: ${changes}`)
}

/** Prototypes of what the row encoding writes (row-encoding.ts): anything else decoded is a bug. */
const ROW_PROTOTYPES = new Set<unknown>([
  Object.prototype,
  null,
  Array.prototype,
  Map.prototype,
  Set.prototype,
  Date.prototype,
  RegExp.prototype,
  URL.prototype,
  Buffer.prototype,
  ...[Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array].map(
    (type) => type.prototype,
  ),
])

/**
 * Throws unless `rows` hold only values the row encoding writes: objects of the
 * prototypes above (or `extra`, registered classes, not looked into), valid Dates,
 * data properties only, nested no deeper than the encoder allows (`MAX_DEPTH`) plus
 * slack for the decoder, which leaves depth to its stack. Walked without recursion.
 */
export function assertRowValues(rows: unknown, extra: ReadonlySet<object> = new Set(), maxDepth = Number.POSITIVE_INFINITY): void {
  const pending: Array<[unknown, number, string]> = [[rows, 0, 'rows']]
  let visited = 0
  while (pending.length > 0) {
    const [value, depth, path] = pending.pop()!
    if (++visited > 10_000_000) throw new Error('decoded value too large to walk')
    if (typeof value === 'function' || typeof value === 'symbol') throw new Error(`${path}: a ${typeof value}`)
    if (typeof value !== 'object' || value === null) continue
    if (depth > maxDepth) throw new Error(`${path}: nested ${depth} deep`)
    const prototype = Object.getPrototypeOf(value) as object | null
    if (prototype !== null && extra.has(prototype)) continue
    if (!ROW_PROTOTYPES.has(prototype)) {
      const name = (prototype as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'anonymous'
      throw new Error(`${path}: a value of class ${name}, which the encoder never writes`)
    }
    for (const key of Reflect.ownKeys(value)) {
      const descriptor = Object.getOwnPropertyDescriptor(value, key)!
      if (descriptor.get !== undefined || descriptor.set !== undefined) throw new Error(`${path}.${String(key)}: an accessor`)
    }
    if (prototype === Date.prototype) {
      if (Number.isNaN((value as Date).getTime())) throw new Error(`${path}: an invalid Date`)
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => pending.push([item, depth + 1, `${path}[${i}]`]))
    } else if (value instanceof Map) {
      let i = 0
      for (const [key, item] of value) {
        pending.push([key, depth + 1, `${path}<key ${i}>`], [item, depth + 1, `${path}<value ${i}>`])
        i++
      }
    } else if (value instanceof Set) {
      let i = 0
      for (const item of value) pending.push([item, depth + 1, `${path}<${i++}>`])
    } else if (prototype === Object.prototype || prototype === null) {
      for (const key of Object.keys(value)) pending.push([(value as Record<string, unknown>)[key], depth + 1, `${path}.${key}`])
    }
  }
}

/** Deepest decoded value: the encoder's limit (rows at 0), one more for the rows array. */
export const DECODED_DEPTH_LIMIT = MAX_DEPTH + 1

export interface Cost {
  readonly ms: number
  /** Heap and external (Buffer) memory still held after the call, the result kept alive. */
  readonly retainedBytes: number
}

function memoryInUse(): number {
  const statistics = v8.getHeapStatistics()
  return statistics.used_heap_size + statistics.external_memory
}

/** Runs `action`, keeping what it returns alive while memory is measured. */
export function measure<T>(action: () => T): { threw: false; value: T; cost: Cost } | { threw: true; error: unknown; cost: Cost } {
  const before = memoryInUse()
  const started = performance.now()
  try {
    const value = action()
    return { threw: false, value, cost: { ms: performance.now() - started, retainedBytes: memoryInUse() - before } }
  } catch (error) {
    return { threw: true, error, cost: { ms: performance.now() - started, retainedBytes: memoryInUse() - before } }
  }
}

/**
 * Generous bounds for reading `inputBytes` bytes: 250 ms plus 10 µs a byte (a normal
 * decode takes about 2 ns a byte; the bundle bomb took seconds for 100 kB), and
 * 64 MiB plus 64 bytes kept per input byte (a 4 GiB array from a 5-byte header, or
 * a slice of one long string per bundle, blows through it).
 */
export function assertProportionate(cost: Cost, inputBytes: number, what: string): void {
  const msLimit = 250 + inputBytes / 100
  const bytesLimit = 64 * 2 ** 20 + 64 * inputBytes
  if (cost.ms > msLimit) throw new Error(`${what}: ${cost.ms.toFixed(0)} ms for ${inputBytes} bytes (limit ${msLimit.toFixed(0)} ms)`)
  if (cost.retainedBytes > bytesLimit) {
    throw new Error(`${what}: ${(cost.retainedBytes / 2 ** 20).toFixed(1)} MiB kept for ${inputBytes} bytes (limit ${(bytesLimit / 2 ** 20).toFixed(1)} MiB)`)
  }
}

/** Throws unless `error` is the reader's documented failure. */
export function assertFailure(error: unknown, expected: abstract new (...args: never[]) => Error, what: string): void {
  if (!(error instanceof expected)) {
    const kind = error instanceof Error ? error.constructor.name : typeof error
    throw new Error(`${what} threw ${kind} (${error instanceof Error ? error.message.slice(0, 200) : String(error)}), not a ${expected.name}`, {
      cause: error,
    })
  }
}
