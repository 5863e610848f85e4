import { describe, expect, it } from 'vitest'
import { createQueryCache, MemcachedStore, MemoryStore } from '../../src/index.js'

// Validation throws before any connection opens: no memcached needed at this address.
const servers = ['127.0.0.1:11211']

describe('createQueryCache options', () => {
  it('takes a secret and SASL credentials only where they mean something, and never shows them', async () => {
    const secret = 'a secret of more than sixteen bytes'
    expect(() => createQueryCache({ secret })).toThrow(/secret applies to a store other processes share .* this store is in-process/)
    expect(() => createQueryCache({ store: new MemoryStore(), secret })).toThrow(/this store is in-process/)
    const built = new MemcachedStore({ servers })
    try {
      expect(() => createQueryCache({ store: built, secret })).toThrow(/give it to new MemcachedStore\(\{ secret \}\)/)
    } finally {
      await built.close()
    }
    expect(() => createQueryCache({ sasl: { username: 'app', password: 'pw-1234' } })).toThrow(/sasl applies to memcached servers only/)
    for (const attempt of [
      () => createQueryCache({ servers, secret: 'short secret' }),
      () => createQueryCache({ servers, secrets: [secret, 'short secret'] }),
      () => createQueryCache({ servers, sasl: { username: 'app', password: 'pw\u0000-1234' } }),
    ]) {
      expect(attempt).toThrow()
      try {
        attempt()
      } catch (error) {
        expect((error as Error).message).not.toMatch(/short secret|pw.-1234/)
      }
    }
  })

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
