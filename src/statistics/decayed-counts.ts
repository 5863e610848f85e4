/**
 * The counts one query shape carries and the arithmetic on them. Counts decay
 * exponentially with a half-life, so counts taken at different times (or in
 * different units) are only comparable after scaling them to one moment: every
 * sum here assumes its operands already share that moment.
 *
 * @module
 */

/** The sums kept per shape, all in one unit (decayed to one moment, or scaled). */
export interface DecayedCounts {
  /** Space-saving estimate of the requests: at most `error` above the true count. */
  readonly requests: number
  /** Count inherited from an evicted shape when this one took its counter. */
  readonly error: number
  readonly hits: number
  readonly misses: number
  /** Misses that reported a database time. */
  readonly executions: number
  /** Sum of those database times, ms. */
  readonly databaseMs: number
  /** Last request, ms since the epoch: a time, so never scaled. */
  readonly lastSeen: number
}

/** The names of the numeric counts of {@link DecayedCounts} (all but `lastSeen`). */
export const COUNT_FIELDS = ['requests', 'error', 'hits', 'misses', 'executions', 'databaseMs'] as const

/** `2^(-elapsed / halfLife)`; time that runs backwards (clock skew between hosts) does not inflate counts. */
export function decayFactor(elapsedMs: number, halfLifeMs: number): number {
  return elapsedMs <= 0 ? 1 : 2 ** (-elapsedMs / halfLifeMs)
}

/** Every count of `counts` passed through `map`; `lastSeen` as it was. */
export function mapCounts(counts: DecayedCounts, map: (count: number) => number): DecayedCounts {
  return {
    requests: map(counts.requests),
    error: map(counts.error),
    hits: map(counts.hits),
    misses: map(counts.misses),
    executions: map(counts.executions),
    databaseMs: map(counts.databaseMs),
    lastSeen: counts.lastSeen,
  }
}

/** `combine` applied to each pair of counts of `a` and `b`; `lastSeen` is the later of the two. */
export function combineCounts(a: DecayedCounts, b: DecayedCounts, combine: (a: number, b: number) => number): DecayedCounts {
  return {
    requests: combine(a.requests, b.requests),
    error: combine(a.error, b.error),
    hits: combine(a.hits, b.hits),
    misses: combine(a.misses, b.misses),
    executions: combine(a.executions, b.executions),
    databaseMs: combine(a.databaseMs, b.databaseMs),
    lastSeen: Math.max(a.lastSeen, b.lastSeen),
  }
}

/** Every count multiplied by `factor`: decay (a {@link decayFactor}) or a change of unit. */
export function scaleCounts(counts: DecayedCounts, factor: number): DecayedCounts {
  return mapCounts(counts, (count) => count * factor)
}

/** The counts of `a` and `b` added up, as when two processes saw the same shape. */
export function sumCounts(a: DecayedCounts, b: DecayedCounts): DecayedCounts {
  return combineCounts(a, b, (x, y) => x + y)
}
