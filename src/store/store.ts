import { describe } from '../util/validate.js'
import { ValueTooLargeError } from './value-too-large-error.js'

/**
 * What the query cache needs from a key-value tier. Two implementations ship:
 * {@link MemcachedStore} (several memcached nodes on a ketama ring) and
 * {@link MemoryStore} (bounded in-process LRU with TTL, one process only).
 *
 * Every method may reject with a {@link StoreUnavailableError} when the node that
 * owns the key cannot answer in time; callers treat that as "cache unknown" and go
 * to the database. No method ever waits longer than the store's own timeout.
 *
 * TTLs are whole seconds; `0` means "no expiry" (the item may still be evicted).
 */
export interface Store {
  /** The stored value, or `undefined` when the key is absent. */
  get(key: string): Promise<Buffer | undefined>
  /** Stores unconditionally. */
  set(key: string, value: Buffer, ttlSeconds: number): Promise<void>
  /** Stores only if absent (memcached `add`, atomic). Resolves `true` when it stored. */
  add(key: string, value: Buffer, ttlSeconds: number): Promise<boolean>
  /** Removes the key; resolves `false` when it was absent. */
  delete(key: string): Promise<boolean>
  /**
   * Atomically adds `amount` to the decimal counter at `key`; when the counter is
   * absent it is created holding `initial` (memcached `incr` with an initial value).
   * Resolves the counter's new value as a decimal string; `amount` 0 reads it.
   * Counters are a kind of their own: a store may frame what `set` writes (the
   * memcached store does), so read a counter with `increment`, never with `get`.
   */
  increment(key: string, amount: number, initial: bigint): Promise<string>
  /**
   * Replicated keys: small, important values (generation counters, the tier's
   * mode flag) kept on the first `count` live nodes clockwise from the key on the
   * ring, so losing one node loses no copy. The first replica is the node `get`
   * reads `key` from. Replicas are homes, not stand-ins: their TTL is not capped.
   * A single-node store has one replica.
   *
   * Resolves the value on each replica, in ring order; a replica that failed is
   * a {@link StoreUnavailableError} in its slot. Rejects only if none answered.
   */
  getReplicas(key: string, count: number): Promise<Array<Buffer | undefined | StoreUnavailableError>>
  /** Stores on each replica; resolves, per replica, `true` or its failure. Rejects only if none answered. */
  setReplicas(key: string, value: Buffer, ttlSeconds: number, count: number): Promise<Array<true | StoreUnavailableError>>
  /**
   * A key's homes: the first `count` nodes clockwise from `key` on the full ring,
   * whatever their health, so every process names the same nodes (generations live
   * there, read and written by majority: see cache/quorum.ts). Returns one read per home,
   * in ring order: the value, `undefined` when absent, a rejection when the home
   * did not answer (a home this process has taken out fails at once, without I/O).
   * A store may leave homes beyond a majority unread when the majority it read first
   * agreed; their promises then reject (no answer). Every promise is settled within
   * the store's timeout.
   */
  readHomes(key: string, count: number): Array<Promise<Buffer | undefined>>
  /**
   * Stores on every home of `key` (see {@link readHomes}), those this process has
   * taken out included: they may be serving other processes. One promise per home.
   */
  writeHomes(key: string, value: Buffer, ttlSeconds: number, count: number): Array<Promise<void>>
  /** `add` on every home of `key`, like {@link writeHomes}: per home, whether it stored (the key was absent there). */
  addHomes(key: string, value: Buffer, ttlSeconds: number, count: number): Array<Promise<boolean>>
  /** Largest value, in bytes, this store accepts; larger values are not stored. */
  readonly maxValueBytes: number
  /**
   * `true` when no other process sees this store (the embedded one): there is
   * then no farm to share a mode flag or statistics with. Absent means shared.
   */
  readonly processLocal?: boolean
  /** Closes sockets and timers; the store is unusable afterwards. */
  close(): Promise<void>
}

/** memcached's limit, which every store applies so a key that works in one works in all. */
export const MAX_KEY_BYTES = 250

/** memcached's text-protocol key rule, which also keeps binary-protocol keys portable. */
export function assertStoreKey(key: unknown): asserts key is string {
  if (
    typeof key !== 'string' ||
    key.length === 0 ||
    /[\u0000-\u0020\u007f]/.test(key) ||
    Buffer.byteLength(key) > MAX_KEY_BYTES
  ) {
    throw new TypeError(
      `key must be 1 to ${MAX_KEY_BYTES} bytes without spaces or control characters, got ${describe(key)}`,
    )
  }
}

/** Whole seconds, 0 for no expiry. */
export function assertTtlSeconds(ttlSeconds: unknown): asserts ttlSeconds is number {
  if (typeof ttlSeconds !== 'number' || !Number.isSafeInteger(ttlSeconds) || ttlSeconds < 0) {
    const Kind = typeof ttlSeconds === 'number' ? RangeError : TypeError
    throw new Kind(`ttlSeconds must be a non-negative integer number of seconds, got ${describe(ttlSeconds)}`)
  }
}

/** Counters are memcached's unsigned 64-bit integers, wrapping here. */
export const UINT64_LIMIT = 1n << 64n

/** A Buffer of at most `maxValueBytes`; a larger one is never stored. */
export function assertStoreValue(key: string, value: unknown, maxValueBytes: number): asserts value is Buffer {
  if (!Buffer.isBuffer(value)) {
    throw new TypeError(`value must be a Buffer, got ${describe(value)}`)
  }
  if (value.length > maxValueBytes) {
    throw new ValueTooLargeError(key, value.length, maxValueBytes)
  }
}

/** {@link Store.increment}'s `amount` and `initial`: what memcached's 64-bit incr can carry. */
export function assertCounterArguments(amount: unknown, initial: unknown): void {
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0) {
    const Kind = typeof amount === 'number' ? RangeError : TypeError
    throw new Kind(`amount must be a non-negative safe integer, got ${describe(amount)}`)
  }
  if (typeof initial !== 'bigint' || initial < 0n || initial >= UINT64_LIMIT) {
    const Kind = typeof initial === 'bigint' ? RangeError : TypeError
    throw new Kind(`initial must be a bigint from 0 to 2^64-1, got ${describe(initial)}`)
  }
}

/**
 * The store could not answer for a key: node down, refused, timed out or garbled.
 * The cache never lets it reach a query (the database answers); stores throw it.
 *
 * ```ts
 * const value = await store.get('k').catch((error) => {
 *   if (error instanceof StoreUnavailableError) return undefined // treat as a miss
 *   throw error
 * })
 * ```
 */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError'
  constructor(
    message: string,
    /** `host:port` of the node that failed, when known. */
    readonly node?: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}
