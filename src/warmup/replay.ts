import type { Kysely } from 'kysely'
import { warmupStatement } from '../kysely/cached.js'
import { positiveInteger } from '../util/validate.js'
import { orderForWarmup, type WarmupEntry, type WarmupManifest } from './manifest.js'

export interface WarmupOptions {
  /** A Kysely instance whose dialect this cache wrapped: the queries run through it. */
  readonly db: Kysely<any>
  /** Queries replayed at once. Default 4: warm-up must not become the load it prevents. */
  readonly concurrency?: number
  /** Called after each entry, in completion order. */
  readonly onProgress?: (progress: WarmupProgress) => void
  /** Stops starting new entries; those running finish. */
  readonly signal?: AbortSignal
  /** Only these entries (e.g. the keys one returning node owns). */
  readonly filter?: (entry: WarmupEntry) => boolean
}

export interface WarmupProgress {
  readonly done: number
  readonly total: number
  readonly entry: WarmupEntry
  readonly outcome: 'warmed' | 'skipped' | 'failed'
  readonly error?: unknown
}

export interface WarmupReport {
  readonly total: number
  /** Stored in the cache. */
  readonly warmed: number
  /** Ran, but not stored (too large for the store, or the store failed). */
  readonly skipped: number
  /** Did not run: the database refused it (read-only violation, error) or the cache could not take it. */
  readonly failed: number
  /** Left out because the signal aborted first. */
  readonly aborted: number
  readonly durationMs: number
  readonly failures: ReadonlyArray<{ readonly key: string; readonly sql: string; readonly error: string }>
}

/**
 * Replays a manifest into the cache, highest score first, each entry in a
 * read-only transaction and stored under the current generations.
 */
export async function runWarmup(manifest: WarmupManifest, options: WarmupOptions, owner: object): Promise<WarmupReport> {
  const concurrency = positiveInteger(options.concurrency ?? 4, 'concurrency')
  const entries = orderForWarmup(manifest).filter((entry) => options.filter?.(entry) ?? true)
  const started = performance.now()
  const failures: Array<{ key: string; sql: string; error: string }> = []
  let next = 0
  let done = 0
  let warmed = 0
  let skipped = 0

  const report = (entry: WarmupEntry, outcome: WarmupProgress['outcome'], error?: unknown): void => {
    done++
    options.onProgress?.({ done, total: entries.length, entry, outcome, ...(error === undefined ? {} : { error }) })
  }

  const lane = async (): Promise<void> => {
    while (next < entries.length && options.signal?.aborted !== true) {
      const entry = entries[next++]!
      const { compiled, mark } = warmupStatement(entry)
      try {
        await options.db.executeQuery(compiled)
      } catch (error) {
        failures.push({ key: entry.key, sql: entry.sql, error: error instanceof Error ? error.message : String(error) })
        report(entry, 'failed', error)
        continue
      }
      if (mark.replayedBy !== owner) {
        next = entries.length
        throw new TypeError('warmup() needs a Kysely instance whose dialect was wrapped by this cache (cache.wrapDialect)')
      }
      if (mark.stored) warmed++
      else skipped++
      report(entry, mark.stored ? 'warmed' : 'skipped')
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, entries.length) }, lane))

  return {
    total: entries.length,
    warmed,
    skipped,
    failed: failures.length,
    aborted: entries.length - done,
    durationMs: performance.now() - started,
    failures,
  }
}
