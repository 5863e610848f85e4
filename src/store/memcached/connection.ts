import type { Socket } from 'node:net'
import memjs from 'memjs'
import type { Client as MemjsClient, Response as MemjsResponse, Server as MemjsServer } from 'memjs'
import type { SaslCredentials } from '../../util/validate.js'
import { saslFailureMessage } from './sasl.js'
import type { ServerAddress } from './server-address.js'

const SILENT_LOGGER = { log(): void {} }

/** `auth`: the node turned the SASL credentials (or their absence) away. */
export type FailureKind = 'timeout' | 'refused' | 'io' | 'closed' | 'garbled' | 'reset' | 'auth'

/** The node did not answer properly; counts toward taking it off the ring. */
export class NodeFailure extends Error {
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
  removeAllListeners(event: string): void
}

/**
 * What memjs passes to its callbacks (a string, not an Error) when a reply has
 * status 0x20: the credentials were refused, or a command was sent without them.
 */
const MEMJS_AUTH_FAILURE = /authentication failed/i

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
export class Connection {
  readonly #client: MemjsClient
  readonly #server: MemjsServer
  readonly #sockets = new Set<Socket>()
  readonly #pending = new Map<number, PendingRequest>()
  #corked = false
  readonly #timeoutMs: number
  readonly #onBroken: (failure: NodeFailure) => void
  /** Names the node and user when the node refuses authentication. */
  readonly #authFailure: () => NodeFailure
  #seq = 0
  #broken = false
  /** Whether the sockets are ref'd now (a request is in flight). */
  #holding = true

  /**
   * @param sasl With it, every socket memjs opens authenticates (SASL PLAIN)
   *   before its first request; without it, none does.
   */
  constructor(address: ServerAddress, timeoutMs: number, onBroken: (failure: NodeFailure) => void, sasl?: SaslCredentials) {
    this.#timeoutMs = timeoutMs
    this.#onBroken = onBroken
    this.#authFailure = () => new NodeFailure('auth', saslFailureMessage(address.id, sasl))
    // Server built directly: Client.create splits "[::1]:11211" on every colon.
    this.#server = new memjs.Server(address.host, address.port, undefined, undefined, {
      timeout: timeoutMs / 1000,
      conntimeout: timeoutMs / 1000,
      keepAlive: true,
    })
    const internals = this.#server as unknown as MemjsServerInternals
    // memjs falls back to MEMCACHIER_USERNAME/MEMCACHE_USERNAME (and _PASSWORD) from the
    // environment: only the credentials given count. With both set, memjs's sock()
    // authenticates every new socket (reconnections included) and holds the requests
    // queued on it until the node accepted; a refusal fails them (MEMJS_AUTH_FAILURE).
    internals.username = sasl?.username
    internals.password = sasl?.password
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
            if (typeof error === 'string' && MEMJS_AUTH_FAILURE.test(error)) {
              // Every request on this socket meets the same refusal: fail them all with it.
              this.breakWith(this.#authFailure(), true)
            } else {
              fail(ioFailure(error))
            }
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
    if (busy === this.#holding) return
    this.#holding = busy
    for (const socket of this.#sockets) {
      // Only on a change: on a socket still connecting, Node defers each call as one more 'connect' listener.
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
      // A socket whose authentication failed leaves memjs's 'authenticated' listener
      // behind, holding its first request: it must never run on a later socket.
      ;(this.#server as unknown as MemjsServerInternals).removeAllListeners('authenticated')
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

function ioFailure(error: unknown): NodeFailure {
  const cause = asError(error)
  const code = (cause as NodeJS.ErrnoException).code
  const kind: FailureKind = code === 'ECONNREFUSED' ? 'refused' : /timed out/i.test(cause.message) ? 'timeout' : 'io'
  return new NodeFailure(kind, cause.message, { cause })
}

/** `error` itself when it is an Error, else one carrying its text. */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}
