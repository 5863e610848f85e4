import { describe, expect, it } from 'vitest'
import { parseServerAddress, parseServerList } from '../../src/store/memcached/server-address.js'

describe('parseServerAddress', () => {
  it('splits host and port and builds a canonical id', () => {
    expect(parseServerAddress('127.0.0.1:11211')).toEqual({ host: '127.0.0.1', port: 11211, id: '127.0.0.1:11211' })
    expect(parseServerAddress('cache-1.internal:1')).toEqual({ host: 'cache-1.internal', port: 1, id: 'cache-1.internal:1' })
    expect(parseServerAddress('Cache.Example.COM:65535')).toEqual({
      host: 'cache.example.com',
      port: 65535,
      id: 'cache.example.com:65535',
    })
  })

  it('reads IPv6 addresses in brackets and keeps the brackets only in the id', () => {
    expect(parseServerAddress('[::1]:11211')).toEqual({ host: '::1', port: 11211, id: '[::1]:11211' })
    expect(parseServerAddress('[FE80::1:2]:5')).toEqual({ host: 'fe80::1:2', port: 5, id: '[fe80::1:2]:5' })
  })

  it('throws a TypeError for entries that are not non-empty strings', () => {
    expect(() => parseServerAddress(42)).toThrow(new TypeError('servers must be a "host:port" string, got 42'))
    expect(() => parseServerAddress(undefined, 'servers[3]')).toThrow(
      new TypeError('servers[3] must be a "host:port" string, got undefined'),
    )
    expect(() => parseServerAddress(null)).toThrow(TypeError)
    expect(() => parseServerAddress({ host: 'a', port: 1 })).toThrow(/got \{"host":"a","port":1\}/)
    expect(() => parseServerAddress('')).toThrow(new TypeError('servers must be a non-empty "host:port" string, got ""'))
  })

  it('throws a TypeError naming the option and quoting the value for malformed entries', () => {
    expect(() => parseServerAddress('localhost', 'servers[1]')).toThrow(
      new TypeError('servers[1] must be "host:port", got "localhost"'),
    )
    for (const bad of [':11211', 'host:', 'host:abc', 'host:1.5', 'host:-1', ' host:1', 'host:1 ', 'a b:1', 'a_b:1', '-host:1', 'host:123456']) {
      expect(() => parseServerAddress(bad)).toThrow(TypeError)
      expect(() => parseServerAddress(bad)).toThrow(`servers must be "host:port", got ${JSON.stringify(bad)}`)
    }
  })

  it('asks for brackets around IPv6 addresses', () => {
    for (const bad of ['::1:11211', 'host::1', '[::1]', '[::1]11211', '[not-ipv6]:1', '[127.0.0.1]:1']) {
      expect(() => parseServerAddress(bad)).toThrow(TypeError)
    }
    expect(() => parseServerAddress('::1:11211')).toThrow('servers must be "host:port" (IPv6 as "[::1]:11211"), got "::1:11211"')
  })

  it('throws a RangeError for ports outside 1 to 65535', () => {
    expect(() => parseServerAddress('host:0', 'servers[0]')).toThrow(
      new RangeError('servers[0] port must be an integer from 1 to 65535, got "host:0"'),
    )
    expect(() => parseServerAddress('host:65536')).toThrow(RangeError)
    expect(() => parseServerAddress('[::1]:99999')).toThrow(RangeError)
  })
})

describe('parseServerList', () => {
  it('returns the parsed entries in order', () => {
    expect(parseServerList(['a:1', '[::1]:2'])).toEqual([
      { host: 'a', port: 1, id: 'a:1' },
      { host: '::1', port: 2, id: '[::1]:2' },
    ])
  })

  it('requires a non-empty array', () => {
    expect(() => parseServerList('a:1')).toThrow(new TypeError('servers must be an array of "host:port" strings, got "a:1"'))
    expect(() => parseServerList(undefined, 'memcached')).toThrow(
      new TypeError('memcached must be an array of "host:port" strings, got undefined'),
    )
    expect(() => parseServerList([])).toThrow(new RangeError('servers must list at least one "host:port", got []'))
  })

  it('names the index of a bad entry, holes of sparse arrays included', () => {
    expect(() => parseServerList(['a:1', 'localhost'])).toThrow(new TypeError('servers[1] must be "host:port", got "localhost"'))
    expect(() => parseServerList(['a:1', 'a:0'])).toThrow(/^servers\[1\] port must be/)
    // eslint-disable-next-line no-sparse-arrays
    expect(() => parseServerList([, 'a:1'])).toThrow(new TypeError('servers[0] must be a "host:port" string, got undefined'))
  })

  it('rejects duplicates, however the host name is cased', () => {
    expect(() => parseServerList(['a:1', 'b:1', 'A:1'])).toThrow(
      new TypeError('servers[2] repeats servers[0] ("a:1"), got "A:1"'),
    )
    expect(() => parseServerList(['[::1]:1', '[::1]:1'])).toThrow(/servers\[1\] repeats servers\[0\]/)
  })
})
