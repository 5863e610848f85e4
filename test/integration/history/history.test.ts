import { describe, expect, it } from 'vitest'
import { checkHistory, formatReport } from './check.js'
import type { HistoryEvent, ReadEvent, WriteEvent } from './events.js'
import { runHistory } from './run.js'

const write = (id: number, value: number, start: number, end: number, extra: Partial<WriteEvent> = {}): WriteEvent => ({
  type: 'write', process: 'w', id, value, how: 'update', start, end, ok: true, unrecorded: false, rolledBack: false, ...extra,
})
const read = (rows: Array<[number, number]>, start: number, end: number): ReadEvent => ({
  type: 'read', process: 'r', query: 'row', start, end, ok: true, rows,
})
const phase = (name: string, at: number, fault = false): HistoryEvent => ({ type: 'phase', name, fault, at })

describe('the history checker', () => {
  it('reports a read that started after a newer write returned, with the write and the phase', () => {
    const report = checkHistory([phase('steady', 0), phase('pause a node', 100, true), write(1, 1, 10, 20), write(1, 2, 110, 120), read([[1, 1]], 130, 140), phase('end', 200)])
    expect(report.violations).toHaveLength(1)
    expect(report.violations[0]).toMatchObject({ id: 1, got: 1, expectedAtLeast: 2, phase: 'pause a node', reason: 'stale' })
    expect(formatReport(report)).toMatch(/VIOLATION \(stale\) in phase pause a node: r row read row 1 = 1 .* had written 2 \(update\)/)
  })

  it('accepts old values for reads that overlap the write, and values newer than required', () => {
    const report = checkHistory([phase('steady', 0), write(1, 1, 10, 20), write(1, 2, 30, 50), read([[1, 1]], 40, 60), read([[1, 2]], 21, 25), phase('end', 100)])
    expect(report.violations).toEqual([])
  })

  it('does not require writes that failed or whose invalidation the writer was told failed', () => {
    const report = checkHistory([phase('steady', 0), write(1, 1, 10, 20), write(1, 2, 30, 40, { ok: false, error: 'boom' }), write(1, 3, 50, 60, { unrecorded: true }), read([[1, 1]], 70, 80), phase('end', 100)])
    expect(report.violations).toEqual([])
    expect(report.failedQueries).toBe(1)
    expect(report.unrecordedWrites).toBe(1)
  })

  it('reports a read of a value that was rolled back', () => {
    const report = checkHistory([phase('steady', 0), write(1, -5, 10, 20, { rolledBack: true }), read([[1, -5]], 30, 40), phase('end', 100)])
    expect(report.violations).toMatchObject([{ reason: 'never committed', got: -5 }])
  })

  it('measures the hit ratio from database executions counted below the cache', () => {
    const report = checkHistory([
      phase('steady', 0),
      read([[1, 0]], 1, 2), read([[1, 0]], 3, 4), read([[1, 0]], 5, 6), read([[1, 0]], 7, 8),
      { type: 'execution', process: 'r', at: 1 },
      phase('end', 10),
    ])
    expect(report.phases[0]!.hitRatio).toBe(0.75)
  })
})

describe('history under faults', () => {
  // Short form of `npm run check:history`: six processes, four memcached nodes, the monitor,
  // a node killed, a node paused, every node restarted, the monitor killed, no monitor.
  it('no read returns a row older than a write that returned before it started, and the cache does its work', { timeout: 150_000 }, async () => {
    // With the near cache, early refresh and jitter on, as they are by default, and a short TTL
    // with swr, so results are refreshed early and served stale (by time) throughout: all must obey the rule.
    // Every value is signed (the workers' secret) and half the reads go through cacheAll (worker.ts).
    const { report } = await runHistory({
      durationMs: 45_000,
      cacheOptions: { nearCache: { trustMs: 0 }, earlyRefresh: { beta: 1 } },
      cachedOptions: { ttl: 2, swr: 5 },
    })
    const text = formatReport(report)
    expect(report.violations, text).toEqual([])
    expect(report.failedQueries, text).toBe(0)
    for (const each of report.phases) {
      expect(each.reads, `${each.name}\n${text}`).toBeGreaterThan(50)
      expect(each.writes, `${each.name}\n${text}`).toBeGreaterThan(5)
      if (!each.fault) expect(each.hitRatio, `${each.name}\n${text}`).toBeGreaterThan(0.5)
    }
  })
})
