import { ValueTooLargeError } from '../store/value-too-large-error.js'
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
 * if (encoded !== undefined) await writer.putResult(key, tokens, encoded, 60, expiryOf(60))
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

  /** Stores `encoded` under `generations`; a hot result also on the next node, so a node's death does not recompute it. */
  putResult(key: string, generations: readonly string[], encoded: Buffer, ttl: number, expiresAt: number): Promise<boolean> {
    const hot = this.#config.hotReplicas > 1 && this.#config.statistics?.isHot(key) === true
    return this.#put(key, this.#config.codec.encodeEntry(generations, encoded, expiresAt), ttl, hot ? this.#config.hotReplicas : 1)
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

/** The absolute expiry of an entry stored now for `ttlSeconds` (0: none), as entries record it. */
export function expiryOf(ttlSeconds: number): number {
  return ttlSeconds === 0 ? 0 : Date.now() + ttlSeconds * 1000
}
