import { describe, expect, it } from 'vitest'
import { hotQueriesOf } from '../../src/statistics/hot-query-score.js'
import type { QueryShape } from '../../src/statistics/query-shape.js'
import { QueryStatistics } from '../../src/statistics/query-statistics.js'
import { validateSnapshot } from '../../src/statistics/statistics-snapshot.js'
import type { StatisticsSnapshot } from '../../src/statistics/statistics-snapshot.js'

const HALF_LIFE = 60_000

function shapeOf(key: string, parameters: unknown[] = []): QueryShape {
  return { key, sql: `select * from "t" where "k" = $1 -- ${key}`, parameters, tables: ['public.t'], tags: [], ttl: 60 }
}

/** A clock the test moves by hand. */
function clock(start = Date.UTC(2024, 0, 1)): { now: () => number; advance: (ms: number) => void } {
  let time = start
  return { now: () => time, advance: (ms) => (time += ms) }
}

function byKey(statistics: QueryStatistics, key: string) {
  return statistics.top(statistics.size).find((query) => query.key === key)
}

describe('QueryStatistics', () => {
  it('ranks a rare expensive query above a frequent cheap one by requests × mean database time', () => {
    const time = clock()
    const statistics = new QueryStatistics({ halfLifeMs: 10 * 60_000, now: time.now })
    // One minute of traffic: 100 requests/s of a 1 ms query, 1 request/s of a 500 ms one (all misses).
    for (let second = 0; second < 60; second++) {
      for (let i = 0; i < 100; i++) {
        statistics.record('cheap', () => shapeOf('cheap'), 'miss', 1)
        time.advance(10)
      }
      statistics.record('expensive', () => shapeOf('expensive'), 'miss', 500)
    }
    const [first, second] = statistics.top(2)
    expect(first?.key).toBe('expensive')
    expect(second?.key).toBe('cheap')
    // Requests favour the cheap one; the score does not.
    expect(second!.requests).toBeGreaterThan(first!.requests * 50)
    expect(first!.meanDatabaseMs).toBeCloseTo(500, 6)
    expect(second!.meanDatabaseMs).toBeCloseTo(1, 6)
    expect(first!.score).toBeCloseTo(first!.requests * 500, 6)
    expect(first!.score).toBeGreaterThan(second!.score * 4)
  })

  it('stays within capacity under 100 000 distinct shapes and keeps the heavy hitters', () => {
    const time = clock()
    const capacity = 1000
    const statistics = new QueryStatistics({ capacity, now: time.now })
    const heavy = ['h0', 'h1', 'h2', 'h3', 'h4']
    const described = new Map<string, number>()
    const describeOnce = (key: string) => () => {
      described.set(key, (described.get(key) ?? 0) + 1)
      return shapeOf(key)
    }
    let largest = 0
    for (let i = 0; i < 100_000; i++) {
      statistics.record(`d${i}`, describeOnce(`d${i}`), 'miss', 1)
      if (i % 50 === 0) {
        const key = heavy[(i / 50) % heavy.length]!
        statistics.record(key, describeOnce(key), 'hit')
      }
      largest = Math.max(largest, statistics.size)
    }
    expect(largest).toBe(capacity)
    // 2000 heavy records, 400 each: far above N / capacity = 102, so space-saving guarantees them.
    const ranked = [...statistics.top(capacity)].sort((a, b) => b.requests - a.requests)
    expect(new Set(ranked.slice(0, heavy.length).map((query) => query.key))).toEqual(new Set(heavy))
    for (const key of heavy) {
      const query = byKey(statistics, key)!
      expect(query.requests).toBeGreaterThanOrEqual(400)
      expect(query.requests - query.error).toBeLessThanOrEqual(400)
      // Tracked from their first request on: described once, never again.
      expect(described.get(key)).toBe(1)
    }
    // describe() ran once per newly tracked key, never for a tracked one.
    expect([...described.values()].every((count) => count === 1)).toBe(true)
    statistics.record('h0', () => {
      throw new Error('describe() called for a tracked key')
    }, 'hit')
  })

  it('halves counts after a half-life (lazily, across many renormalisations)', () => {
    const time = clock()
    const statistics = new QueryStatistics({ halfLifeMs: HALF_LIFE, now: time.now })
    for (let i = 0; i < 8; i++) statistics.record('k', () => shapeOf('k'), i < 4 ? 'hit' : 'miss', 10)
    expect(byKey(statistics, 'k')).toMatchObject({ requests: 8, hits: 4, misses: 4, totalDatabaseMs: 40 })
    time.advance(HALF_LIFE)
    const halved = byKey(statistics, 'k')!
    expect(halved.requests).toBeCloseTo(4, 9)
    expect(halved.hits).toBeCloseTo(2, 9)
    expect(halved.totalDatabaseMs).toBeCloseTo(20, 9)
    expect(halved.meanDatabaseMs).toBeCloseTo(10, 9)
    time.advance(HALF_LIFE)
    expect(byKey(statistics, 'k')!.requests).toBeCloseTo(2, 9)
    // A new request counts in full.
    statistics.record('k', () => shapeOf('k'), 'hit')
    expect(byKey(statistics, 'k')!.requests).toBeCloseTo(3, 9)

    // One request per half-life for 200 half-lives (several epoch moves): the sum converges to 2.
    const steady = new QueryStatistics({ halfLifeMs: HALF_LIFE, now: time.now })
    for (let i = 0; i < 200; i++) {
      steady.record('s', () => shapeOf('s'), 'miss', 5)
      time.advance(HALF_LIFE)
    }
    const converged = byKey(steady, 's')!
    expect(converged.requests).toBeCloseTo(1, 9) // 2 - 1, read one half-life after the last request
    expect(converged.meanDatabaseMs).toBeCloseTo(5, 9)
    expect(Number.isFinite(converged.score)).toBe(true)
  })

  it('keeps hits, misses and the mean database time of timed misses', () => {
    const statistics = new QueryStatistics({ now: clock().now })
    const shape = () => shapeOf('k', [1, new Date(0)])
    statistics.record('k', shape, 'hit')
    statistics.record('k', shape, 'miss', 10)
    statistics.record('k', shape, 'miss', 30)
    statistics.record('k', shape, 'miss') // untimed (joined another's query)
    statistics.record('k', shape, 'miss', Number.NaN) // a broken timer does not poison the mean
    statistics.record('k', shape, 'hit', 999) // a hit costs the database nothing
    const query = byKey(statistics, 'k')!
    expect(query).toMatchObject({ requests: 6, error: 0, hits: 2, misses: 4, meanDatabaseMs: 20, totalDatabaseMs: 40, score: 120 })
    expect(query.parameters).toEqual([1, new Date(0)])
    expect(query.tables).toEqual(['public.t'])
  })

  it('records nothing when describe() throws', () => {
    const statistics = new QueryStatistics({ now: clock().now })
    expect(() =>
      statistics.record('k', () => {
        throw new Error('boom')
      }, 'hit'),
    ).toThrow('boom')
    expect(statistics.size).toBe(0)
  })

  it('merges snapshots: counts summed after decaying both to now, through JSON', () => {
    const time = clock()
    const a = new QueryStatistics({ halfLifeMs: HALF_LIFE, now: time.now })
    const b = new QueryStatistics({ halfLifeMs: HALF_LIFE, now: time.now })
    const parameters = [new Date(1), 2n ** 70n, Buffer.from('bytea')]
    for (let i = 0; i < 3; i++) a.record('shared', () => shapeOf('shared'), 'hit')
    a.record('onlyA', () => shapeOf('onlyA'), 'miss', 4)
    for (let i = 0; i < 2; i++) b.record('shared', () => shapeOf('shared'), 'miss', 10)
    for (let i = 0; i < 4; i++) b.record('onlyB', () => shapeOf('onlyB', parameters), 'miss', 8)

    const fromB = JSON.parse(JSON.stringify(b.snapshot())) as StatisticsSnapshot
    time.advance(HALF_LIFE) // b's counts arrive one half-life old, as do a's own
    a.merge(fromB)

    expect(a.size).toBe(3)
    const shared = byKey(a, 'shared')!
    expect(shared.requests).toBeCloseTo(2.5, 9)
    expect(shared.hits).toBeCloseTo(1.5, 9)
    expect(shared.misses).toBeCloseTo(1, 9)
    expect(shared.meanDatabaseMs).toBeCloseTo(10, 9)
    const onlyB = byKey(a, 'onlyB')!
    expect(onlyB.requests).toBeCloseTo(2, 9)
    expect(onlyB.parameters).toEqual(parameters)
    expect(Buffer.isBuffer(onlyB.parameters[2])).toBe(true)
    expect(byKey(a, 'onlyA')!.requests).toBeCloseTo(0.5, 9)

    // Further records go on from the merged counts.
    a.record('onlyB', () => shapeOf('onlyB'), 'hit')
    expect(byKey(a, 'onlyB')!.requests).toBeCloseTo(3, 9)
  })

  it('keeps the highest counts when a merge overflows capacity', () => {
    const time = clock()
    const small = new QueryStatistics({ capacity: 3, now: time.now })
    const other = new QueryStatistics({ now: time.now })
    for (const [key, count] of [['a', 5], ['b', 1], ['c', 3]] as const) {
      for (let i = 0; i < count; i++) small.record(key, () => shapeOf(key), 'hit')
    }
    for (const [key, count] of [['d', 4], ['e', 2]] as const) {
      for (let i = 0; i < count; i++) other.record(key, () => shapeOf(key), 'hit')
    }
    small.merge(other.snapshot())
    expect(small.size).toBe(3)
    expect(small.top(3).map((query) => query.key).sort()).toEqual(['a', 'c', 'd'])
    // The heap is sound after the rebuild: the next new key evicts the minimum (c, 3).
    small.record('f', () => shapeOf('f'), 'hit')
    expect(byKey(small, 'c')).toBeUndefined()
    expect(byKey(small, 'f')).toMatchObject({ requests: 4, error: 3 })
  })

  it('rejects a malformed snapshot, naming the field, and merges nothing', () => {
    const statistics = new QueryStatistics({ now: clock().now })
    const good = new QueryStatistics({ now: clock().now })
    good.record('k', () => shapeOf('k'), 'hit')
    const snapshot = good.snapshot()
    const bad = { ...snapshot, entries: [{ ...snapshot.entries[0]!, requests: -1 }] }
    expect(() => statistics.merge(bad)).toThrow('snapshot.entries[0].requests must be a finite number >= 0, got -1')
    expect(() => statistics.merge({ ...snapshot, version: 2 } as unknown as StatisticsSnapshot)).toThrow(
      'snapshot.version must be 1, got 2',
    )
    const garbled = { ...snapshot, entries: [...snapshot.entries, { ...snapshot.entries[0]!, key: 'x', parameters: '{not json' }] }
    expect(() => statistics.merge(garbled)).toThrow('snapshot.entries[1].parameters must be superjson text')
    expect(statistics.size).toBe(0)
    expect(() => validateSnapshot(null, 'doc')).toThrow('doc must be an object, got null')
  })

  it('turns a saved snapshot back into a ranked list', () => {
    const time = clock()
    const statistics = new QueryStatistics({ halfLifeMs: HALF_LIFE, now: time.now })
    statistics.record('cheap', () => shapeOf('cheap'), 'miss', 1)
    statistics.record('dear', () => shapeOf('dear'), 'miss', 100)
    const hot = hotQueriesOf(statistics.snapshot(), { now: time.now() + HALF_LIFE })
    expect(hot.map((query) => query.key)).toEqual(['dear', 'cheap'])
    expect(hot[0]!.requests).toBeCloseTo(0.5, 9)
  })

  it('validates its options', () => {
    expect(() => new QueryStatistics({ capacity: 0 })).toThrow('capacity must be a positive integer, got 0')
    expect(() => new QueryStatistics({ halfLifeMs: -1 })).toThrow('halfLifeMs must be a positive finite number of milliseconds, got -1')
    expect(() => new QueryStatistics({ capasity: 3 } as never)).toThrow('unknown option "capasity"')
    expect(() => new QueryStatistics().top(-1)).toThrow('limit must be an integer of at least 0, got -1')
  })
})
