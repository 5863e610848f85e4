import { describe, expect, it } from 'vitest'
import { createQueryCache } from '../../src/index.js'

// Validation throws before any connection opens: no memcached needed at this address.
const servers = ['127.0.0.1:11211']

describe('createQueryCache options', () => {
  it('names fallbackTtl, as the caller wrote it, when it is beyond 30 days', () => {
    expect(() => createQueryCache({ servers, fallbackTtl: 3_000_000 })).toThrow(
      new RangeError('fallbackTtl must be a whole number of seconds from 1 to 2592000, got 3000000'),
    )
  })

  it('names statistics options under statistics, not as the classes behind them call them', () => {
    expect(() => createQueryCache({ statistics: { shareEveryMs: -1 } })).toThrow(
      new RangeError('statistics.shareEveryMs must be a positive number of milliseconds, at most 2147483647, got -1'),
    )
    expect(() => createQueryCache({ statistics: { farmCapacity: 0 } })).toThrow(
      new RangeError('statistics.farmCapacity must be a positive integer, got 0'),
    )
    expect(() => createQueryCache({ statistics: { capacity: 0 } })).toThrow(/^statistics\.capacity must be a positive integer, got 0$/)
  })

  it('rejects unknown options, nested ones included, listing the known ones', () => {
    expect(() => createQueryCache({ timeOut: 5 } as never)).toThrow(/^unknown option "timeOut" for createQueryCache; known options: servers, store, /)
    expect(() => createQueryCache({ statistics: { sharEveryMs: 5 } } as never)).toThrow(
      new TypeError('unknown option "sharEveryMs" for statistics; known options: capacity, halfLifeMs, shareEveryMs, farmCapacity'),
    )
    expect(() => createQueryCache({ memory: { maxEntry: 5 } } as never)).toThrow(
      new TypeError('unknown option "maxEntry" for memory; known options: maxEntries, maxBytes'),
    )
  })
})
