import { describe, expect, it } from 'vitest'
import { decodeEntry, decodeRows, encodeEntry, encodeRows } from '../src/cache/codec.js'
import {
  farmCounterKeys,
  hotStatisticsKey,
  lockKey,
  modeOverrideKey,
  namespaceGenerationKey,
  queryKey,
  tableGenerationKey,
  tagGenerationKey,
  tierStateKey,
  validateNamespace,
} from '../src/keys.js'

const memcachedSafe = /^[\x21-\x7e]{1,250}$/

describe('cache keys', () => {
  it('tell null, undefined and the string "null" apart', () => {
    const keys = [[null], [undefined], ['null'], [0], ['0'], [0n], [false], []].map((p) => queryKey('ns', 'select $1', p, [], 'db'))
    expect(new Set(keys).size).toBe(keys.length)
  })

  it('count Dates by instant and Buffers by content', () => {
    const instant = Date.UTC(2024, 0, 2, 3, 4, 5)
    expect(queryKey('ns', 's', [new Date(instant)], [], 'db')).toBe(queryKey('ns', 's', [new Date(instant)], [], 'db'))
    expect(queryKey('ns', 's', [new Date(instant)], [], 'db')).not.toBe(queryKey('ns', 's', [new Date(instant + 1)], [], 'db'))
    expect(queryKey('ns', 's', [Buffer.from('ab')], [], 'db')).toBe(queryKey('ns', 's', [new Uint8Array([97, 98])], [], 'db'))
    expect(queryKey('ns', 's', [Buffer.from('ab')], [], 'db')).not.toBe(queryKey('ns', 's', [Buffer.from('ac')], [], 'db'))
  })

  it('do not let parameter boundaries collide', () => {
    expect(queryKey('ns', 's', ['a', 'bc'], [], 'db')).not.toBe(queryKey('ns', 's', ['ab', 'c'], [], 'db'))
    expect(queryKey('ns', 's', [['a', 'b']], [], 'db')).not.toBe(queryKey('ns', 's', ['a', 'b'], [], 'db'))
    expect(queryKey('ns', 's', [{ a: 1 }], [], 'db')).not.toBe(queryKey('ns', 's', [{ a: '1' }], [], 'db'))
  })

  it('depend on namespace, scope, SQL and tags, and are stable', () => {
    const key = queryKey('ns', 'select 1', [1], ['t'], 'db')
    expect(key).toBe(queryKey('ns', 'select 1', [1], ['t'], 'db'))
    expect(key).not.toBe(queryKey('other', 'select 1', [1], ['t'], 'db'))
    expect(key).not.toBe(queryKey('ns', 'select 2', [1], ['t'], 'db'))
    expect(key).not.toBe(queryKey('ns', 'select 1', [1], [], 'db'))
    expect(key).not.toBe(queryKey('ns', 'select 1', [1], ['t'], 'other db'))
    // Pinned: a change of derivation would orphan every cached entry of a running farm.
    expect(queryKey('ns', 'select 1', [1, 'a', null], [], 'db')).toMatchInlineSnapshot(`"ns:q:TgX71bWDGjXUvDyQaYC528wOZyrRRG7l4RUvdUGC8RM"`)
  })

  it('stay within 250 bytes without spaces or control characters, whatever the SQL and names', () => {
    const sql = `select * from "weird table\n\t" where x = ${'y'.repeat(10_000)}`
    for (const key of [
      queryKey('a-namespace.of_64.chars'.padEnd(64, 'x'), sql, ['\u0000 \r\n'], ['tag with spaces'], 'db'),
      tableGenerationKey('ns', 'public.weird table\n'),
      tableGenerationKey('ns', 'x'.repeat(1000)),
      tagGenerationKey('ns', 'person:1 \u0001'),
    ]) {
      expect(key).toMatch(memcachedSafe)
    }
    expect(tableGenerationKey('ns', 'public.person')).toBe('ns:g:t:public.person')
  })

  it('pin every shared key a running farm already reads, each distinct', () => {
    const { hits, misses } = farmCounterKeys('ns')
    const query = queryKey('ns', 'select 1', [], [], 'db')
    const keys = [
      tierStateKey('ns'),
      modeOverrideKey('ns'),
      hits,
      misses,
      hotStatisticsKey('ns'),
      namespaceGenerationKey('ns'),
      lockKey(query),
    ]
    // Pinned: processes of an older release read these while a new one rolls out.
    expect(keys).toEqual(['ns:tier:state', 'ns:tier:override', 'ns:tier:hits', 'ns:tier:misses', 'ns:hot', 'ns:g:*', `safe-${query}`])
    expect(new Set(keys).size).toBe(keys.length)
  })

  it('reject a namespace memcached could not carry', () => {
    expect(() => validateNamespace('has space')).toThrow(TypeError)
    expect(() => validateNamespace('')).toThrow(/namespace must be 1 to 64 characters/)
    expect(() => validateNamespace(42)).toThrow(/got 42/)
  })
})

describe('entry codec', () => {
  it('round-trips what pg returns: Date, bigint, Buffer, numeric strings, null vs undefined, nested JSON', () => {
    const rows = [
      { d: new Date(1), b: 2n ** 70n, buf: Buffer.from([1, 2]), u8: new Uint8Array([3]), n: '12.30', nul: null, und: undefined, j: { a: [1, { b: null }] } },
    ]
    const back = decodeRows(encodeRows(rows))
    expect(back).toEqual(rows)
    const row = back[0] as Record<string, unknown>
    expect(Buffer.isBuffer(row.buf)).toBe(true)
    expect(row.u8).toBeInstanceOf(Uint8Array)
    expect(Buffer.isBuffer(row.u8)).toBe(false)
    expect('und' in row).toBe(true)
    expect(row.nul).toBeNull()
  })

  it('keeps the generations next to the rows and refuses anything else', () => {
    const entry = decodeEntry(encodeEntry(['17', '42'], encodeRows([{ a: 1 }])))
    expect(entry?.generations).toEqual(['17', '42'])
    expect(decodeRows(entry!.rows)).toEqual([{ a: 1 }])
    expect(decodeEntry(Buffer.from('garbage'))).toBeUndefined()
    expect(decodeEntry(Buffer.from('k2\n1\n[]'))).toBeUndefined()
  })
})
