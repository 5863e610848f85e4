/**
 * The frame every shared value carries: pure computation, so no services needed.
 */
import { describe, expect, it } from 'vitest'
import { ValueSigner } from '../../src/store/value-signer.js'
import { signingSecrets } from '../../src/util/validate.js'

const current = Buffer.from('the current secret, 32 bytes!!!!')
const previous = Buffer.from('the previous secret, also long')
const rows = Buffer.from('encoded rows')

describe('ValueSigner with a secret', () => {
  const signer = new ValueSigner([current])

  it('opens what it sealed, under the same key only', () => {
    const framed = signer.seal('app:q:1', rows)
    expect(framed.length).toBe(rows.length + signer.overhead)
    expect(signer.open('app:q:1', framed)).toEqual(rows)
    expect(signer.open('app:q:2', framed)).toBe('bad-signature')
  })

  it('refuses a changed byte anywhere: header, tag or value', () => {
    const framed = signer.seal('app:q:1', rows)
    for (let i = 0; i < framed.length; i++) {
      const changed = Buffer.from(framed)
      changed[i]! ^= 0x01
      expect(signer.open('app:q:1', changed)).not.toBeInstanceOf(Buffer)
    }
  })

  it('refuses values of another secret, unsigned values and garbage', () => {
    const other = new ValueSigner([Buffer.from('someone else entirely, 32 bytes.')])
    expect(signer.open('k', other.seal('k', rows))).toBe('unknown-secret')
    expect(signer.open('k', new ValueSigner().seal('k', rows))).toBe('unknown-secret')
    expect(signer.open('k', rows)).toBe('unframed')
    expect(signer.open('k', Buffer.alloc(0))).toBe('unframed')
    expect(signer.open('k', Buffer.from([0x02, 1, 2]))).toBe('unframed')
  })

  it('accepts a previous secret during a rotation and signs with the current one', () => {
    const old = new ValueSigner([previous])
    const rotating = new ValueSigner([current, previous])
    expect(rotating.open('k', old.seal('k', rows))).toEqual(rows)
    // What the rotating process writes, a process that knows only the old secret cannot read: roll out both first.
    expect(old.open('k', rotating.seal('k', rows))).toBe('unknown-secret')
    expect(new ValueSigner([previous, current]).open('k', rotating.seal('k', rows))).toEqual(rows)
  })
})

describe('ValueSigner without a secret', () => {
  const signer = new ValueSigner()

  it('binds a value to its key, so a value copied under another key is caught', () => {
    const framed = signer.seal('app:q:1', rows)
    expect(signer.open('app:q:1', framed)).toEqual(rows)
    expect(signer.open('app:q:2', framed)).toBe('wrong-key')
    expect(signer.open('app:q:1', rows)).toBe('unframed')
  })

  it('does not read signed values (a farm half configured is a miss, never a misread)', () => {
    expect(signer.open('k', new ValueSigner([current]).seal('k', rows))).toBe('unknown-secret')
  })
})

describe('signingSecrets', () => {
  it('takes one secret or a rotation list, current first', () => {
    expect(signingSecrets('a secret of 16 b', undefined)).toEqual([Buffer.from('a secret of 16 b')])
    expect(signingSecrets(undefined, [current, previous])).toEqual([current, previous])
    expect(signingSecrets(undefined, undefined)).toEqual([])
  })

  it('refuses short, empty, mixed or odd secrets without showing them', () => {
    const attempts: Array<[unknown, unknown, RegExp]> = [
      ['too short', undefined, /secret must be at least 16 bytes \(got 9; value not shown\)/],
      [undefined, [], /secrets must be a non-empty array/],
      ['a secret of 16 b', [current], /either secret or secrets/],
      [undefined, [current, 12345], /secrets\[1\] must be a string or a Buffer, got "number"/],
      [undefined, [current, 'shortish'], /secrets\[1\] must be at least 16 bytes/],
    ]
    for (const [secret, secrets, message] of attempts) {
      let error: Error | undefined
      try {
        signingSecrets(secret, secrets)
      } catch (caught) {
        error = caught as Error
      }
      expect(error?.message).toMatch(message)
      expect(error?.message).not.toContain('shortish')
      expect(error?.message).not.toContain('too short')
    }
  })
})
