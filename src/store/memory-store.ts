import { LRUCache } from 'lru-cache'
import type { Store } from './store.js'
import {
  assertCounterArguments,
  assertStoreKey,
  assertStoreValue,
  assertTtlSeconds,
  MAX_KEY_BYTES,
  StoreUnavailableError,
  UINT64_LIMIT,
} from './store.js'
import { integerFrom, rejectUnknown, requireOptionsObject } from '../util/validate.js'

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Most entries kept; the least recently used go first. Default 10 000. */
  maxEntries?: number
  /** Most bytes kept (values + keys + a fixed per-entry overhead). Default 64 MiB. */
  maxBytes?: number
  /** Largest value accepted, in bytes. Default 1 MiB (or less, to fit in `maxBytes`). */
  maxValueBytes?: number
}

interface Entry {
  readonly value: Buffer
  /** Wall-clock ms; `Infinity` for "no expiry". */
  readonly expiresAt: number
}

// Rough cost of the entry object, the LRU's slots and the key's string header.
const ENTRY_OVERHEAD_BYTES = 64
const MIB = 1024 * 1024
const KNOWN_OPTIONS = ['maxEntries', 'maxBytes', 'maxValueBytes']

/**
 * A {@link Store} held in this process: a bounded LRU (by entry count and bytes)
 * with per-item TTL, following memcached's semantics (`add` only if absent,
 * expired items count as absent, `increment` creates the counter from `initial`
 * and wraps at 2^64). Good for a single process, tests and development; it is
 * not shared between processes.
 *
 * TTLs are whole seconds relative to now; `0` means no expiry (LRU eviction
 * still applies).
 *
 * ```ts
 * const cache = createQueryCache({ store: new MemoryStore({ maxBytes: 16 * 1024 * 1024 }) })
 * ```
 */
export class MemoryStore implements Store {
  /** Largest value, in bytes, this store accepts. */
  readonly maxValueBytes: number
  /** Nothing outside this process sees it: no farm-wide mode or statistics. */
  readonly processLocal = true
  readonly #cache: LRUCache<string, Entry>
  #closed = false

  /**
   * @throws {TypeError | RangeError} When an option is unknown or out of range;
   *   the message names the option and the value.
   */
  constructor(options: MemoryStoreOptions = {}) {
    rejectUnknown(requireOptionsObject(options, 'MemoryStore'), KNOWN_OPTIONS, 'MemoryStore')
    const maxEntries = options.maxEntries === undefined ? 10_000 : integerFrom(options.maxEntries, 'maxEntries', 1)
    const maxBytes = options.maxBytes === undefined ? 64 * MIB : integerFrom(options.maxBytes, 'maxBytes', 1024)
    // The biggest value must still fit next to the longest key, or the LRU would drop it silently.
    const room = maxBytes - MAX_KEY_BYTES - ENTRY_OVERHEAD_BYTES
    const maxValueBytes = options.maxValueBytes === undefined ? Math.min(MIB, room) : integerFrom(options.maxValueBytes, 'maxValueBytes', 1)
    if (maxValueBytes > room) {
      throw new RangeError(
        `maxValueBytes must leave room for the key and entry overhead within maxBytes (at most ${room}), got ${maxValueBytes}`,
      )
    }
    this.maxValueBytes = maxValueBytes
    this.#cache = new LRUCache<string, Entry>({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: (entry, key) => entry.value.length + Buffer.byteLength(key) + ENTRY_OVERHEAD_BYTES,
    })
  }

  /** The stored value (a copy), or `undefined` when absent or expired. */
  async get(key: string): Promise<Buffer | undefined> {
    this.#assertOpen()
    assertStoreKey(key)
    const entry = this.#live(key, true)
    return entry === undefined ? undefined : Buffer.from(entry.value)
  }

  /**
   * Stores a copy of `value` unconditionally.
   * @throws {ValueTooLargeError} When `value` is above {@link maxValueBytes}.
   */
  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    this.#assertOpen()
    assertStoreKey(key)
    assertStoreValue(key, value, this.maxValueBytes)
    this.#cache.set(key, { value: Buffer.from(value), expiresAt: expiresAt(ttlSeconds) })
  }

  /**
   * Stores a copy of `value` only if `key` is absent (or expired).
   * @returns `true` when it stored.
   * @throws {ValueTooLargeError} When `value` is above {@link maxValueBytes}.
   */
  async add(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    this.#assertOpen()
    assertStoreKey(key)
    assertStoreValue(key, value, this.maxValueBytes)
    const expiry = expiresAt(ttlSeconds)
    if (this.#live(key, false) !== undefined) {
      return false
    }
    this.#cache.set(key, { value: Buffer.from(value), expiresAt: expiry })
    return true
  }

  /** Removes `key`; `false` when it was absent or already expired. */
  async delete(key: string): Promise<boolean> {
    this.#assertOpen()
    assertStoreKey(key)
    const existed = this.#live(key, false) !== undefined
    this.#cache.delete(key)
    return existed
  }

  /**
   * Adds `amount` to the decimal counter at `key`, wrapping at 2^64 like
   * memcached; a missing counter is created holding `initial`, with no expiry.
   * Atomic within this process (the read-modify-write never yields).
   * @returns The counter's new value as a decimal string.
   * @throws {Error} When the value at `key` is not a decimal counter.
   */
  async increment(key: string, amount: number, initial: bigint): Promise<string> {
    this.#assertOpen()
    assertStoreKey(key)
    assertCounterArguments(amount, initial)
    const entry = this.#live(key, true)
    if (entry === undefined) {
      const text = initial.toString()
      this.#cache.set(key, { value: Buffer.from(text, 'latin1'), expiresAt: Infinity })
      return text
    }
    const current = parseCounter(entry.value)
    if (current === undefined) {
      throw new Error(`cannot increment ${JSON.stringify(key)}: its value is not a decimal counter`)
    }
    const text = ((current + BigInt(amount)) % UINT64_LIMIT).toString()
    // memcached's incr keeps the item's expiry.
    this.#cache.set(key, { value: Buffer.from(text, 'latin1'), expiresAt: entry.expiresAt })
    return text
  }

  /** One process, one node: the only replica is the key itself. */
  async getReplicas(key: string): Promise<Array<Buffer | undefined>> {
    return [await this.get(key)]
  }

  async setReplicas(key: string, value: Buffer, ttlSeconds: number): Promise<true[]> {
    await this.set(key, value, ttlSeconds)
    return [true]
  }

  readHomes(key: string): Array<Promise<Buffer | undefined>> {
    return [this.get(key)]
  }

  writeHomes(key: string, value: Buffer, ttlSeconds: number): Array<Promise<void>> {
    return [this.set(key, value, ttlSeconds)]
  }

  addHomes(key: string, value: Buffer, ttlSeconds: number): Array<Promise<boolean>> {
    return [this.add(key, value, ttlSeconds)]
  }

  /** Drops every entry; the store rejects all calls afterwards. */
  async close(): Promise<void> {
    this.#closed = true
    this.#cache.clear()
  }

  /** The unexpired entry at `key`, evicting it when expired. */
  #live(key: string, touch: boolean): Entry | undefined {
    const entry = touch ? this.#cache.get(key) : this.#cache.peek(key)
    if (entry === undefined) {
      return undefined
    }
    if (entry.expiresAt <= Date.now()) {
      this.#cache.delete(key)
      return undefined
    }
    return entry
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new StoreUnavailableError('MemoryStore is closed')
    }
  }
}

function expiresAt(ttlSeconds: unknown): number {
  assertTtlSeconds(ttlSeconds)
  return ttlSeconds === 0 ? Infinity : Date.now() + ttlSeconds * 1000
}

/** memcached accepts digits followed by padding spaces (its `decr` pads). */
function parseCounter(value: Buffer): bigint | undefined {
  const text = value.toString('latin1')
  if (!/^[0-9]{1,20} *$/.test(text)) {
    return undefined
  }
  const number = BigInt(text.trimEnd())
  return number < UINT64_LIMIT ? number : undefined
}
