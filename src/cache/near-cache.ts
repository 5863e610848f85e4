import { LRUCache } from 'lru-cache'
import type { EntryTimes } from './codec.js'

/** One result kept in this process, with the generations it was computed under. */
export interface NearEntry {
  /** The encoded rows, decoded afresh for every caller so no caller sees another's mutations. */
  readonly rows: Buffer
  /** The generation tokens the rows were computed under, in the reader's key order. */
  readonly generations: readonly string[]
  /** The generation keys those tokens belong to, for dropping on this process's own writes. */
  readonly generationKeys: readonly string[]
  /** When a majority last confirmed `generations` (performance.now()). */
  validatedAt: number
  /** The stored entry's times, so a copy never outlives it and refreshes as it would. */
  readonly times: EntryTimes
}

/** Bounds and trust of the near cache, as `createQueryCache({ nearCache })` resolved them. */
export interface NearCacheConfig {
  readonly maxBytes: number
  readonly maxEntries: number
  /** How long an entry is served without reading its generations; 0: never. */
  readonly trustMs: number
}

// The entry object, its arrays, the Buffer and ArrayBuffer objects, the index and the LRU's slots:
// measured by bench:near-memory at about this much beyond the bytes.
const ENTRY_OVERHEAD_BYTES = 560
// Per slot of lru-cache's preallocated arrays (keys, values, links, sizes).
const SLOT_BYTES = 32

/**
 * The results this process served recently (L1), kept with the generation tokens
 * they were computed under. A hit whose entry is here reads only the generations
 * (small keys) and serves the rows from memory when a majority still holds the
 * same tokens: the same proof a remote hit needs, without moving the value.
 *
 * Entries are dropped when this process writes what they read (so a trust window
 * never hides a process's own write from itself), when a read finds their
 * generations replaced, and by the LRU's byte and entry bounds.
 *
 * ```ts
 * const near = new NearCache({ maxBytes: 64 * 1024 * 1024, maxEntries: 10_000, trustMs: 0 })
 * near.set(key, { rows, generations, generationKeys, validatedAt: performance.now(), times })
 * near.dropReadersOf(['kysely:g:t:public.person'])
 * ```
 */
export class NearCache {
  readonly trustMs: number
  readonly #entries: LRUCache<string, NearEntry>
  /** generation key → cache keys of the entries computed under it. */
  readonly #readers = new Map<string, Set<string>>()

  constructor(config: NearCacheConfig) {
    this.trustMs = config.trustMs
    this.#entries = new LRUCache<string, NearEntry>({
      max: config.maxEntries,
      // lru-cache allocates its slot arrays for `max` entries up front: that memory is part of the bound.
      maxSize: Math.max(config.maxBytes - config.maxEntries * SLOT_BYTES, Math.floor(config.maxBytes / 2)),
      sizeCalculation: (entry, key) => sizeOf(key, entry),
      dispose: (entry, key) => this.#unindex(key, entry),
    })
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size
  }

  /** Estimated bytes held now. */
  get bytes(): number {
    return this.#entries.calculatedSize
  }

  /** The copy of `key`, unless its TTL has run out (it is dropped then). */
  get(key: string): NearEntry | undefined {
    const entry = this.#entries.get(key)
    if (entry !== undefined && entry.times.expiresAt !== 0 && entry.times.expiresAt <= Date.now()) {
      this.#entries.delete(key)
      return undefined
    }
    return entry
  }

  /** Keeps `entry`, unless it alone exceeds the byte bound. */
  set(key: string, entry: NearEntry): void {
    if (sizeOf(key, entry) > this.#entries.maxSize) return
    this.#entries.set(key, { ...entry, rows: ownBytes(entry.rows) })
    for (const generationKey of entry.generationKeys) {
      let keys = this.#readers.get(generationKey)
      if (keys === undefined) {
        keys = new Set()
        this.#readers.set(generationKey, keys)
      }
      keys.add(key)
    }
  }

  delete(key: string): void {
    this.#entries.delete(key)
  }

  /** Drops every entry computed under one of `generationKeys` (this process wrote what they read). */
  dropReadersOf(generationKeys: readonly string[]): void {
    for (const generationKey of generationKeys) {
      const keys = this.#readers.get(generationKey)
      if (keys === undefined) continue
      for (const key of [...keys]) this.#entries.delete(key)
    }
  }

  clear(): void {
    this.#entries.clear()
  }

  #unindex(key: string, entry: NearEntry): void {
    for (const generationKey of entry.generationKeys) {
      const keys = this.#readers.get(generationKey)
      if (keys === undefined) continue
      keys.delete(key)
      if (keys.size === 0) this.#readers.delete(generationKey)
    }
  }
}

/**
 * `rows` in memory of their own: a slice of a larger buffer (Node's pool for small
 * buffers, a fetched entry) would keep all of it alive, unaccounted for.
 */
function ownBytes(rows: Buffer): Buffer {
  if (rows.byteOffset === 0 && rows.buffer.byteLength === rows.byteLength) return rows
  const own = Buffer.allocUnsafeSlow(rows.byteLength)
  rows.copy(own)
  return own
}

/** Keys and tokens are ASCII (one byte a character in V8); rows are bytes. */
function sizeOf(key: string, entry: NearEntry): number {
  let bytes = key.length + entry.rows.byteLength + ENTRY_OVERHEAD_BYTES
  for (const token of entry.generations) bytes += token.length
  return bytes
}
