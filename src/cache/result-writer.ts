import { ValueTooLargeError } from '../store/value-too-large-error.js'
import { THIRTY_DAYS_SECONDS } from '../util/validate.js'
import type { EntryTimes } from './codec.js'
import type { CacheCounters } from './counters.js'
import type { CacheEngineConfig } from './engine-config.js'

/**
 * Writes results into the store as entries: encoded, framed with their
 * generations and expiry, on one node or (hot results) on the next ones too.
 * Failures are counted and reported, never thrown: a result that cannot be
 * stored is still served.
 *
 * ```ts
 * const encoded = writer.encode(result.rows)
 * if (encoded !== undefined) await writer.putResult(key, tokens, encoded, entryLifetime(60, 0, databaseMs, 0.1))
 * ```
 */
export class ResultWriter {
  readonly #config: CacheEngineConfig
  readonly #counters: CacheCounters
  readonly #failed: (error: unknown) => void

  constructor(config: CacheEngineConfig, counters: CacheCounters, failed: (error: unknown) => void) {
    this.#config = config
    this.#counters = counters
    this.#failed = failed
  }

  /** The rows' bytes, or `undefined` (counted as uncacheable) when the codec cannot bring them back as they are. */
  encode(rows: readonly unknown[]): Buffer | undefined {
    const encoded = this.#config.codec.encodeRows(rows)
    // The codec warns once; not a cache failure, so not onError.
    if (encoded === undefined) this.#counters.uncacheable()
    return encoded
  }

  /**
   * Stores `encoded` under `generations` for `lifetime` (see {@link entryLifetime}); a hot
   * result also on the next node, so a node's death does not recompute it.
   */
  putResult(key: string, generations: readonly string[], encoded: Buffer, lifetime: EntryLifetime): Promise<boolean> {
    const hot = this.#config.hotReplicas > 1 && this.#config.statistics?.isHot(key) === true
    const entry = this.#config.codec.encodeEntry(generations, encoded, lifetime.times)
    return this.#put(key, entry, lifetime.storeTtl, hot ? this.#config.hotReplicas : 1)
  }

  /**
   * Resolves whether the value is now where `get` reads it. With `copies` > 1 it is
   * also written to the next nodes: every copy is checked against the generations
   * on read, so an old copy can never be served.
   */
  async #put(key: string, value: Buffer, ttl: number, copies: number): Promise<boolean> {
    const store = this.#config.store
    if (value.length > store.maxValueBytes) {
      this.#counters.oversize()
      return false
    }
    try {
      if (copies > 1) {
        const [first] = await store.setReplicas(key, value, ttl, copies)
        if (first !== true) throw first
      } else {
        await store.set(key, value, ttl)
      }
      this.#counters.stored()
      return true
    } catch (error) {
      if (error instanceof ValueTooLargeError) {
        this.#counters.oversize()
      } else {
        this.#failed(error)
      }
      return false
    }
  }
}

/** How long the store keeps an entry (seconds) and the times written into it. */
export interface EntryLifetime {
  readonly storeTtl: number
  readonly times: EntryTimes
}

/**
 * The lifetime of a result stored now: its TTL spread by ± `jitter` (so results
 * written together do not expire together), fresh for that long, then kept `swr`
 * seconds more to be served stale while it is refreshed. TTL 0: never expires.
 *
 * ```ts
 * entryLifetime(30, 60, 12.5, 0.1) // { storeTtl: 27..33 + 60 + 1, times: { freshUntil, expiresAt, computeMs: 12.5 } }
 * ```
 */
export function entryLifetime(ttlSeconds: number, swrSeconds: number, computeMs: number, jitter: number, random: () => number = Math.random): EntryLifetime {
  if (ttlSeconds === 0) return { storeTtl: 0, times: { freshUntil: 0, expiresAt: 0, computeMs } }
  const fresh = Math.max(1, Math.round(ttlSeconds * (1 + jitter * (2 * random() - 1))))
  const kept = Math.min(fresh + swrSeconds, THIRTY_DAYS_SECONDS)
  const now = Date.now()
  // The entry's own times decide what is served; memcached only clears it away. Its clock ticks
  // in whole seconds, so an item stored for n s may go after n - 1: one more second keeps it.
  const storeTtl = Math.min(kept + 1, THIRTY_DAYS_SECONDS)
  return { storeTtl, times: { freshUntil: now + fresh * 1000, expiresAt: now + kept * 1000, computeMs } }
}
