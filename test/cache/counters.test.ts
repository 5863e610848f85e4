import { describe, expect, it } from 'vitest'
import { CacheCounters } from '../../src/cache/counters.js'
import { lookup } from '../../src/cache/lookup.js'

describe('CacheCounters', () => {
  it('records each event in its own counter, and a lock wait adds its milliseconds', () => {
    const counters = new CacheCounters()
    counters.hit()
    counters.hit()
    counters.miss()
    counters.lockWaited(12.5)
    counters.lockWaited(7.5)
    counters.modeChanged()
    expect(counters.snapshot()).toMatchObject({ hits: 2, misses: 1, lockWaited: 2, lockWaitMs: 20, modeTransitions: 1, errors: 0 })
    expect([counters.hits, counters.misses]).toEqual([2, 1])
  })

  it('hands out snapshots that later events do not change', () => {
    const counters = new CacheCounters()
    const before = counters.snapshot()
    counters.failed()
    expect(before.errors).toBe(0)
    expect(counters.snapshot().errors).toBe(1)
  })
})

describe('lookup', () => {
  it('tells a value found, a value absent and a failed read apart, reporting the failure', async () => {
    const failures: unknown[] = []
    const store = {
      get: async (key: string): Promise<Buffer | undefined> => {
        if (key === 'broken') throw new Error('refused')
        return key === 'present' ? Buffer.from('v') : undefined
      },
    }
    expect(await lookup(store, 'present')).toEqual({ kind: 'found', value: Buffer.from('v') })
    expect(await lookup(store, 'missing')).toEqual({ kind: 'absent' })
    expect(await lookup(store, 'broken', (error) => failures.push(error))).toEqual({ kind: 'failed' })
    expect(failures).toHaveLength(1)
  })
})
