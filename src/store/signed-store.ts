import { isNodeAware, type NodeAwareStore, type NodeState } from './node-aware-store.js'
import { assertStoreKey, assertStoreValue, StoreUnavailableError, type Store } from './store.js'
import type { RejectionReason, ValueSigner } from './value-signer.js'

/** Told once per refused value (the caller throttles what it reports). */
export type OnRejected = (key: string, reason: RejectionReason) => void

/**
 * A store whose values are framed by a {@link ValueSigner}: every value written is
 * sealed under its key, every value read is opened, and one that does not open is
 * treated as absent (a miss: the database answers, and the next write replaces it),
 * or, where a home's answer decides a majority, as a home that did not answer.
 * Counters (`increment`) are memcached's own numbers and stay unsigned.
 *
 * ```ts
 * const store = signStore(new MemcachedStore({ servers }), new ValueSigner([secret]), (key, reason) => log(key, reason))
 * ```
 */
export function signStore(inner: Store, signer: ValueSigner, onRejected: OnRejected): Store {
  return isNodeAware(inner) ? new SignedNodeAwareStore(inner, signer, onRejected) : new SignedStore(inner, signer, onRejected)
}

/** Whether `store` frames its values itself (a {@link MemcachedStore} does): wrapping it again would frame twice. */
export function isSigned(store: Store): boolean {
  return store instanceof SignedStore
}

/** The error a home's refused value reads as: no answer from that home. */
export class RejectedValueError extends StoreUnavailableError {
  constructor(key: string, reason: RejectionReason) {
    super(`the value stored under ${key} was refused (${reason}): not written by a holder of this cache's secret for this key`)
  }
}

/** See {@link signStore}. */
export class SignedStore implements Store {
  protected readonly inner: Store
  readonly #signer: ValueSigner
  readonly #onRejected: OnRejected

  constructor(inner: Store, signer: ValueSigner, onRejected: OnRejected) {
    this.inner = inner
    this.#signer = signer
    this.#onRejected = onRejected
  }

  get maxValueBytes(): number {
    return this.inner.maxValueBytes - this.#signer.overhead
  }

  get processLocal(): boolean {
    return this.inner.processLocal === true
  }

  async get(key: string): Promise<Buffer | undefined> {
    return this.#open(key, await this.inner.get(key))
  }

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    return this.inner.set(key, this.#seal(key, value), ttlSeconds)
  }

  async add(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    return this.inner.add(key, this.#seal(key, value), ttlSeconds)
  }

  delete(key: string): Promise<boolean> {
    return this.inner.delete(key)
  }

  increment(key: string, amount: number, initial: bigint): Promise<string> {
    return this.inner.increment(key, amount, initial)
  }

  async getReplicas(key: string, count: number): Promise<Array<Buffer | undefined | StoreUnavailableError>> {
    const copies = await this.inner.getReplicas(key, count)
    return copies.map((copy) => (copy instanceof StoreUnavailableError ? copy : this.#open(key, copy)))
  }

  async setReplicas(key: string, value: Buffer, ttlSeconds: number, count: number): Promise<Array<true | StoreUnavailableError>> {
    return this.inner.setReplicas(key, this.#seal(key, value), ttlSeconds, count)
  }

  readHomes(key: string, count: number): Array<Promise<Buffer | undefined>> {
    return this.inner.readHomes(key, count).map((read) =>
      read.then((value) => {
        if (value === undefined) return undefined
        const opened = this.#signer.open(key, value)
        if (Buffer.isBuffer(opened)) return opened
        this.#onRejected(key, opened)
        // Not "absent": a majority of absent homes would start a new generation over the refused ones.
        throw new RejectedValueError(key, opened)
      }),
    )
  }

  writeHomes(key: string, value: Buffer, ttlSeconds: number, count: number): Array<Promise<void>> {
    return this.inner.writeHomes(key, this.#seal(key, value), ttlSeconds, count)
  }

  addHomes(key: string, value: Buffer, ttlSeconds: number, count: number): Array<Promise<boolean>> {
    return this.inner.addHomes(key, this.#seal(key, value), ttlSeconds, count)
  }

  close(): Promise<void> {
    return this.inner.close()
  }

  /** Checked against this store's own limit first, so a too-large value is reported at the size the caller gave. */
  #seal(key: string, value: Buffer): Buffer {
    assertStoreKey(key)
    assertStoreValue(key, value, this.maxValueBytes)
    return this.#signer.seal(key, value)
  }

  #open(key: string, value: Buffer | undefined): Buffer | undefined {
    if (value === undefined) return undefined
    const opened = this.#signer.open(key, value)
    if (Buffer.isBuffer(opened)) return opened
    this.#onRejected(key, opened)
    return undefined
  }
}

/** A {@link SignedStore} over a store with nodes: their health passes through. */
export class SignedNodeAwareStore extends SignedStore implements NodeAwareStore {
  declare protected readonly inner: NodeAwareStore

  get nodeCount(): number {
    return this.inner.nodeCount
  }

  get liveNodeCount(): number {
    return this.inner.liveNodeCount
  }

  nodeStates(): NodeState[] {
    return this.inner.nodeStates()
  }

  nodeFor(key: string): string {
    return this.inner.nodeFor(key)
  }

  holdDown(nodes: ReadonlySet<string>, released: 'flushed' | 'probe'): void {
    this.inner.holdDown(nodes, released)
  }
}
