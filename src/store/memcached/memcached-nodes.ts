import type { Response as MemjsResponse } from 'memjs'
import { delayMs, describe as describeValue, integerFrom, positiveInteger, rejectUnknown, requireOptionsObject, saslCredentials, wholeSeconds } from '../../util/validate.js'
import type { SaslCredentials } from '../../util/validate.js'
import type { NodeAwareStore, NodeState } from '../node-aware-store.js'
import type { Store } from '../store.js'
import { assertCounterArguments, assertStoreKey, assertStoreValue, assertTtlSeconds, StoreUnavailableError } from '../store.js'
import { ValueTooLargeError } from '../value-too-large-error.js'
import { asError, NodeFailure } from './connection.js'
import { EMPTY, exptime, garbledReason, incrementExtras, OPCODE, STATUS, statusText, storageExtras, type Operation } from './protocol.js'
import { NodeRing, type NodeHealth } from './ring.js'
import { parseServerList } from './server-address.js'
import { readMajorityFirst } from './majority-first-read.js'
import { NodeSupervisor } from './node-supervisor.js'
import type { StoreEvent } from './store-event.js'

/**
 * A home that has not answered a majority read within this long is presumed hung and
 * the other homes are read. Far above a healthy round trip (well under 1 ms on a LAN).
 */
const HEDGE_AFTER_MS = 5

/** A random rank per node: each process prefers its own few nodes for majority reads. */
function shuffledRanks(ids: readonly string[]): Map<string, number> {
  const order = [...ids]
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  return new Map(order.map((id, rank) => [id, rank]))
}

/** memcached's 1 MiB item limit less room for the key and item headers. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024 - 1024

/** Options of {@link MemcachedNodes} (and of {@link MemcachedStore}, which adds signing). */
export interface MemcachedNodesOptions {
  /** memcached nodes as `"host:port"` (`"[::1]:11211"` for IPv6); at least one, no duplicates. */
  servers: readonly string[]
  /** Longest any call may take, connecting included, in ms. Default 250. */
  timeoutMs?: number
  /** Consecutive failures after which a node is taken off the ring. Default 3. */
  failureThreshold?: number
  /** How long a down node rests before it is probed again, in ms. Default 5000. */
  retryAfterMs?: number
  /**
   * TTL cap, in seconds, for writes that land on a fallback node while the key's
   * own node is down (also applied when the caller asked for no expiry). Default 10.
   */
  fallbackTtlSeconds?: number
  /** Largest value sent to memcached, in bytes. Default 1 MiB - 1 KiB (memcached's item limit minus headers). */
  maxValueBytes?: number
  /**
   * SASL PLAIN credentials for nodes started with `-S`: every connection (each
   * reconnection too) authenticates before its first request. A refusal is a
   * failure of the node, like a timeout (see the class notes), and fails the call
   * with `SASL authentication failed for host:port (user "app")`: errors and events
   * name the user, never the password. Without it no connection authenticates,
   * whatever MEMCACHIER_USERNAME or MEMCACHE_USERNAME say.
   */
  sasl?: SaslCredentials
  /** Receives node-down, node-up and per-operation error events. Must not throw. */
  onEvent?: (event: StoreEvent) => void
}

const KNOWN_OPTIONS = [
  'servers',
  'timeoutMs',
  'failureThreshold',
  'retryAfterMs',
  'fallbackTtlSeconds',
  'maxValueBytes',
  'sasl',
  'onEvent',
]

/**
 * A {@link Store} over several memcached nodes, storing values exactly as given:
 * {@link MemcachedStore} frames them (signed, or bound to their key) on top of it.
 *
 * - Keys are spread with a ketama consistent-hash ring keyed by `host:port`.
 * - Like mcrouter's TKO, a node that fails `failureThreshold` times in a row
 *   (timeout, refused, dropped connection, garbled reply, SASL authentication
 *   refused) is taken off the ring;
 *   until then its keys fail fast with {@link StoreUnavailableError} rather than
 *   moving. Off the ring, its keys go to the next node on the ring, and every
 *   write there gets a TTL of at most `fallbackTtlSeconds` (Facebook's "gutter":
 *   data written while a node is away is short-lived).
 * - A down node is probed every `retryAfterMs`; when it answers it is flushed
 *   before it rejoins, so it cannot serve values older than writes made while it
 *   was away.
 * - No call waits longer than `timeoutMs`, whatever the network does.
 *
 * TTLs are whole seconds relative to now (longer than 30 days is fine: the store
 * converts to memcached's absolute form); `0` means no expiry.
 *
 * ```ts
 * const store = new MemcachedStore({ servers: ['10.0.0.1:11211', '10.0.0.2:11211'], timeoutMs: 100 })
 * await store.set('greeting', Buffer.from('hello'), 60)
 * const cache = createQueryCache({ store }) // or createQueryCache({ servers }) to let it build one
 * ```
 */
export class MemcachedNodes implements NodeAwareStore {
  /** Largest value, in bytes, this store sends. */
  readonly maxValueBytes: number
  readonly #ring: NodeRing
  readonly #supervisor: NodeSupervisor
  readonly #fallbackTtlSeconds: number
  readonly #onEvent: ((event: StoreEvent) => void) | undefined
  /** This process's own order of the nodes for majority reads (see readHomes). */
  readonly #preference: Map<string, number>
  #closed = false

  /**
   * Creates the store; connections open lazily on first use.
   * @throws {TypeError | RangeError} When an option is missing, unknown or out
   *   of range; the message names the option and quotes the value.
   */
  constructor(options: MemcachedNodesOptions) {
    rejectUnknown(requireOptionsObject(options, 'MemcachedStore'), KNOWN_OPTIONS, 'MemcachedStore')
    const addresses = parseServerList(options.servers, 'servers')
    const timeoutMs = options.timeoutMs === undefined ? 250 : delayMs(options.timeoutMs, 'timeoutMs')
    const failureThreshold = options.failureThreshold === undefined ? 3 : positiveInteger(options.failureThreshold, 'failureThreshold')
    const retryAfterMs = options.retryAfterMs === undefined ? 5000 : delayMs(options.retryAfterMs, 'retryAfterMs')
    this.#fallbackTtlSeconds =
      options.fallbackTtlSeconds === undefined ? 10 : wholeSeconds(options.fallbackTtlSeconds, 'fallbackTtlSeconds')
    this.maxValueBytes =
      options.maxValueBytes === undefined ? DEFAULT_MAX_VALUE_BYTES : integerFrom(options.maxValueBytes, 'maxValueBytes', 1, 1024 ** 3)
    if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
      throw new TypeError(`onEvent must be a function, got ${describeValue(options.onEvent)}`)
    }
    const sasl = options.sasl === undefined ? undefined : saslCredentials(options.sasl, 'sasl')
    this.#onEvent = options.onEvent
    this.#ring = new NodeRing(addresses)
    this.#supervisor = new NodeSupervisor(this.#ring, { timeoutMs, failureThreshold, retryAfterMs, sasl, emit: (event) => this.#emit(event) })
    this.#preference = shuffledRanks(addresses.map((address) => address.id))
  }

  /** How many nodes this store was given. */
  get nodeCount(): number {
    return this.#ring.size
  }

  /** How many nodes are on the ring now. */
  get liveNodeCount(): number {
    return this.#ring.liveCount
  }

  /** A snapshot of every node's health, in `servers` order. */
  nodeStates(): NodeState[] {
    return [...this.#ring.nodes].map((node) => {
      const state: NodeState = {
        id: node.address.id,
        up: node.up,
        consecutiveFailures: node.consecutiveFailures,
      }
      if (node.downSince !== undefined) {
        state.downSince = node.downSince
      }
      return state
    })
  }

  /**
   * The node (`host:port`) that serves `key` now: its own node, or the next live
   * one on the ring while its own is down.
   * @throws {StoreUnavailableError} When every node is down.
   */
  nodeFor(key: string): string {
    this.#assertOpen()
    assertStoreKey(key)
    return this.#ring.route(key).node.address.id
  }

  /** The stored value, or `undefined` when absent. */
  async get(key: string): Promise<Buffer | undefined> {
    this.#assertOpen()
    assertStoreKey(key)
    const { node } = this.#ring.route(key)
    try {
      return await this.#getFrom(node, key)
    } catch (error) {
      // The node just left the ring: its keys now live on the next node (a hot copy, or a stand-in's entry).
      if (!(error instanceof StoreUnavailableError) || node.up || this.#ring.liveCount === 0) throw error
      return this.#getFrom(this.#ring.route(key).node, key)
    }
  }

  async #getFrom(node: NodeHealth, key: string): Promise<Buffer | undefined> {
    const response = await this.#call(node, 'get', key, EMPTY, EMPTY)
    switch (response.header.status) {
      case STATUS.ok:
        // Copy: memjs hands out a slice of its whole read buffer.
        return Buffer.from(response.val)
      case STATUS.notFound:
        return undefined
      default:
        throw this.#statusError(node, 'get', key, response)
    }
  }

  /**
   * Stores unconditionally.
   * @throws {ValueTooLargeError} Above {@link maxValueBytes} (nothing is sent) or when memcached refuses the size.
   */
  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    const { node, expiry } = this.#routeWrite(key, value, ttlSeconds)
    const response = await this.#call(node, 'set', key, storageExtras(expiry), value)
    switch (response.header.status) {
      case STATUS.ok:
        return
      case STATUS.tooLarge:
        throw new ValueTooLargeError(key, value.length, undefined)
      default:
        throw this.#statusError(node, 'set', key, response)
    }
  }

  /**
   * Stores only if absent (atomic on the node).
   * @returns `true` when it stored, `false` when the key already existed.
   * @throws {ValueTooLargeError} Above {@link maxValueBytes} (nothing is sent) or when memcached refuses the size.
   */
  async add(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    const { node, expiry } = this.#routeWrite(key, value, ttlSeconds)
    return this.#addOn(node, key, value, expiry)
  }

  /** Checks a `set` or `add` and routes it: the node that takes it and the exptime it gets there. */
  #routeWrite(key: string, value: Buffer, ttlSeconds: number): { node: NodeHealth; expiry: number } {
    this.#assertOpen()
    assertStoreKey(key)
    assertStoreValue(key, value, this.maxValueBytes)
    assertTtlSeconds(ttlSeconds)
    const { node, away } = this.#ring.route(key)
    return { node, expiry: this.#expiry(ttlSeconds, away) }
  }

  async #addOn(node: NodeHealth, key: string, value: Buffer, expiry: number): Promise<boolean> {
    const response = await this.#call(node, 'add', key, storageExtras(expiry), value)
    switch (response.header.status) {
      case STATUS.ok:
        return true
      case STATUS.exists:
      case STATUS.notStored:
        return false
      case STATUS.tooLarge:
        throw new ValueTooLargeError(key, value.length, undefined)
      default:
        throw this.#statusError(node, 'add', key, response)
    }
  }

  /** Removes `key`; `false` when it was absent. */
  async delete(key: string): Promise<boolean> {
    this.#assertOpen()
    assertStoreKey(key)
    const { node } = this.#ring.route(key)
    const response = await this.#call(node, 'delete', key, EMPTY, EMPTY)
    switch (response.header.status) {
      case STATUS.ok:
        return true
      case STATUS.notFound:
        return false
      default:
        throw this.#statusError(node, 'delete', key, response)
    }
  }

  /**
   * Adds `amount` to the 64-bit counter at `key` (wrapping at 2^64, as memcached
   * does); a missing counter is created holding `initial`, with no expiry (or
   * `fallbackTtlSeconds` on a fallback node). Exact for the whole uint64 range.
   * @returns The counter's new value as a decimal string.
   * @throws {Error} When the value at `key` is not a decimal counter.
   */
  async increment(key: string, amount: number, initial: bigint): Promise<string> {
    this.#assertOpen()
    assertStoreKey(key)
    assertCounterArguments(amount, initial)
    const { node, away } = this.#ring.route(key)
    const extras = incrementExtras(amount, initial, this.#expiry(0, away))
    const response = await this.#call(node, 'increment', key, extras, EMPTY)
    switch (response.header.status) {
      case STATUS.ok:
        return response.val.readBigUInt64BE(0).toString()
      case STATUS.nonNumeric:
        throw new Error(`cannot increment ${JSON.stringify(key)}: its value is not a decimal counter`)
      default:
        throw this.#statusError(node, 'increment', key, response)
    }
  }

  /** Values on each of the first `count` live nodes clockwise from `key` (see {@link Store.getReplicas}). */
  async getReplicas(key: string, count: number): Promise<Array<Buffer | undefined | StoreUnavailableError>> {
    return this.#onReplicas(key, count, (node) => this.#getFrom(node, key))
  }

  /**
   * Stores on each replica, with the TTL as given: replicas are homes, not stand-ins.
   *
   * Also sends, without waiting, to the nodes among the first `count` of the full
   * ring that this store has off its ring: another process may already read from
   * one of them (it re-admitted the node sooner), and a write it misses would leave
   * that process a stale copy. Such a send fails fast where the node is truly down.
   */
  async setReplicas(key: string, value: Buffer, ttlSeconds: number, count: number): Promise<Array<true | StoreUnavailableError>> {
    assertStoreValue(key, value, this.maxValueBytes)
    assertTtlSeconds(ttlSeconds)
    const extras = storageExtras(this.#expiry(ttlSeconds, false))
    const set = async (node: NodeHealth): Promise<true> => {
      await this.#setOn(node, key, extras, value)
      return true
    }
    const homes = this.#homes(key, count)
    const written = this.#onReplicas(key, count, set)
    for (const node of homes) {
      if (!node.up && !this.#closed) set(node).catch(() => {})
    }
    return written
  }

  /**
   * One answer per home of `key` (see {@link Store.readHomes}); homes off this store's
   * ring fail at once. A majority of homes is read first; the others only when
   * those do not agree (see majority-first-read.ts).
   */
  readHomes(key: string, count: number): Array<Promise<Buffer | undefined>> {
    return readMajorityFirst(
      this.#homes(key, count),
      (node) =>
        node.up
          ? this.#getFrom(node, key)
          : Promise.reject(new StoreUnavailableError(`memcached ${node.address.id} is off this process's ring`, node.address.id)),
      (node) => this.#preference.get(node.address.id)!,
      HEDGE_AFTER_MS,
    )
  }

  /** One `set` per home of `key`, off-ring homes included (see {@link Store.writeHomes}). */
  writeHomes(key: string, value: Buffer, ttlSeconds: number, count: number): Array<Promise<void>> {
    assertStoreValue(key, value, this.maxValueBytes)
    assertTtlSeconds(ttlSeconds)
    const extras = storageExtras(this.#expiry(ttlSeconds, false))
    return this.#homes(key, count).map((node) => this.#setOn(node, key, extras, value))
  }

  /** A home or replica `set`: any answer but success is an error. */
  async #setOn(node: NodeHealth, key: string, extras: Buffer, value: Buffer): Promise<void> {
    const response = await this.#call(node, 'set', key, extras, value)
    if (response.header.status !== STATUS.ok) {
      throw this.#statusError(node, 'set', key, response)
    }
  }

  /** One `add` per home of `key`, off-ring homes included (see {@link Store.addHomes}). */
  addHomes(key: string, value: Buffer, ttlSeconds: number, count: number): Array<Promise<boolean>> {
    assertStoreValue(key, value, this.maxValueBytes)
    assertTtlSeconds(ttlSeconds)
    const expiry = this.#expiry(ttlSeconds, false)
    return this.#homes(key, count).map((node) => this.#addOn(node, key, value, expiry))
  }

  /** The first `count` nodes of the full ring from `key`: the same in every process. */
  #homes(key: string, count: number): NodeHealth[] {
    this.#assertOpen()
    assertStoreKey(key)
    return this.#ring.homes(key, count)
  }

  /**
   * Runs `operation` on the first `count` live nodes clockwise from `key` (the first
   * is the node `get` reads from), in parallel. A node's failure fills its slot;
   * the call rejects only when no node answered.
   */
  async #onReplicas<T>(
    key: string,
    count: number,
    operation: (node: NodeHealth) => Promise<T>,
  ): Promise<Array<T | StoreUnavailableError>> {
    this.#assertOpen()
    assertStoreKey(key)
    const replicas = this.#ring.replicas(key, count)
    const settled = await Promise.allSettled(replicas.map(operation))
    const results = settled.map((outcome, i) => {
      if (outcome.status === 'fulfilled') return outcome.value
      const reason: unknown = outcome.reason
      return reason instanceof StoreUnavailableError
        ? reason
        : new StoreUnavailableError(String(reason), replicas[i]!.address.id, { cause: reason })
    })
    const failure = results.find((result): result is StoreUnavailableError => result instanceof StoreUnavailableError)
    if (failure !== undefined && results.every((result) => result instanceof StoreUnavailableError)) {
      throw failure
    }
    return results
  }

  /** Closes every connection and timer; later calls reject with {@link StoreUnavailableError}. */
  async close(): Promise<void> {
    this.#closed = true
    this.#supervisor.close()
  }

  /**
   * Keeps `nodes` off the ring because someone with a wider view (the tier
   * monitor's shared flag) says they are down (see {@link NodeSupervisor.holdDown}).
   */
  holdDown(nodes: ReadonlySet<string>, released: 'flushed' | 'probe'): void {
    this.#supervisor.holdDown(nodes, released)
  }

  /** memcached's exptime for a relative TTL, capped when the key is away from home. */
  #expiry(ttlSeconds: number, away: boolean): number {
    let ttl = ttlSeconds
    if (away) {
      ttl = ttl === 0 ? this.#fallbackTtlSeconds : Math.min(ttl, this.#fallbackTtlSeconds)
    }
    return exptime(ttl)
  }

  async #call(
    node: NodeHealth,
    operation: Operation,
    key: string,
    extras: Buffer,
    value: Buffer,
  ): Promise<MemjsResponse> {
    const connection = this.#supervisor.connectionFor(node)
    let response: MemjsResponse
    try {
      response = await connection.request(OPCODE[operation], key, extras, value)
    } catch (error) {
      throw this.#operationFailed(node, operation, key, error)
    }
    const garbled = garbledReason(operation, response)
    if (garbled !== undefined) {
      const failure = new NodeFailure('garbled', `garbled reply to ${operation}: ${garbled}`)
      connection.breakWith(failure)
      throw this.#operationFailed(node, operation, key, failure)
    }
    if (node.up) {
      node.consecutiveFailures = 0
    }
    return response
  }

  #operationFailed(node: NodeHealth, operation: string, key: string, error: unknown): Error {
    if (!(error instanceof NodeFailure)) {
      return asError(error)
    }
    this.#emit({ type: 'error', node: node.address.id, error })
    return new StoreUnavailableError(
      `memcached ${node.address.id} failed to ${operation} ${JSON.stringify(key)}: ${error.message}`,
      node.address.id,
      { cause: error },
    )
  }

  /** The node answered, just not with success: not a node failure, but worth an event. */
  #statusError(node: NodeHealth, operation: string, key: string, response: MemjsResponse): Error {
    const error = new StoreUnavailableError(
      `memcached ${node.address.id} refused ${operation} ${JSON.stringify(key)}: ${statusText(response)}`,
      node.address.id,
    )
    this.#emit({ type: 'error', node: node.address.id, error })
    return error
  }

  #emit(event: StoreEvent): void {
    if (this.#onEvent === undefined || this.#closed) {
      return
    }
    try {
      this.#onEvent(event)
    } catch (error) {
      // A faulty listener must not turn a cache event into a failed query.
      process.emitWarning(`MemcachedStore onEvent listener threw: ${asError(error).message}`)
    }
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new StoreUnavailableError('MemcachedStore is closed')
    }
  }

}
