import { RejectedValueError } from '../store/signed-store.js'
import type { RejectionReason } from '../store/value-signer.js'
import type { CacheCounters } from './counters.js'

const REPORT_EVERY_MS = 60_000
/** Keys remembered for throttling; an attacker writing under many keys must not grow memory without bound. */
const MAX_REMEMBERED_KEYS = 10_000

/**
 * Counts every refused value and tells `onError` about a key at most once a
 * minute: an attacker (or a misconfigured process) rewriting a hot key would
 * otherwise flood the application's error log.
 *
 * ```ts
 * const rejections = new RejectionReporter(counters, onError)
 * rejections.report('app:q:1', 'bad-signature') // counted, reported
 * rejections.report('app:q:1', 'bad-signature') // counted only, until a minute has passed
 * ```
 */
export class RejectionReporter {
  readonly #counters: CacheCounters
  readonly #onError: (error: unknown) => void
  readonly #reportedAt = new Map<string, number>()

  constructor(counters: CacheCounters, onError: (error: unknown) => void) {
    this.#counters = counters
    this.#onError = onError
  }

  report(key: string, reason: RejectionReason, now = Date.now()): void {
    this.#counters.rejected()
    const last = this.#reportedAt.get(key)
    if (last !== undefined && now - last < REPORT_EVERY_MS) return
    this.#reportedAt.delete(key)
    if (this.#reportedAt.size >= MAX_REMEMBERED_KEYS) {
      // Oldest first (Map keeps insertion order): forgetting one only allows one more report.
      this.#reportedAt.delete(this.#reportedAt.keys().next().value as string)
    }
    this.#reportedAt.set(key, now)
    this.#onError(new RejectedValueError(key, reason))
  }
}
