import { connect } from 'node:net'
import { parseServerAddress } from './server-address.js'
import type { ServerAddress } from './server-address.js'
import { delayMs, describe } from '../../util/validate.js'

/** What {@link probeNode} resolves. */
export type ProbeResult =
  | {
      readonly ok: true
      /** Connect plus `version` round trip, in ms. */
      readonly latencyMs: number
      /** What the node answered, e.g. `1.6.21`. */
      readonly version: string
    }
  | {
      readonly ok: false
      /** `refused`: nothing listens (process dead); `timeout`: no answer in time (hung, SIGSTOPped, unreachable); `error`: anything else. */
      readonly reason: ProbeFailureReason
      readonly message: string
    }

export type ProbeFailureReason = 'refused' | 'timeout' | 'error'

/** A text-protocol command that did not get its answer. */
export class NodeCommandError extends Error {
  override readonly name = 'NodeCommandError'
  constructor(
    readonly reason: ProbeFailureReason,
    /** `host:port`. */
    readonly node: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

// Reply sizes are tiny; a node that talks this much is not memcached.
const MAX_REPLY_BYTES = 1024 * 1024

/**
 * Checks one memcached node over a fresh TCP connection with the text-protocol
 * `version` command. A fresh connection each time, so a node that hangs after
 * accepting (SIGSTOPped: the kernel still completes the handshake) is caught by
 * the timeout rather than by a stale socket. Never rejects.
 *
 * @example
 * const result = await probeNode('10.0.0.3:11211', 250)
 * if (result.ok) console.log(`up, ${result.latencyMs.toFixed(1)} ms`)
 * else console.log(`down: ${result.reason} (${result.message})`) // down: refused (connect ECONNREFUSED 10.0.0.3:11211)
 *
 * @param address `"host:port"` or a parsed {@link ServerAddress}.
 * @param timeoutMs Longest the probe may take, connecting included.
 * @throws {TypeError | RangeError} Only for a malformed address or timeout (synchronously checked, returned as a rejection).
 */
export async function probeNode(address: ServerAddress | string, timeoutMs: number): Promise<ProbeResult> {
  const node = toAddress(address)
  delayMs(timeoutMs, 'timeoutMs')
  const started = performance.now()
  try {
    const reply = await textCommand(node, 'version\r\n', (text) => text.includes('\r\n'), timeoutMs)
    const match = /^VERSION (\S+)\r\n$/.exec(reply)
    if (match === null) {
      return { ok: false, reason: 'error', message: `unexpected reply to version: ${describe(reply)}` }
    }
    return { ok: true, latencyMs: performance.now() - started, version: match[1] ?? '' }
  } catch (error) {
    const failure = asCommandError(node, error)
    return { ok: false, reason: failure.reason, message: failure.message }
  }
}

/**
 * Empties one node with `flush_all`, over a fresh connection. Used before a
 * node that was away takes keys again, so it cannot serve values older than the
 * writes made while it was gone.
 *
 * @example
 * await flushNode('10.0.0.3:11211', 250) // resolves once the node answered OK
 *
 * @throws {NodeCommandError} When the node does not answer `OK` within `timeoutMs`.
 */
export async function flushNode(address: ServerAddress | string, timeoutMs: number): Promise<void> {
  const node = toAddress(address)
  delayMs(timeoutMs, 'timeoutMs')
  let reply: string
  try {
    reply = await textCommand(node, 'flush_all\r\n', (text) => text.includes('\r\n'), timeoutMs)
  } catch (error) {
    const failure = asCommandError(node, error)
    throw new NodeCommandError(failure.reason, node.id, `flush_all on ${node.id} failed: ${failure.message}`, { cause: failure })
  }
  if (reply !== 'OK\r\n') {
    throw new NodeCommandError('error', node.id, `flush_all on ${node.id} answered ${describe(reply)} instead of OK`)
  }
}

/**
 * The node's `stats` (`STAT name value` lines up to `END`), as `name → value`.
 *
 * @example
 * const stats = await readNodeStats('10.0.0.3:11211', 500)
 * stats.curr_items // '1234'
 * stats.uptime     // '86400'
 *
 * @throws {NodeCommandError} When the node does not answer a complete `stats` within `timeoutMs`.
 */
export async function readNodeStats(address: ServerAddress | string, timeoutMs: number): Promise<Record<string, string>> {
  const node = toAddress(address)
  delayMs(timeoutMs, 'timeoutMs')
  let reply: string
  try {
    reply = await textCommand(
      node,
      'stats\r\n',
      (text) => text === 'END\r\n' || text.endsWith('\r\nEND\r\n') || /^(?:SERVER_|CLIENT_)?ERROR[^\r]*\r\n$/.test(text),
      timeoutMs,
    )
  } catch (error) {
    const failure = asCommandError(node, error)
    throw new NodeCommandError(failure.reason, node.id, `stats on ${node.id} failed: ${failure.message}`, { cause: failure })
  }
  const stats: Record<string, string> = {}
  for (const line of reply.split('\r\n')) {
    if (line === '' || line === 'END') continue
    const match = /^STAT (\S+) (.*)$/.exec(line)
    if (match === null) {
      throw new NodeCommandError('error', node.id, `stats on ${node.id} answered ${describe(line)}`)
    }
    stats[match[1] ?? ''] = match[2] ?? ''
  }
  return stats
}

/**
 * Sends `command` on a fresh connection and resolves the reply once `complete`
 * says it is whole. The socket is destroyed on every path and the timer covers
 * connecting too, so nothing outlives `timeoutMs`.
 */
function textCommand(
  node: ServerAddress,
  command: string,
  complete: (reply: string) => boolean,
  timeoutMs: number,
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let reply = ''
    let settled = false
    const socket = connect({ host: node.host, port: node.port })
    socket.setEncoding('latin1')
    socket.setNoDelay(true)
    const finish = (error: NodeCommandError | undefined): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (error === undefined) resolve(reply)
      else reject(error)
    }
    const timer = setTimeout(() => {
      finish(new NodeCommandError('timeout', node.id, `no reply from ${node.id} within ${timeoutMs} ms`))
    }, timeoutMs)
    timer.unref()
    socket.once('connect', () => {
      socket.write(command)
    })
    socket.on('data', (chunk: string) => {
      reply += chunk
      if (complete(reply)) {
        finish(undefined)
      } else if (reply.length > MAX_REPLY_BYTES) {
        finish(new NodeCommandError('error', node.id, `reply from ${node.id} exceeds ${MAX_REPLY_BYTES} bytes`))
      }
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const reason: ProbeFailureReason = error.code === 'ECONNREFUSED' ? 'refused' : error.code === 'ETIMEDOUT' ? 'timeout' : 'error'
      finish(new NodeCommandError(reason, node.id, error.message, { cause: error }))
    })
    socket.once('close', () => {
      finish(new NodeCommandError('error', node.id, `${node.id} closed the connection before a complete reply${reply === '' ? '' : ` (got ${describe(reply)})`}`))
    })
  })
}

function toAddress(address: ServerAddress | string): ServerAddress {
  if (typeof address === 'string') return parseServerAddress(address, 'address')
  if (typeof address === 'object' && address !== null && typeof address.host === 'string' && typeof address.port === 'number') {
    return address
  }
  return parseServerAddress(address, 'address')
}


function asCommandError(node: ServerAddress, error: unknown): NodeCommandError {
  if (error instanceof NodeCommandError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new NodeCommandError('error', node.id, message, { cause: error })
}
