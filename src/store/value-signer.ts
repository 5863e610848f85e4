import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

/** Why a stored value was not accepted. */
export type RejectionReason =
  /** Not framed by this library (written by someone else, or by a release before signing). */
  | 'unframed'
  /** Framed for another key: an entry copied under this key. */
  | 'wrong-key'
  /** Signed with a secret this process does not hold (or unsigned where a secret is required). */
  | 'unknown-secret'
  /** Signed with a held secret, but the bytes or the key were changed since. */
  | 'bad-signature'

const KEY_HASHED = 0x01
const SIGNED = 0x02
const TAG_BYTES = 16
const SECRET_ID_BYTES = 4
const KEY_HASHED_HEADER = 1 + TAG_BYTES
const SIGNED_HEADER = 1 + SECRET_ID_BYTES + TAG_BYTES
/**
 * Values up to this size (generation tokens, locks) are remembered once verified:
 * every hit reads the same few generations again, and a byte comparison costs a
 * tenth of an HMAC. Entries are larger and verified each time.
 */
const REMEMBERED_MAX_BYTES = 128
const REMEMBERED_MAX_KEYS = 4096

interface Secret {
  readonly id: Buffer
  readonly bytes: Buffer
}

/**
 * Frames every value the library writes with what proves where it belongs.
 *
 * - With secrets: `0x02 · secret id (4) · HMAC-SHA256(secret, key "\n" bytes) (16) · bytes`.
 *   Only a holder of the secret can produce a value that verifies under a key, so a
 *   value forged or copied under another key is refused. The id names which secret
 *   signed it, so values of the previous secret keep verifying during a rotation.
 * - Without: `0x02` is replaced by `0x01 · SHA-256(key) (16) · bytes`: no protection
 *   against a writer who means harm, but an entry copied or misrouted under another
 *   key is caught.
 *
 * A key holds no newline (memcached's key rule), so `key "\n" bytes` is unambiguous.
 *
 * ```ts
 * const signer = new ValueSigner([Buffer.from('a secret of at least 16 bytes')])
 * const framed = signer.seal('app:q:1', Buffer.from('rows'))
 * signer.open('app:q:1', framed) // Buffer 'rows'
 * signer.open('app:q:2', framed) // 'bad-signature'
 * ```
 */
export class ValueSigner {
  /** Bytes a framed value adds. */
  readonly overhead: number
  readonly #current: Secret | undefined
  readonly #secrets: readonly Secret[]
  /** Key → the small framed value last verified under it. */
  readonly #verified = new Map<string, Buffer>()

  /** `secrets`: current first, then those still accepted (checked by `signingSecrets`). */
  constructor(secrets: readonly Buffer[] = []) {
    this.#secrets = secrets.map((bytes) => ({ bytes, id: secretId(bytes) }))
    this.#current = this.#secrets[0]
    this.overhead = this.#current === undefined ? KEY_HASHED_HEADER : SIGNED_HEADER
  }

  seal(key: string, value: Buffer): Buffer {
    const secret = this.#current
    if (secret === undefined) {
      const framed = Buffer.allocUnsafe(KEY_HASHED_HEADER + value.length)
      framed[0] = KEY_HASHED
      keyHash(key).copy(framed, 1, 0, TAG_BYTES)
      value.copy(framed, KEY_HASHED_HEADER)
      return framed
    }
    const framed = Buffer.allocUnsafe(SIGNED_HEADER + value.length)
    framed[0] = SIGNED
    secret.id.copy(framed, 1)
    mac(secret.bytes, key, value).copy(framed, 1 + SECRET_ID_BYTES, 0, TAG_BYTES)
    value.copy(framed, SIGNED_HEADER)
    return framed
  }

  /** The value as it was sealed under `key`, or why it is refused. Never throws. */
  open(key: string, framed: Buffer): Buffer | RejectionReason {
    if (framed.length > REMEMBERED_MAX_BYTES) return this.#verify(key, framed)
    const header = this.overhead
    if (this.#verified.get(key)?.equals(framed) === true) return framed.subarray(header)
    const opened = this.#verify(key, framed)
    if (Buffer.isBuffer(opened)) {
      if (this.#verified.size >= REMEMBERED_MAX_KEYS) this.#verified.clear()
      // A copy: the reply buffer may be reused by the client.
      this.#verified.set(key, Buffer.from(framed))
    }
    return opened
  }

  #verify(key: string, framed: Buffer): Buffer | RejectionReason {
    if (this.#current === undefined) {
      if (framed.length < KEY_HASHED_HEADER || framed[0] !== KEY_HASHED) return framed[0] === SIGNED ? 'unknown-secret' : 'unframed'
      const tag = framed.subarray(1, KEY_HASHED_HEADER)
      return tag.equals(keyHash(key).subarray(0, TAG_BYTES)) ? framed.subarray(KEY_HASHED_HEADER) : 'wrong-key'
    }
    // A secret is configured: an unsigned value is refused, or anyone could write one.
    if (framed.length < SIGNED_HEADER || framed[0] !== SIGNED) return framed[0] === KEY_HASHED ? 'unknown-secret' : 'unframed'
    const id = framed.subarray(1, 1 + SECRET_ID_BYTES)
    const secret = this.#secrets.find((candidate) => candidate.id.equals(id))
    if (secret === undefined) return 'unknown-secret'
    const value = framed.subarray(SIGNED_HEADER)
    const expected = mac(secret.bytes, key, value).subarray(0, TAG_BYTES)
    return timingSafeEqual(expected, framed.subarray(1 + SECRET_ID_BYTES, SIGNED_HEADER)) ? value : 'bad-signature'
  }
}

function mac(secret: Buffer, key: string, value: Buffer): Buffer {
  return createHmac('sha256', secret).update(key).update('\n').update(value).digest()
}

function keyHash(key: string): Buffer {
  return createHash('sha256').update(key).digest()
}

/** Names a secret without revealing it: a hash under its own domain, cut to 4 bytes. */
function secretId(secret: Buffer): Buffer {
  return createHash('sha256').update('kysely-memcache secret id\n').update(secret).digest().subarray(0, SECRET_ID_BYTES)
}
