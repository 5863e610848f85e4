import { formatDuration } from '../util/duration.js'
import type { CacheMode } from '../tier/tier-state.js'

/** The baseline hit ratio is learnt over this much of the latest normal time. */
export const BASELINE_WINDOW_MS = 30_000
/** The hit ratio that must be back is measured over this much of the latest time. */
export const RECOVERY_WINDOW_MS = 5_000
/** Without a pre-incident baseline, this farm-wide hit ratio counts as recovered. */
export const RATIO_WITHOUT_BASELINE = 0.5

/** Farm-wide requests between two rounds. */
export interface RequestWindow {
  readonly at: number
  readonly hits: number
  readonly misses: number
}

/** The farm counters as read in one round. */
export interface Counters {
  readonly hits: number
  readonly misses: number
}

/** What the monitor knows of the farm's traffic: the latest windows and the pre-incident ones. */
export interface TrafficHistory {
  /** The counters read last; `undefined` when unreadable. */
  readonly last: Counters | undefined
  /** Every known window of the last RECOVERY_WINDOW_MS. */
  readonly recent: readonly RequestWindow[]
  /** Windows while the tier was normal: the last BASELINE_WINDOW_MS of normal time. */
  readonly normal: readonly RequestWindow[]
}

/** The automatic (probe and hit-ratio driven) mode, before any override. */
export interface AutoMode {
  readonly mode: CacheMode
  readonly since: number
  /** Published: short. */
  readonly reason: string
}

/** What {@link nextAutoMode} decides from. */
export interface RecoveryInput {
  readonly now: number
  /** The published reason and the logged detail while a node is down; `undefined` when every node is up. */
  readonly down: { readonly reason: string; readonly detail: string } | undefined
  /** Since when every node has been up; `undefined` while one is down. */
  readonly allUpSince: number | undefined
  readonly settleMs: number
  readonly hitRatioRecovery: number
  readonly minRequests: number
  readonly traffic: TrafficHistory
}

/**
 * A farm counter as stored by memcached `incr`: decimal text; missing is 0, anything else unknown.
 *
 * ```ts
 * parseCounter(Buffer.from('42')) // 42
 * ```
 */
export function parseCounter(value: Buffer | undefined): number | undefined {
  if (value === undefined) return 0
  const text = value.toString('latin1').trim()
  return /^\d{1,20}$/.test(text) ? Number(text) : undefined
}

/**
 * The hit ratio over `windows`, if they saw at least `minRequests` (and any) requests.
 *
 * ```ts
 * ratioOf([{ at: 0, hits: 9, misses: 1 }], 5) // 0.9
 * ```
 */
export function ratioOf(windows: readonly RequestWindow[], minRequests: number): number | undefined {
  let hits = 0
  let requests = 0
  for (const window of windows) {
    hits += window.hits
    requests += window.hits + window.misses
  }
  return requests > 0 && requests >= minRequests ? hits / requests : undefined
}

/**
 * The history after reading `counters` at `now`. The baseline learns only while
 * `learning` (the tier normal and every node up): during an incident it stays the
 * pre-incident level.
 *
 * ```ts
 * history = recordCounters(history, { hits: 120, misses: 8 }, Date.now(), true)
 * ```
 */
export function recordCounters(history: TrafficHistory, counters: Counters | undefined, now: number, learning: boolean): TrafficHistory {
  const last = history.last
  const recent = history.recent.filter((window) => window.at > now - RECOVERY_WINDOW_MS)
  // A counter that went down was reset (its node died or it was evicted): that delta is unknown.
  if (counters === undefined || last === undefined || counters.hits < last.hits || counters.misses < last.misses) {
    return { last: counters, recent, normal: history.normal }
  }
  const window: RequestWindow = { at: now, hits: counters.hits - last.hits, misses: counters.misses - last.misses }
  const normal = learning ? [...history.normal, window].filter((w) => w.at > now - BASELINE_WINDOW_MS) : history.normal
  return { last: counters, recent: [...recent, window], normal }
}

/**
 * Whether the farm's hit ratio over the recent windows is back to
 * `hitRatioRecovery` of its pre-incident level; a quiet farm counts as recovered.
 *
 * ```ts
 * hitRatioRecovered(history, 0.9, 20) // { recovered: false, detail: 'hit ratio 0.40 (baseline 0.90, need 0.81)' }
 * ```
 */
export function hitRatioRecovered(
  traffic: TrafficHistory,
  hitRatioRecovery: number,
  minRequests: number,
): { recovered: boolean; detail: string } {
  const requests = requestCount(traffic.recent)
  if (requests < minRequests) {
    return { recovered: true, detail: `${requests} requests in the last ${RECOVERY_WINDOW_MS / 1000}s` }
  }
  const ratio = ratioOf(traffic.recent, 1) ?? 0
  const baseline = ratioOf(traffic.normal, minRequests)
  if (baseline === undefined) {
    return {
      recovered: ratio >= RATIO_WITHOUT_BASELINE,
      detail: `hit ratio ${ratio.toFixed(2)} (no baseline, need ${RATIO_WITHOUT_BASELINE})`,
    }
  }
  const target = hitRatioRecovery * baseline
  return {
    recovered: ratio >= target,
    detail: `hit ratio ${ratio.toFixed(2)} (baseline ${baseline.toFixed(2)}, need ${target.toFixed(2)})`,
  }
}

/**
 * The automatic mode after a round: degraded as soon as a node is down; back to
 * normal once every node has been up for `settleMs` and the hit ratio recovered.
 * `change` is set when the mode changed: what to log.
 *
 * ```ts
 * const { auto, change } = nextAutoMode(auto, { now, down: undefined, allUpSince, settleMs: 30_000, hitRatioRecovery: 0.9, minRequests: 20, traffic })
 * ```
 */
export function nextAutoMode(auto: AutoMode, input: RecoveryInput): { auto: AutoMode; change: string | undefined } {
  const { now, down } = input
  if (down !== undefined) {
    return auto.mode === 'normal'
      ? { auto: { mode: 'degraded', since: now, reason: down.reason }, change: down.detail }
      : { auto: { ...auto, reason: down.reason }, change: undefined }
  }
  if (auto.mode === 'normal') return { auto, change: undefined }
  const allUpSince = input.allUpSince ?? now
  const upFor = now - allUpSince
  if (upFor < input.settleMs) {
    return { auto: { ...auto, reason: `settling: all nodes up since ${new Date(allUpSince).toISOString()}` }, change: undefined }
  }
  const recovery = hitRatioRecovered(input.traffic, input.hitRatioRecovery, input.minRequests)
  return recovery.recovered
    ? { auto: { mode: 'normal', since: now, reason: 'settled' }, change: `settled: all nodes up for ${formatDuration(upFor)}, ${recovery.detail}` }
    : { auto: { ...auto, reason: `settling: ${recovery.detail}` }, change: undefined }
}

/**
 * Requests seen in `windows`.
 *
 * ```ts
 * requestCount(history.recent) // 128
 * ```
 */
export function requestCount(windows: readonly RequestWindow[]): number {
  return windows.reduce((sum, w) => sum + w.hits + w.misses, 0)
}
