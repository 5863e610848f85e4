/**
 * What a drill worker process runs, whichever the workload: a cache client (or
 * none), virtual users, and, for the web farm, its own count of database statements.
 */
import type { CacheEvent, QueryCache } from '../../src/index.js'
import type { CacheOutcome } from '../../examples/web-farm/cache-outcome.js'

/** One request of a virtual user, as the worker records it. */
export interface RequestRecord {
  /** From sending to the answer, ms. */
  readonly ms: number
  /** The page (web farm) or `shape` (synthetic). */
  readonly page: string
  /** What the cache did for it (examples/web-farm/cache-outcome.ts). */
  readonly outcome: CacheOutcome
  /** Set when it failed. */
  readonly error?: string
}

export interface WorkloadHooks {
  /** Cache events of this process (node out of the ring, back, mode changes). */
  onEvent(event: CacheEvent): void
  /** Cache failures (the query went to the database). */
  onError(error: unknown): void
}

export interface DrillWorkloadRun {
  /** This process's cache client; `undefined` without a cache. */
  readonly cache: QueryCache | undefined
  /** Statements the database answered so far, when the workload counts them (the web farm does). */
  readonly dbExecutions?: () => { total: number; byKind: Record<string, number> }
  /** One virtual user (`vu` of this worker), requesting until `until` (a `performance.now()` time). */
  user(vu: number, until: number, record: (request: RequestRecord) => void): Promise<void>
  /** The app's log lines, the first few. */
  logSamples(): string[]
  close(): Promise<void>
}
