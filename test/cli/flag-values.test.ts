import { describe, expect, it } from 'vitest'
import { durationFlag, integerFlag, namespaceFlag, readTarget, timeoutFlag } from '../../src/cli/flag-values.js'
import { UsageError } from '../../src/cli/usage-error.js'
import { formatDuration, parseDuration } from '../../src/util/duration.js'

describe('parseDuration', () => {
  it('reads ms, s, m, h, d, combinations and plain milliseconds', () => {
    expect(parseDuration('250ms', '--x')).toBe(250)
    expect(parseDuration('1s', '--x')).toBe(1000)
    expect(parseDuration('30s', '--x')).toBe(30_000)
    expect(parseDuration('10m', '--x')).toBe(600_000)
    expect(parseDuration('1h', '--x')).toBe(3_600_000)
    expect(parseDuration('1m30s', '--x')).toBe(90_000)
    expect(parseDuration('1d', '--x')).toBe(86_400_000)
    expect(parseDuration('1d12h', '--x')).toBe(129_600_000)
    expect(parseDuration('1.5s', '--x')).toBe(1500)
    expect(parseDuration('1500', '--x')).toBe(1500)
    expect(parseDuration('0', '--settle', { allowZero: true })).toBe(0)
  })

  it('rejects anything else, naming the flag and the value', () => {
    for (const bad of ['', 'soon', '10 m', '-1s', '1w', 'd', '1s2', 'ms', '5mm']) {
      expect(() => parseDuration(bad, '--for')).toThrow(`--for must be a positive duration like 250ms, 1s, 30s, 10m, 1h or 1d (a plain number is milliseconds), got ${JSON.stringify(bad)}`)
    }
    expect(() => parseDuration('0s', '--interval')).toThrow(/--interval must be a positive duration/)
  })

  it('formats spans for people', () => {
    expect(formatDuration(192_000)).toBe('3m12s')
    expect(formatDuration(250)).toBe('250ms')
    expect(formatDuration(3_720_000)).toBe('1h2m')
    expect(formatDuration(600_000)).toBe('10m')
  })
})

describe('flag values', () => {
  /** The usage error `read` throws, or a failure when it throws none. */
  function usageErrorOf(read: () => unknown): UsageError {
    try {
      read()
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError)
      return error as UsageError
    }
    throw new Error('expected a usage error')
  }

  it('reads counts of digits only, quoting bad ones as typed', () => {
    expect(integerFlag('4', '--limit', 'export')).toBe(4)
    expect(integerFlag(' 007 ', '--limit', 'export')).toBe(7)
    expect(integerFlag('999999999', '--limit', 'export')).toBe(999_999_999)
    for (const bad of ['0', '000', '-1', '1.5', '1e3', '0x10', '', ' ', 'all', '1234567890']) {
      const error = usageErrorOf(() => integerFlag(bad, '--limit', 'export'))
      expect({ message: error.message, command: error.command }).toEqual({ message: `--limit must be a positive integer, got ${JSON.stringify(bad)}`, command: 'export' })
    }
  })

  it('reads durations and timeouts, zero only where allowed', () => {
    expect(durationFlag('1m30s', '--settle', 'monitor')).toBe(90_000)
    expect(durationFlag('0', '--settle', 'monitor', true)).toBe(0)
    expect(usageErrorOf(() => durationFlag('0', '--interval', 'monitor')).message).toMatch(/^--interval must be a positive duration .*got "0"$/)
    expect(timeoutFlag(undefined, 'status')).toBe(500)
    expect(timeoutFlag('2s', 'status')).toBe(2000)
    expect(usageErrorOf(() => timeoutFlag('soon', 'mode'))).toMatchObject({ command: 'mode', message: expect.stringMatching(/^--timeout must be a positive duration/) })
  })

  it('reads --servers and --namespace, the namespace defaulting to the library\'s', () => {
    expect(readTarget('status', { servers: '10.0.0.1:11211, 10.0.0.2:11211' })).toEqual({
      servers: [expect.objectContaining({ id: '10.0.0.1:11211' }), expect.objectContaining({ id: '10.0.0.2:11211' })],
      namespace: 'kysely',
    })
    expect(readTarget('status', { servers: '10.0.0.1:11211', namespace: 'shop' }).namespace).toBe('shop')
    expect(usageErrorOf(() => readTarget('mode', {})).message).toBe('--servers is required, e.g. --servers 10.0.0.1:11211,10.0.0.2:11211')
    expect(usageErrorOf(() => namespaceFlag('no spaces', 'warmup')).message).toMatch(/^--namespace must be .*, got "no spaces"$/)
  })
})
