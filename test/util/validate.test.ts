import { describe, expect, it } from 'vitest'
import {
  delayMs,
  describe as describeValue,
  MAX_TIMER_MS,
  positiveInteger,
  positiveNumber,
  rejectUnknown,
  requireOptionsObject,
  tagList,
  THIRTY_DAYS_SECONDS,
  ttlSeconds,
  wholeSeconds,
} from '../../src/util/validate.js'

describe('validate', () => {
  it('describes bad values so a reader can tell them apart', () => {
    expect(describeValue('5')).toBe('"5"')
    expect(describeValue(5)).toBe('5')
    expect(describeValue(NaN)).toBe('NaN')
    expect(describeValue(-0)).toBe('-0')
    expect(describeValue(5n)).toBe('5n')
    expect(describeValue(undefined)).toBe('undefined')
    expect(describeValue(function named() {})).toBe('function named')
    expect(describeValue('x'.repeat(200))).toHaveLength(80)
  })

  it('rejects a non-object options argument, naming whose options', () => {
    expect(() => requireOptionsObject('big', 'MemoryStore')).toThrow(new TypeError('MemoryStore options must be an object, got "big"'))
    expect(() => requireOptionsObject([], 'MemoryStore')).toThrow(TypeError)
    expect(() => requireOptionsObject(null, 'MemoryStore')).toThrow(TypeError)
    const options = { a: 1 }
    expect(requireOptionsObject(options, 'x')).toBe(options)
  })

  it('names the unknown option and lists the known ones', () => {
    expect(() => rejectUnknown({ maxEntries: 1, maxSize: 10 }, ['maxEntries', 'maxBytes'], 'MemoryStore')).toThrow(
      new TypeError('unknown option "maxSize" for MemoryStore; known options: maxEntries, maxBytes'),
    )
    expect(() => rejectUnknown({ maxEntries: 1 }, ['maxEntries', 'maxBytes'], 'MemoryStore')).not.toThrow()
  })

  it('checks numbers and names the option and the bad value', () => {
    expect(() => positiveInteger(1.5, 'capacity')).toThrow(new RangeError('capacity must be a positive integer, got 1.5'))
    expect(positiveInteger(3, 'capacity')).toBe(3)
    expect(() => positiveNumber(-1, 'halfLifeMs', 'milliseconds')).toThrow(
      new RangeError('halfLifeMs must be a positive finite number of milliseconds, got -1'),
    )
    expect(positiveNumber(0.5, 'halfLifeMs', 'milliseconds')).toBe(0.5)
  })

  it('takes delays a Node.js timer can wait, and no longer', () => {
    expect(delayMs(MAX_TIMER_MS, 'intervalMs')).toBe(2 ** 31 - 1)
    expect(() => delayMs(MAX_TIMER_MS + 1, 'intervalMs')).toThrow(
      new RangeError('intervalMs must be a positive number of milliseconds, at most 2147483647, got 2147483648'),
    )
    expect(() => delayMs(0, 'intervalMs')).toThrow(RangeError)
  })

  it('takes TTLs memcached reads as relative, rounding fractions up', () => {
    expect(ttlSeconds(1.2, 'ttl')).toBe(2)
    expect(ttlSeconds(0, 'ttl')).toBe(0)
    expect(ttlSeconds(THIRTY_DAYS_SECONDS, 'ttl')).toBe(2_592_000)
    expect(() => ttlSeconds(THIRTY_DAYS_SECONDS + 1, 'ttl')).toThrow(
      new RangeError('ttl must be a finite number of seconds between 0 and 2592000 (30 days), got 2592001'),
    )
    expect(() => wholeSeconds(0, 'fallbackTtl')).toThrow(new RangeError('fallbackTtl must be a whole number of seconds from 1 to 2592000, got 0'))
    expect(() => wholeSeconds(1, 'lockTtl', 2)).toThrow(/from 2 to 2592000, got 1$/)
    expect(wholeSeconds(2, 'lockTtl', 2)).toBe(2)
  })

  it('takes tags as non-empty strings, naming the bad one by index', () => {
    expect(() => tagList('users', 'tags')).toThrow(new TypeError('tags must be an array of non-empty strings, got "users"'))
    expect(() => tagList(['users', ''], 'tags')).toThrow(new TypeError('tags[1] must be a non-empty string, got ""'))
    expect(tagList(['users'], 'tags')).toEqual(['users'])
  })
})
