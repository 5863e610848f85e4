import type { Socket } from 'node:net'
import HashRing from 'hashring'
import memjs from 'memjs'
import type { Client as MemjsClient, Response as MemjsResponse, Server as MemjsServer } from 'memjs'
import { describe as describeValue } from '../../util/options.js'
import { parseServerList } from './server-address.js'
import type { ServerAddress } from './server-address.js'
import type { Store } from '../store.js'
import { assertStoreKey, assertTtlSeconds, StoreUnavailableError } from '../store.js'
import { ValueTooLargeError } from '../value-too-large-error.js'

export { ValueTooLargeError } from '../value-too-large-error.js'

/** Options of {@link MemcachedStore}. */
export interface MemcachedStoreOptions {
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
  /** Receives node-down, node-up and per-operation error events. Must not throw. */
  onEvent?: (event: StoreEvent) => void
}

/** What {@link MemcachedStoreOptions.onEvent} receives. */
export type StoreEvent =
  | {
      /** The node reached `failureThreshold` consecutive failures and left the ring. */
      type: 'node-down'
      node: string
      reason: string
    }
  | {
      /**
       * A down node is back on the ring. `flushed`: this store flushed it after it
       * answered a probe; `false` when a {@link MemcachedStore.holdDown} was
       * released (whoever held it down flushed it).
       */
      type: 'node-up'
      node: string
      flushed: boolean
    }
  | {
      /** One operation (or probe) on the node failed. */
      type: 'error'
      node: string
      error: Error
    }

/** A node's health as seen by the store. */
export interface NodeState {
  /** `host:port`. */
  id: string
  /** On the ring (serving its keys). */
  up: boolean
  /** Failures since the last success; reset by any answer. */
  consecutiveFailures: number
  /** When it was taken off the ring (ms since the epoch), while down. */
  downSince?: number
}

const OPCODE = {
  get: 0x00,
  set: 0x01,
  add: 0x02,
  delete: 0x04,
  increment: 0x05,
  flush: 0x08,
  version: 0x0b,
} as const

const STATUS = {
  ok: 0x00,
  notFound: 0x01,
  exists: 0x02,
  tooLarge: 0x03,
  notStored: 0x05,
  nonNumeric: 0x06,
} as const

const RESPONSE_MAGIC = 0x81
const THIRTY_DAYS_SECONDS = 60 * 60 * 24 * 30
const MAX_TIMER_MS = 2 ** 31 - 1
const UINT32_MAX = 0xffffffff
const UINT64_LIMIT = 1n << 64n
const EMPTY = Buffer.alloc(0)
const SILENT_LOGGER = { log(): void {} }
const KNOWN_OPTIONS = new Set([
  'servers',
  'timeoutMs',
  'failureThreshold',
  'retryAfterMs',
  'fallbackTtlSeconds',
  'maxValueBytes',
  'onEvent',
])

/**
 * A {@link Store} over several memcached nodes.
 *
 * - Keys are spread with a ketama consistent-hash ring keyed by `host:port`.
 * - Like mcrouter's TKO, a node that fails `failureThreshold` times in a row
 *   (timeout, refused, dropped connection, garbled reply) is taken off the ring;
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
 */
export class MemcachedStore implements Store {
  /** Largest value, in bytes, this store sends. */
  readonly maxValueBytes: number
  readonly #nodes = new Map<string, NodeHealth>()
  readonly #ring: HashRing
  readonly #timeoutMs: number
  readonly #failureThreshold: number
  readonly #retryAfterMs: number
  readonly #fallbackTtlSeconds: number
  readonly #onEvent: ((event: StoreEvent) => void) | undefined
  #liveNodeCount: number
  #closed = false

  /**
   * Creates the store; connections open lazily on first use.
   * @throws {TypeError | RangeError} When an option is missing, unknown or out
   *   of range; the message names the option and quotes the value.
   */
  constructor(options: MemcachedStoreOptions) {
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      throw new TypeError(`MemcachedStore options must be an object, got ${describeValue(options)}`)
    }
    for (const name of Object.keys(options)) {
      if (!KNOWN_OPTIONS.has(name)) {
        throw new TypeError(
          `MemcachedStore got unknown option ${JSON.stringify(name)}; known options: ${[...KNOWN_OPTIONS].join(', ')}`,
        )
      }
    }
    const addresses = parseServerList(options.servers, 'servers')
    this.#timeoutMs = numberOption(
      'timeoutMs',
      options.timeoutMs,
      250,
      'a positive finite number of milliseconds',
      (value) => value > 0 && value <= MAX_TIMER_MS,
    )
    this.#failureThreshold = numberOption(
      'failureThreshold',
      options.failureThreshold,
      3,
      'a positive integer',
      (value) => Number.isSafeInteger(value) && value >= 1,
    )
    this.#retryAfterMs = numberOption(
      'retryAfterMs',
      options.retryAfterMs,
      5000,
      'a positive finite number of milliseconds',
      (value) => value > 0 && value <= MAX_TIMER_MS,
    )
    this.#fallbackTtlSeconds = numberOption(
      'fallbackTtlSeconds',
      options.fallbackTtlSeconds,
      10,
      `an integer number of seconds from 1 to ${THIRTY_DAYS_SECONDS}`,
      (value) => Number.isSafeInteger(value) && value >= 1 && value <= THIRTY_DAYS_SECONDS,
    )
    this.maxValueBytes = numberOption(
      'maxValueBytes',
      options.maxValueBytes,
      1024 * 1024 - 1024,
      'an integer number of bytes from 1 to 1 GiB',
      (value) => Number.isSafeInteger(value) && value >= 1 && value <= 1024 ** 3,
    )
    if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
      throw new TypeError(`onEvent must be a function, got ${describeValue(options.onEvent)}`)
    }
    this.#onEvent = options.onEvent

    for (const address of addresses) {
      this.#nodes.set(address.id, new NodeHealth(address))
    }
    this.#liveNodeCount = addresses.length
    // The ring always holds every node; down nodes are skipped at lookup. Rebuilding
    // a smaller ring would not do: hashring gives each node floor((1 / n) * 40 * n)
    // vnodes in floating point, 39 instead of 40 for n = 7, so going from 8 nodes to
    // 7 would also move keys between healthy nodes.
    this.#ring = new HashRing(addresses.map((address) => address.id))
  }

  /** How many nodes this store was given. */
  get nodeCount(): number {
    return this.#nodes.size
  }

  /** How many nodes are on the ring now. */
  get liveNodeCount(): number {
    return this.#liveNodeCount
  }

  /** A snapshot of every node's health, in `servers` order. */
  nodeStates(): NodeState[] {
    return [...this.#nodes.values()].map((node) => {
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
    return this.#route(key).node.address.id
  }

  /** The stored value, or `undefined` when absent. */
  async get(key: string): Promise<Buffer | undefined> {
    this.#assertOpen()
    assertStoreKey(key)
    return this.#getFrom(this.#route(key).node, key)
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
    this.#assertOpen()
    assertStoreKey(key)
    this.#assertValue(key, value)
    assertTtlSeconds(ttlSeconds)
    const { node, away } = this.#route(key)
    const response = await this.#call(node, 'set', key, storageExtras(this.#expiry(ttlSeconds, away)), value)
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
    this.#assertOpen()
    assertStoreKey(key)
    this.#assertValue(key, value)
    assertTtlSeconds(ttlSeconds)
    const { node, away } = this.#route(key)
    return this.#addOn(node, key, value, this.#expiry(ttlSeconds, away))
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
    const { node } = this.#route(key)
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
    assertAmount(amount)
    assertInitial(initial)
    const { node, away } = this.#route(key)
    // Built by hand: memjs writes amount and initial as 32-bit numbers and decodes
    // the reply with `hi << 8`, so it cannot carry a clock-sized counter.
    const extras = Buffer.alloc(20)
    extras.writeBigUInt64BE(BigInt(amount), 0)
    extras.writeBigUInt64BE(initial, 8)
    extras.writeUInt32BE(this.#expiry(0, away), 16)
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
    this.#assertValue(key, value)
    assertTtlSeconds(ttlSeconds)
    const set = async (node: NodeHealth): Promise<true> => {
      const response = await this.#call(node, 'set', key, storageExtras(this.#expiry(ttlSeconds, false)), value)
      if (response.header.status !== STATUS.ok) {
        throw this.#statusError(node, 'set', key, response)
      }
      return true
    }
    const written = this.#onReplicas(key, count, set)
    for (const id of this.#ring.range(key, Math.min(count, this.#nodes.size))) {
      const node = this.#nodes.get(id)
      if (node !== undefined && !node.up && !this.#closed) set(node).catch(() => {})
    }
    return written
  }

  /** One read per home of `key` (see {@link Store.readHomes}); homes off this store's ring fail at once. */
  readHomes(key: string, count: number): Array<Promise<Buffer | undefined>> {
    return this.#homes(key, count).map((node) =>
      node.up
        ? this.#getFrom(node, key)
        : Promise.reject(new StoreUnavailableError(`memcached ${node.address.id} is off this process's ring`, node.address.id)),
    )
  }

  /** One `set` per home of `key`, off-ring homes included (see {@link Store.writeHomes}). */
  writeHomes(key: string, value: Buffer, ttlSeconds: number, count: number): Array<Promise<void>> {
    this.#assertValue(key, value)
    assertTtlSeconds(ttlSeconds)
    const extras = storageExtras(this.#expiry(ttlSeconds, false))
    return this.#homes(key, count).map(async (node) => {
      const response = await this.#call(node, 'set', key, extras, value)
      if (response.header.status !== STATUS.ok) {
        throw this.#statusError(node, 'set', key, response)
      }
    })
  }

  /** One `add` per home of `key`, off-ring homes included (see {@link Store.addHomes}). */
  addHomes(key: string, value: Buffer, ttlSeconds: number, count: number): Array<Promise<boolean>> {
    this.#assertValue(key, value)
    assertTtlSeconds(ttlSeconds)
    const expiry = this.#expiry(ttlSeconds, false)
    return this.#homes(key, count).map((node) => this.#addOn(node, key, value, expiry))
  }

  /** The first `count` nodes of the full ring from `key`: the same in every process. */
  #homes(key: string, count: number): NodeHealth[] {
    this.#assertOpen()
    assertStoreKey(key)
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new RangeError(`replica count must be a positive integer, got ${describeValue(count)}`)
    }
    return this.#ring.range(key, Math.min(count, this.#nodes.size)).map((id) => this.#nodes.get(id)!)
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
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new RangeError(`replica count must be a positive integer, got ${describeValue(count)}`)
    }
    const replicas: NodeHealth[] = []
    for (const id of this.#ring.range(key)) {
      const node = this.#nodes.get(id)
      if (node?.up) replicas.push(node)
      if (replicas.length === count) break
    }
    if (replicas.length === 0) {
      throw new StoreUnavailableError(`all ${this.#nodes.size} memcached nodes are down`)
    }
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
    for (const node of this.#nodes.values()) {
      clearTimeout(node.probeTimer)
      node.probeTimer = undefined
      node.connection?.destroy(new NodeFailure('reset', 'store closed'))
      node.connection = undefined
    }
  }

  /**
   * Keeps `nodes` off the ring because someone with a wider view (the tier
   * monitor's shared flag) says they are down, and stops probing them.
   *
   * A node that leaves the hold while off the ring either rejoins at once without
   * a flush (`released: 'flushed'`: the monitor flushed it when it came back, and
   * other processes may already be writing to it), or goes back to this store's
   * own probe-then-flush (`'probe'`: the monitor is gone, nobody vouches for it).
   */
  holdDown(nodes: ReadonlySet<string>, released: 'flushed' | 'probe'): void {
    for (const node of this.#nodes.values()) {
      const held = nodes.has(node.address.id)
      if (held === node.held) continue
      node.held = held
      if (held) {
        clearTimeout(node.probeTimer)
        node.probeTimer = undefined
        if (node.up) this.#markDown(node, new NodeFailure('reset', 'reported down by the tier monitor'))
      } else if (!node.up) {
        if (released === 'flushed') {
          clearTimeout(node.probeTimer)
          node.probeTimer = undefined
          this.#rejoin(node, false)
        } else {
          this.#scheduleProbe(node)
        }
      }
    }
  }

  #route(key: string): { node: NodeHealth; away: boolean } {
    if (this.#liveNodeCount === 0) {
      throw new StoreUnavailableError(`all ${this.#nodes.size} memcached nodes are down`)
    }
    const home = this.#nodes.get(this.#ring.get(key))
    if (home?.up) {
      return { node: home, away: false }
    }
    // range() walks the full ring clockwise from the key: the first live node is
    // exactly the owner on the ring without the down nodes.
    for (const id of this.#ring.range(key)) {
      const node = this.#nodes.get(id)
      if (node?.up) {
        return { node, away: true }
      }
    }
    throw new StoreUnavailableError(`all ${this.#nodes.size} memcached nodes are down`)
  }

  /** memcached's exptime for a relative TTL, capped when the key is away from home. */
  #expiry(ttlSeconds: number, away: boolean): number {
    let ttl = ttlSeconds
    if (away) {
      ttl = ttl === 0 ? this.#fallbackTtlSeconds : Math.min(ttl, this.#fallbackTtlSeconds)
    }
    if (ttl <= THIRTY_DAYS_SECONDS) {
      return ttl
    }
    // memcached reads anything above 30 days as a Unix time.
    const absolute = Math.floor(Date.now() / 1000) + ttl
    // Past 2106 (and 0xffffffff, which means "do not create" to incr): never expire.
    return absolute >= UINT32_MAX ? 0 : absolute
  }

  #connectionFor(node: NodeHealth): Connection {
    if (node.connection === undefined) {
      const connection: Connection = new Connection(node.address, this.#timeoutMs, (failure) =>
        this.#onBroken(node, connection, failure),
      )
      node.connection = connection
    }
    return node.connection
  }

  async #call(
    node: NodeHealth,
    operation: keyof typeof OPCODE,
    key: string,
    extras: Buffer,
    value: Buffer,
  ): Promise<MemjsResponse> {
    const connection = this.#connectionFor(node)
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

  /** Counts one failure per broken connection, not one per request that was on it. */
  #onBroken(node: NodeHealth, connection: Connection, failure: NodeFailure): void {
    if (node.connection === connection) {
      node.connection = undefined
    }
    if (this.#closed || !node.up) {
      return
    }
    node.consecutiveFailures++
    if (node.consecutiveFailures >= this.#failureThreshold) {
      this.#markDown(node, failure)
    }
  }

  #markDown(node: NodeHealth, failure: NodeFailure): void {
    node.up = false
    node.downSince = Date.now()
    this.#liveNodeCount--
    this.#emit({
      type: 'node-down',
      node: node.address.id,
      reason: node.held ? failure.message : `${node.consecutiveFailures} consecutive failures, last: ${failure.message}`,
    })
    if (!node.held) this.#scheduleProbe(node)
  }

  #scheduleProbe(node: NodeHealth): void {
    clearTimeout(node.probeTimer)
    node.probeTimer = setTimeout(() => {
      node.probeTimer = undefined
      this.#probe(node).catch(() => {
        // #probe handles its own failures; this only guards against a stray throw.
      })
    }, this.#retryAfterMs)
    node.probeTimer.unref()
  }

  async #probe(node: NodeHealth): Promise<void> {
    if (this.#closed || node.up || node.held) {
      return
    }
    const connection = this.#connectionFor(node)
    try {
      const version = await connection.request(OPCODE.version, '', EMPTY, EMPTY)
      if (version.header.opcode !== OPCODE.version || version.header.status !== STATUS.ok) {
        const failure = new NodeFailure('garbled', 'garbled reply to version probe')
        connection.breakWith(failure)
        throw failure
      }
      const flush = await connection.request(OPCODE.flush, '', EMPTY, EMPTY)
      if (flush.header.opcode !== OPCODE.flush || flush.header.status !== STATUS.ok) {
        // Alive but not flushable: rejoining would serve stale values, so stay out.
        throw new Error(`flush_all refused: ${statusText(flush)}`)
      }
    } catch (error) {
      if (!this.#closed) {
        this.#emit({ type: 'error', node: node.address.id, error: asError(error) })
        this.#scheduleProbe(node)
      }
      return
    }
    if (this.#closed || node.up || node.held) {
      return
    }
    this.#rejoin(node, true)
  }

  #rejoin(node: NodeHealth, flushed: boolean): void {
    node.up = true
    node.consecutiveFailures = 0
    node.downSince = undefined
    this.#liveNodeCount++
    this.#emit({ type: 'node-up', node: node.address.id, flushed })
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

  #assertValue(key: string, value: Buffer): void {
    if (!Buffer.isBuffer(value)) {
      throw new TypeError(`value must be a Buffer, got ${describeValue(value)}`)
    }
    if (value.length > this.maxValueBytes) {
      throw new ValueTooLargeError(key, value.length, this.maxValueBytes)
    }
  }
}

/** Mutable per-node bookkeeping behind {@link NodeState}. */
class NodeHealth {
  up = true
  /** Kept down by {@link MemcachedStore.holdDown}: not probed, not put back by this store. */
  held = false
  consecutiveFailures = 0
  downSince: number | undefined
  connection: Connection | undefined
  probeTimer: NodeJS.Timeout | undefined
  constructor(readonly address: ServerAddress) {}
}

type FailureKind = 'timeout' | 'io' | 'closed' | 'garbled' | 'reset'

/** The node did not answer properly; counts toward taking it off the ring. */
class NodeFailure extends Error {
  override readonly name = 'NodeFailure'
  constructor(
    readonly kind: FailureKind,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

/** The parts of memjs's Server that its typings hide and this file relies on. */
interface MemjsServerInternals {
  _socket?: Socket
  username?: string
  password?: string
  sock(sasl: boolean, go: (socket: Socket) => void): void
}

interface PendingRequest {
  fail(failure: NodeFailure): void
}

/**
 * One memjs client for one node, used until its first failure and then thrown
 * away. memjs leaves a dead connection in odd states (a half-closed socket after
 * a timeout, a stale partial reply in its read buffer, requests that never
 * settle when the server closes the socket cleanly), so a fresh client is the
 * only state that is known to be good.
 */
class Connection {
  readonly #client: MemjsClient
  readonly #server: MemjsServer
  readonly #sockets = new Set<Socket>()
  readonly #pending = new Map<number, PendingRequest>()
  #corked = false
  readonly #timeoutMs: number
  readonly #onBroken: (failure: NodeFailure) => void
  #seq = 0
  #broken = false

  constructor(address: ServerAddress, timeoutMs: number, onBroken: (failure: NodeFailure) => void) {
    this.#timeoutMs = timeoutMs
    this.#onBroken = onBroken
    // Server built directly: Client.create splits "[::1]:11211" on every colon.
    this.#server = new memjs.Server(address.host, address.port, undefined, undefined, {
      timeout: timeoutMs / 1000,
      conntimeout: timeoutMs / 1000,
      keepAlive: true,
    })
    const internals = this.#server as unknown as MemjsServerInternals
    // memjs falls back to MEMCACHIER_USERNAME/PASSWORD from the environment and
    // would start SASL against a plain memcached; this store does not do SASL.
    internals.username = undefined
    internals.password = undefined
    // Track every socket memjs opens: it forgets some (after a timeout it only
    // half-closes them), and an unreferenced live socket keeps the process alive.
    const originalSock = internals.sock
    internals.sock = (sasl, go) => {
      const before = internals._socket
      originalSock.call(internals, sasl, go)
      const socket = internals._socket
      if (socket !== undefined && socket !== before) {
        this.#track(socket)
      }
    }
    // retries: 1 means no retry (memjs does `--retries > 0`; 0 would mean its default, 2).
    this.#client = new memjs.Client([this.#server], {
      retries: 1,
      failover: false,
      logger: SILENT_LOGGER,
    })
  }

  get broken(): boolean {
    return this.#broken
  }

  /**
   * Sends one request; resolves with the reply whatever its status. Rejects
   * with a {@link NodeFailure} on timeout or connection trouble, never later
   * than `timeoutMs`.
   */
  request(opcode: number, key: string, extras: Buffer, value: Buffer): Promise<MemjsResponse> {
    if (this.#broken) {
      return Promise.reject(new NodeFailure('reset', 'connection already failed'))
    }
    return new Promise<MemjsResponse>((resolve, reject) => {
      // Our own opaque: memjs's seq turns negative after 2^31 requests and then throws.
      this.#seq = (this.#seq + 1) >>> 0
      const seq = this.#seq
      let settled = false
      const settle = (): boolean => {
        if (settled) {
          return false
        }
        settled = true
        clearTimeout(timer)
        this.#pending.delete(seq)
        this.#holdProcessWhileBusy()
        return true
      }
      const fail = (failure: NodeFailure): void => {
        if (settle()) {
          reject(failure)
          this.breakWith(failure)
        }
      }
      const timer = setTimeout(() => {
        fail(new NodeFailure('timeout', `no reply within ${this.#timeoutMs} ms`))
      }, this.#timeoutMs)
      timer.unref()
      this.#pending.set(seq, {
        fail: (failure) => {
          if (settle()) {
            reject(failure)
          }
        },
      })
      try {
        const request = memjs.Utils.makeRequestBuffer(opcode, key, extras, value, seq)
        this.#corkUntilNextTick()
        this.#client.perform(key, request, seq, (error: unknown, response?: MemjsResponse) => {
          if (error) {
            fail(ioFailure(error))
          } else if (response === undefined) {
            fail(new NodeFailure('garbled', 'empty reply'))
          } else if (settle()) {
            resolve(response)
          }
        })
        this.#holdProcessWhileBusy()
      } catch (error) {
        // A local bug (bad argument), not the node's fault.
        if (settle()) {
          reject(asError(error))
        }
      }
    })
  }

  /**
   * memjs writes each request with its own socket.write, one syscall each. A hit
   * sends its value and generation reads in the same tick: corked, they leave in
   * one write (measured: three reads 245 µs → 147 µs).
   */
  #corkUntilNextTick(): void {
    const socket = (this.#server as unknown as { _socket?: Socket; connected?: boolean })._socket
    if (this.#corked || socket === undefined || socket.destroyed) return
    this.#corked = true
    socket.cork()
    process.nextTick(() => {
      this.#corked = false
      socket.uncork()
    })
  }

  /**
   * An idle connection must not keep the process alive (a script that destroys
   * its Kysely but never closes the cache still exits); one with a request in
   * flight must, or the process could exit with the request unanswered.
   */
  #holdProcessWhileBusy(): void {
    const busy = this.#pending.size > 0
    for (const socket of this.#sockets) {
      if (busy) socket.ref()
      else socket.unref()
    }
  }

  /**
   * Discards the connection (once) and fails every request still waiting on it:
   * with `failure` itself when it concerns them all, otherwise as collateral.
   */
  breakWith(failure: NodeFailure, sharedByAll = false): void {
    if (this.#broken) {
      return
    }
    this.destroy(
      sharedByAll
        ? failure
        : new NodeFailure('reset', `connection dropped: ${failure.message}`, { cause: failure }),
    )
    this.#onBroken(failure)
  }

  /** Rejects pending requests with `failure` and destroys every socket. */
  destroy(failure: NodeFailure): void {
    this.#broken = true
    const pending = [...this.#pending.values()]
    this.#pending.clear()
    for (const request of pending) {
      request.fail(failure)
    }
    try {
      // Clears memjs's callbacks and destroys the socket it still knows about.
      this.#server.error(new Error('connection discarded'))
    } catch {
      // Nothing left to clean in memjs.
    }
    for (const socket of this.#sockets) {
      socket.destroy()
    }
    this.#sockets.clear()
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket)
    socket.once('close', () => {
      this.#sockets.delete(socket)
      // A clean close by the server fires no error in memjs: its requests would hang.
      if (!this.#broken && this.#pending.size > 0) {
        this.breakWith(new NodeFailure('closed', 'connection closed by the server'), true)
      }
    })
  }
}

/** Why a reply cannot be the answer to `operation`, or `undefined` when it can. */
function garbledReason(operation: keyof typeof OPCODE, response: MemjsResponse): string | undefined {
  const { magic, opcode, status } = response.header
  if (magic !== RESPONSE_MAGIC || opcode !== OPCODE[operation]) {
    return `magic 0x${magic.toString(16)}, opcode 0x${opcode.toString(16)}`
  }
  if (operation === 'increment' && status === STATUS.ok && response.val.length !== 8) {
    return `a ${response.val.length}-byte counter`
  }
  return undefined
}

function ioFailure(error: unknown): NodeFailure {
  const cause = asError(error)
  const kind: FailureKind = /timed out/i.test(cause.message) ? 'timeout' : 'io'
  return new NodeFailure(kind, cause.message, { cause })
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}

function statusText(response: MemjsResponse): string {
  const text = response.val.length > 0 ? response.val.toString('latin1', 0, 200) : 'no message'
  return `status 0x${response.header.status.toString(16).padStart(2, '0')} (${text})`
}

/** Flags (always 0) and exptime, the extras of set/add. */
function storageExtras(expiry: number): Buffer {
  const extras = Buffer.alloc(8)
  extras.writeUInt32BE(expiry, 4)
  return extras
}

function numberOption(
  name: string,
  value: unknown,
  fallback: number,
  expected: string,
  valid: (value: number) => boolean,
): number {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'number') {
    throw new TypeError(`${name} must be ${expected}, got ${describeValue(value)}`)
  }
  if (!Number.isFinite(value) || !valid(value)) {
    throw new RangeError(`${name} must be ${expected}, got ${describeValue(value)}`)
  }
  return value
}


function assertAmount(amount: unknown): void {
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0) {
    const Kind = typeof amount === 'number' ? RangeError : TypeError
    throw new Kind(`amount must be a non-negative safe integer, got ${describeValue(amount)}`)
  }
}

function assertInitial(initial: unknown): void {
  if (typeof initial !== 'bigint' || initial < 0n || initial >= UINT64_LIMIT) {
    const Kind = typeof initial === 'bigint' ? RangeError : TypeError
    throw new Kind(`initial must be a bigint from 0 to 2^64-1, got ${describeValue(initial)}`)
  }
}
