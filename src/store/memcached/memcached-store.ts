import { describe, integerFrom, requireOptionsObject, signingSecrets } from '../../util/validate.js'
import { SignedNodeAwareStore, type OnRejected } from '../signed-store.js'
import { ValueSigner } from '../value-signer.js'
import { DEFAULT_MAX_VALUE_BYTES, MemcachedNodes, type MemcachedNodesOptions } from './memcached-nodes.js'

/** Options of {@link MemcachedStore}. */
export interface MemcachedStoreOptions extends MemcachedNodesOptions {
  /**
   * Signs every value with HMAC-SHA256 over its key and bytes; a value read that
   * does not verify is absent (see docs/security.md). At least 16 bytes. Without
   * it values carry a hash of their key. Excludes `secrets`.
   */
  secret?: string | Buffer
  /** `[current, ...previous]`: signs with the first, accepts all (rotation). */
  secrets?: ReadonlyArray<string | Buffer>
  /** Called for each value read and refused (the key and why). Must not throw. */
  onRejected?: OnRejected
}

/**
 * A {@link Store} over several memcached nodes (see {@link MemcachedNodes} for
 * the ring, node health and timeouts), whose values are framed under their key:
 * signed given a secret, else bound to the key by its hash. Whoever else writes
 * under these keys (an attacker, an older release, a process with another
 * secret) reads as absent. Every process sharing the nodes needs the same secrets.
 *
 * ```ts
 * const store = new MemcachedStore({ servers: ['10.0.0.1:11211', '10.0.0.2:11211'], timeoutMs: 100, secret: process.env.CACHE_SECRET })
 * await store.set('greeting', Buffer.from('hello'), 60)
 * const cache = createQueryCache({ store }) // or createQueryCache({ servers, secret }) to let it build one
 * ```
 */
export class MemcachedStore extends SignedNodeAwareStore {
  /**
   * Creates the store; connections open lazily on first use.
   * @throws {TypeError | RangeError} When an option is missing, unknown or out
   *   of range; the message names the option (and never shows a secret or password).
   */
  constructor(options: MemcachedStoreOptions) {
    const { secret, secrets, onRejected, ...nodes } = requireOptionsObject(options, 'MemcachedStore') as unknown as MemcachedStoreOptions
    if (onRejected !== undefined && typeof onRejected !== 'function') {
      throw new TypeError(`onRejected must be a function, got ${describe(onRejected)}`)
    }
    const signer = new ValueSigner(signingSecrets(secret, secrets))
    // `maxValueBytes` is what a caller may store; the frame rides in the item's headroom.
    const limit = nodes.maxValueBytes === undefined ? DEFAULT_MAX_VALUE_BYTES : integerFrom(nodes.maxValueBytes, 'maxValueBytes', 1, 1024 ** 3)
    super(new MemcachedNodes({ ...nodes, maxValueBytes: limit + signer.overhead }), signer, onRejected ?? (() => {}))
  }
}

/**
 * The `secrets` option for secrets already checked: none when the list is empty
 * (a user's empty `secrets` is an error; an internal empty list means "unsigned").
 *
 * ```ts
 * new MemcachedStore({ servers, ...secretsOption(config.secrets) })
 * ```
 */
export function secretsOption(secrets: readonly Buffer[]): Pick<MemcachedStoreOptions, 'secrets'> {
  return secrets.length === 0 ? {} : { secrets }
}
