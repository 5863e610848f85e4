import type { QueryCacheOptions } from './query-cache-options.js'
import { MemcachedStore, secretsOption } from '../store/memcached/memcached-store.js'
import type { StoreEvent } from '../store/memcached/store-event.js'
import { MemoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import { isSigned, signStore, type OnRejected } from '../store/signed-store.js'
import { ValueSigner } from '../store/value-signer.js'
import { delayMs, integerFrom, positiveInteger, rejectUnknown, requireOptionsObject, saslCredentials, wholeSeconds } from '../util/validate.js'

const MEMCACHED_ONLY = ['failureThreshold', 'retryAfterMs', 'fallbackTtl', 'sasl'] as const

const MEMORY_OPTIONS = ['maxEntries', 'maxBytes']

const SECRET_NEEDS_SHARED_STORE =
  'secret applies to a store other processes share (memcached servers or a shared custom store); this store is in-process'

/** How values are framed in a shared store: the secrets (none: bound to their key) and who hears of refusals. */
export interface StoreSigning {
  readonly secrets: readonly Buffer[]
  readonly onRejected: OnRejected
}

/**
 * The store `createQueryCache` options describe: the caller's own `store`, the
 * memcached nodes of `servers`, or else an embedded LRU. Options that do not
 * apply to the chosen store are errors, not silently ignored. Whoever can reach
 * a shared store can write to it, so its values are framed (see signed-store.ts).
 */
export function createStore(options: QueryCacheOptions, timeoutMs: number, signing: StoreSigning, onEvent: (event: StoreEvent) => void): Store {
  const { servers, store, memory } = options
  if (store !== undefined) {
    if (servers !== undefined) {
      throw new TypeError('give either servers or store, not both')
    }
    for (const name of [...MEMCACHED_ONLY, 'maxValueBytes', 'memory'] as const) {
      if (options[name] !== undefined) {
        throw new TypeError(`${name} does not apply with a custom store: configure the store itself`)
      }
    }
    if (isSigned(store)) {
      if (signing.secrets.length > 0) {
        throw new TypeError('secret does not apply with a MemcachedStore you built: give it to new MemcachedStore({ secret }) instead')
      }
      return store
    }
    if (store.processLocal === true) {
      if (signing.secrets.length > 0) {
        throw new TypeError(SECRET_NEEDS_SHARED_STORE)
      }
      return store
    }
    return signStore(store, new ValueSigner(signing.secrets), signing.onRejected)
  }
  const maxValueBytes =
    options.maxValueBytes === undefined ? undefined : positiveInteger(options.maxValueBytes, 'maxValueBytes')
  if (servers === undefined) {
    for (const name of MEMCACHED_ONLY) {
      if (options[name] !== undefined) {
        throw new TypeError(`${name} applies to memcached servers only, and no servers were given`)
      }
    }
    if (signing.secrets.length > 0) {
      throw new TypeError(SECRET_NEEDS_SHARED_STORE)
    }
    if (memory !== undefined) rejectUnknown(requireOptionsObject(memory, 'memory'), MEMORY_OPTIONS, 'memory')
    const maxBytes = memory?.maxBytes === undefined ? undefined : integerFrom(memory.maxBytes, 'memory.maxBytes', 1024)
    return new MemoryStore({
      maxEntries: memory?.maxEntries === undefined ? undefined : positiveInteger(memory.maxEntries, 'memory.maxEntries'),
      maxBytes,
      maxValueBytes,
    })
  }
  if (memory !== undefined) {
    throw new TypeError('memory applies to the embedded store only, and servers were given')
  }
  const { failureThreshold, retryAfterMs, fallbackTtl } = options
  return new MemcachedStore({
    ...(options.sasl === undefined ? {} : { sasl: saslCredentials(options.sasl, 'sasl') }),
    servers: servers as string[],
    timeoutMs,
    failureThreshold: failureThreshold === undefined ? undefined : positiveInteger(failureThreshold, 'failureThreshold'),
    retryAfterMs: retryAfterMs === undefined ? undefined : delayMs(retryAfterMs, 'retryAfterMs'),
    // Checked here under the caller's name: the store knows it as fallbackTtlSeconds.
    fallbackTtlSeconds: fallbackTtl === undefined ? undefined : wholeSeconds(fallbackTtl, 'fallbackTtl'),
    maxValueBytes,
    onEvent,
    ...secretsOption(signing.secrets),
    onRejected: signing.onRejected,
  })
}

