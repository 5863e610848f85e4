/**
 * What the history processes log, one JSON object a line. Times are
 * microseconds of the system-wide monotonic clock (`process.hrtime`), so the
 * logs of different processes on one machine order against each other.
 */

/** A write of `value` to row `id`; `end` is when the call (or its commit) returned. */
export interface WriteEvent {
  readonly type: 'write'
  readonly process: string
  readonly id: number
  readonly value: number
  /** How it was written: plain update, transaction(), startTransaction(), returning, cte, raw, raw-declared. */
  readonly how: string
  readonly start: number
  readonly end: number
  /** `false`: the call threw, so whether it committed is unknown. */
  readonly ok: boolean
  /** The writer was told (onError) that its invalidation could not be recorded: the one stated exception. */
  readonly unrecorded: boolean
  /** A rolled-back write: `value` must never be read. */
  readonly rolledBack: boolean
  readonly error?: string
}

/** A `.cached()` read and the rows (id, v) it returned. */
export interface ReadEvent {
  readonly type: 'read'
  readonly process: string
  /** Which query shape: row, join, subquery, aggregate, all. */
  readonly query: string
  readonly start: number
  readonly end: number
  readonly ok: boolean
  readonly rows: ReadonlyArray<readonly [id: number, value: number]>
  readonly error?: string
}

/** A statement of a cached read that reached the database (counted below the cache). */
export interface ExecutionEvent {
  readonly type: 'execution'
  readonly process: string
  readonly at: number
}

/** A fault phase, logged by the orchestrator. */
export interface PhaseEvent {
  readonly type: 'phase'
  readonly name: string
  /** Whether the tier is hurt (or cold) in this phase: a hit ratio is only required outside these. */
  readonly fault: boolean
  readonly at: number
}

export type HistoryEvent = WriteEvent | ReadEvent | ExecutionEvent | PhaseEvent

/** Microseconds on the system-wide monotonic clock. */
export function now(): number {
  return Number(process.hrtime.bigint() / 1000n)
}
