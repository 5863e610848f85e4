import { describe, expect, it } from 'vitest'
import { hitRatioRecovered, nextAutoMode, parseCounter, recordCounters, RECOVERY_WINDOW_MS } from '../../src/monitor/recovery.js'
import type { AutoMode, RecoveryInput, TrafficHistory } from '../../src/monitor/recovery.js'

const T0 = Date.UTC(2026, 10, 30, 12)
const empty: TrafficHistory = { last: undefined, recent: [], normal: [] }
const degraded: AutoMode = { mode: 'degraded', since: T0, reason: 'node a:1 down (refused)' }

/** A history whose normal windows had `baseline` hits of 100 requests and whose recent ones have `recent` hits of 100. */
function history(baseline: number | undefined, recent: number): TrafficHistory {
  return {
    last: undefined,
    normal: baseline === undefined ? [] : [{ at: T0, hits: baseline, misses: 100 - baseline }],
    recent: [{ at: T0 + 40_000, hits: recent, misses: 100 - recent }],
  }
}

function input(overrides: Partial<RecoveryInput>): RecoveryInput {
  return { now: T0 + 40_000, down: undefined, allUpSince: T0 + 5_000, settleMs: 30_000, hitRatioRecovery: 0.9, minRequests: 20, traffic: empty, ...overrides }
}

describe('nextAutoMode', () => {
  it('turns degraded the round a node is down, and only then reports a change', () => {
    const down = { reason: 'node a:1 down (refused)', detail: 'node a:1 down: refused' }
    const first = nextAutoMode({ mode: 'normal', since: T0, reason: 'all nodes up' }, input({ now: T0 + 1000, down, allUpSince: undefined }))
    expect(first).toEqual({ auto: { mode: 'degraded', since: T0 + 1000, reason: down.reason }, change: down.detail })
    const second = nextAutoMode(first.auto, input({ now: T0 + 2000, down: { ...down, reason: 'node a:1 down (timeout)' }, allUpSince: undefined }))
    expect(second).toEqual({ auto: { mode: 'degraded', since: T0 + 1000, reason: 'node a:1 down (timeout)' }, change: undefined })
  })

  it('stays degraded until every node has been up for settleMs', () => {
    const settling = nextAutoMode(degraded, input({ now: T0 + 34_999 }))
    expect(settling.auto).toEqual({ ...degraded, reason: `settling: all nodes up since ${new Date(T0 + 5_000).toISOString()}` })
    expect(settling.change).toBeUndefined()
    const settled = nextAutoMode(degraded, input({ now: T0 + 35_000 }))
    expect(settled.auto).toEqual({ mode: 'normal', since: T0 + 35_000, reason: 'settled' })
    expect(settled.change).toBe('settled: all nodes up for 30s, 0 requests in the last 5s')
  })

  it('stays degraded after settleMs while the hit ratio is below hitRatioRecovery of the baseline', () => {
    const low = nextAutoMode(degraded, input({ traffic: history(90, 80) }))
    expect(low.auto).toEqual({ ...degraded, reason: 'settling: hit ratio 0.80 (baseline 0.90, need 0.81)' })
    const back = nextAutoMode(degraded, input({ traffic: history(90, 81) }))
    expect(back.auto.mode).toBe('normal')
  })

  it('keeps normal while every node is up', () => {
    const normal: AutoMode = { mode: 'normal', since: T0, reason: 'all nodes up' }
    expect(nextAutoMode(normal, input({ traffic: history(90, 10) }))).toEqual({ auto: normal, change: undefined })
  })
})

describe('hitRatioRecovered', () => {
  it('counts a quiet farm as recovered', () => {
    expect(hitRatioRecovered(history(90, 0), 0.9, 200)).toEqual({ recovered: true, detail: '100 requests in the last 5s' })
  })

  it('needs a ratio of 0.5 without a baseline', () => {
    expect(hitRatioRecovered(history(undefined, 49), 0.9, 20)).toEqual({ recovered: false, detail: 'hit ratio 0.49 (no baseline, need 0.5)' })
    expect(hitRatioRecovered(history(undefined, 50), 0.9, 20).recovered).toBe(true)
  })
})

describe('recordCounters', () => {
  it('records the delta between two reads, and learns the baseline only when told to', () => {
    const first = recordCounters(empty, { hits: 10, misses: 10 }, T0, true)
    expect(first).toEqual({ last: { hits: 10, misses: 10 }, recent: [], normal: [] })
    const learning = recordCounters(first, { hits: 19, misses: 11 }, T0 + 1000, true)
    expect(learning.recent).toEqual([{ at: T0 + 1000, hits: 9, misses: 1 }])
    expect(learning.normal).toEqual(learning.recent)
    const incident = recordCounters(learning, { hits: 20, misses: 20 }, T0 + 2000, false)
    expect(incident.recent).toHaveLength(2)
    expect(incident.normal).toEqual(learning.normal)
  })

  it('reads a counter that went down as a reset, not as traffic, and drops windows older than the recovery window', () => {
    const before: TrafficHistory = { last: { hits: 100, misses: 10 }, recent: [{ at: T0, hits: 5, misses: 5 }], normal: [] }
    const reset = recordCounters(before, { hits: 3, misses: 12 }, T0 + RECOVERY_WINDOW_MS, true)
    expect(reset).toEqual({ last: { hits: 3, misses: 12 }, recent: [], normal: [] })
  })

  it('parses counters as memcached stores them', () => {
    expect(parseCounter(undefined)).toBe(0)
    expect(parseCounter(Buffer.from('42 '))).toBe(42)
    expect(parseCounter(Buffer.from('x'))).toBeUndefined()
  })
})
