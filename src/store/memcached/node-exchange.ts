import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { NodeCommandError } from './node-command-error.js'
import type { ProbeFailureReason } from './node-command-error.js'
import type { ServerAddress } from './server-address.js'

// Reply sizes are tiny; a node that talks this much is not memcached.
const MAX_REPLY_BYTES = 1024 * 1024

/** One conversation with a node, as {@link exchange} runs it. */
export interface Conversation<T> {
  /** Called once connected: writes the first request. */
  start(socket: Socket): void
  /**
   * Takes each chunk read; returns the result once the reply is whole. May write
   * the next request (on the socket `start` got). Throws a {@link NodeCommandError}
   * for a reply that cannot be right.
   */
  receive(chunk: Buffer): T | undefined
  /** What was read so far, for the error when the node closes first; `''` when nothing. */
  received(): string
}

/**
 * Runs `conversation` on a fresh connection to `node`. The socket is destroyed
 * on every path and the timer covers connecting too, so nothing outlives
 * `timeoutMs`.
 */
export function exchange<T>(node: ServerAddress, timeoutMs: number, conversation: Conversation<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let bytes = 0
    let settled = false
    const socket = connect({ host: node.host, port: node.port })
    socket.setNoDelay(true)
    const finish = (outcome: { result: T } | { error: NodeCommandError }): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if ('result' in outcome) resolve(outcome.result)
      else reject(outcome.error)
    }
    const timer = setTimeout(() => {
      finish({ error: new NodeCommandError('timeout', node.id, `no reply from ${node.id} within ${timeoutMs} ms`) })
    }, timeoutMs)
    timer.unref()
    socket.once('connect', () => {
      conversation.start(socket)
    })
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      let result: T | undefined
      try {
        result = conversation.receive(chunk)
      } catch (error) {
        finish({ error: asCommandError(node, error) })
        return
      }
      if (result !== undefined) {
        finish({ result })
      } else if (bytes > MAX_REPLY_BYTES) {
        finish({ error: new NodeCommandError('error', node.id, `reply from ${node.id} exceeds ${MAX_REPLY_BYTES} bytes`) })
      }
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const reason: ProbeFailureReason = error.code === 'ECONNREFUSED' ? 'refused' : error.code === 'ETIMEDOUT' ? 'timeout' : 'error'
      finish({ error: new NodeCommandError(reason, node.id, error.message, { cause: error }) })
    })
    socket.once('close', () => {
      const got = conversation.received()
      finish({ error: new NodeCommandError('error', node.id, `${node.id} closed the connection before a complete reply${got === '' ? '' : ` (got ${got})`}`) })
    })
  })
}

/** `error` as a {@link NodeCommandError} of `node` (reason `error` unless it is one already). */
export function asCommandError(node: ServerAddress, error: unknown): NodeCommandError {
  if (error instanceof NodeCommandError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new NodeCommandError('error', node.id, message, { cause: error })
}
