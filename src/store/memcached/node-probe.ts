import { parseServerAddress } from './server-address.js'
import type { ServerAddress } from './server-address.js'
import { delayMs, describe } from '../../util/validate.js'
import type { SaslCredentials } from '../../util/validate.js'
import { authenticatedCommand } from './binary-command.js'
import type { BinaryReply } from './binary-command.js'
import { NodeCommandError } from './node-command-error.js'
import type { ProbeFailureReason } from './node-command-error.js'
import { asCommandError, exchange } from './node-exchange.js'
import type { Conversation } from './node-exchange.js'
import { OPCODE, PROBE_OPCODE, replyStatusText, STATUS } from './protocol.js'

export { NodeCommandError } from './node-command-error.js'
export type { ProbeFailureReason } from './node-command-error.js'

/** What {@link probeNode} resolves. */
export type ProbeResult =
  | {
      readonly ok: true
      /** Connect plus `version` round trip (and SASL authentication, with credentials), in ms. */
      readonly latencyMs: number
      /** What the node answered, e.g. `1.6.21`. */
      readonly version: string
    }
  | {
      readonly ok: false
      /** `refused`: nothing listens (process dead); `timeout`: no answer in time (hung, SIGSTOPped, unreachable); `error`: anything else (SASL refusal included). */
      readonly reason: ProbeFailureReason
      readonly message: string
    }

/**
 * Checks one memcached node over a fresh TCP connection with the `version`
 * command. A fresh connection each time, so a node that hangs after accepting
 * (SIGSTOPped: the kernel still completes the handshake) is caught by the
 * timeout rather than by a stale socket. Never rejects.
 *
 * Without `sasl` it speaks the text protocol; with it, the binary protocol
 * (memcached started with `-S` has no other) and authenticates first: refused
 * credentials are reason `error`, with a message naming the node and the user.
 *
 * @example
 * const result = await probeNode('10.0.0.3:11211', 250)
 * if (result.ok) console.log(`up, ${result.latencyMs.toFixed(1)} ms`)
 * else console.log(`down: ${result.reason} (${result.message})`) // down: refused (connect ECONNREFUSED 10.0.0.3:11211)
 * await probeNode('10.0.0.3:11211', 250, { username: 'app', password })
 * // { ok: false, reason: 'error', message: 'SASL authentication failed for 10.0.0.3:11211 (user "app")' }
 *
 * @param address `"host:port"` or a parsed {@link ServerAddress}.
 * @param timeoutMs Longest the probe may take, connecting included.
 * @param sasl SASL PLAIN credentials, for nodes started with `-S`.
 * @throws {TypeError | RangeError} Only for a malformed address or timeout (synchronously checked, returned as a rejection).
 */
export async function probeNode(address: ServerAddress | string, timeoutMs: number, sasl?: SaslCredentials): Promise<ProbeResult> {
  const node = toAddress(address)
  delayMs(timeoutMs, 'timeoutMs')
  const started = performance.now()
  try {
    let version: string | undefined
    let unexpected: string
    if (sasl === undefined) {
      const reply = await exchange(node, timeoutMs, textConversation('version\r\n', (text) => text.includes('\r\n')))
      version = /^VERSION (\S+)\r\n$/.exec(reply)?.[1]
      unexpected = describe(reply)
    } else {
      const [reply] = await exchange(node, timeoutMs, authenticatedCommand(node, sasl, OPCODE.version, () => true))
      version = reply!.status === STATUS.ok ? reply!.value.toString('latin1') : undefined
      unexpected = replyStatusText(reply!.status, reply!.value)
    }
    if (version === undefined) {
      return { ok: false, reason: 'error', message: `unexpected reply to version: ${unexpected}` }
    }
    return { ok: true, latencyMs: performance.now() - started, version }
  } catch (error) {
    const failure = asCommandError(node, error)
    return { ok: false, reason: failure.reason, message: failure.message }
  }
}

/**
 * Empties one node with `flush_all`, over a fresh connection. Used before a
 * node that was away takes keys again, so it cannot serve values older than the
 * writes made while it was gone. With `sasl`, over the binary protocol after
 * authenticating (see {@link probeNode}).
 *
 * @example
 * await flushNode('10.0.0.3:11211', 250) // resolves once the node answered OK
 *
 * @throws {NodeCommandError} When the node does not answer `OK` within `timeoutMs`.
 */
export async function flushNode(address: ServerAddress | string, timeoutMs: number, sasl?: SaslCredentials): Promise<void> {
  const node = toAddress(address)
  delayMs(timeoutMs, 'timeoutMs')
  let refusal: string | undefined
  try {
    if (sasl === undefined) {
      const reply = await exchange(node, timeoutMs, textConversation('flush_all\r\n', (text) => text.includes('\r\n')))
      if (reply !== 'OK\r\n') refusal = describe(reply)
    } else {
      const [reply] = await exchange(node, timeoutMs, authenticatedCommand(node, sasl, OPCODE.flush, () => true))
      if (reply!.status !== STATUS.ok) refusal = replyStatusText(reply!.status, reply!.value)
    }
  } catch (error) {
    const failure = asCommandError(node, error)
    throw new NodeCommandError(failure.reason, node.id, `flush_all on ${node.id} failed: ${failure.message}`, { cause: failure })
  }
  if (refusal !== undefined) {
    throw new NodeCommandError('error', node.id, `flush_all on ${node.id} answered ${refusal} instead of OK`)
  }
}

/**
 * The node's `stats` (`STAT name value` lines up to `END`), as `name → value`.
 * With `sasl`, over the binary protocol after authenticating (see {@link probeNode}).
 *
 * @example
 * const stats = await readNodeStats('10.0.0.3:11211', 500)
 * stats.curr_items // '1234'
 * stats.uptime     // '86400'
 *
 * @throws {NodeCommandError} When the node does not answer a complete `stats` within `timeoutMs`.
 */
export async function readNodeStats(address: ServerAddress | string, timeoutMs: number, sasl?: SaslCredentials): Promise<Record<string, string>> {
  const node = toAddress(address)
  delayMs(timeoutMs, 'timeoutMs')
  let reply: string | BinaryReply[]
  try {
    reply =
      sasl === undefined
        ? await exchange(
            node,
            timeoutMs,
            textConversation(
              'stats\r\n',
              (text) => text === 'END\r\n' || text.endsWith('\r\nEND\r\n') || /^(?:SERVER_|CLIENT_)?ERROR[^\r]*\r\n$/.test(text),
            ),
          )
        : // One reply per stat, then one with an empty key.
          await exchange(node, timeoutMs, authenticatedCommand(node, sasl, PROBE_OPCODE.stat, (stat) => stat.key === '' || stat.status !== STATUS.ok))
  } catch (error) {
    const failure = asCommandError(node, error)
    throw new NodeCommandError(failure.reason, node.id, `stats on ${node.id} failed: ${failure.message}`, { cause: failure })
  }
  return typeof reply === 'string' ? parseTextStats(node, reply) : binaryStats(node, reply)
}

function parseTextStats(node: ServerAddress, reply: string): Record<string, string> {
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

function binaryStats(node: ServerAddress, replies: readonly BinaryReply[]): Record<string, string> {
  const last = replies.at(-1)!
  if (last.status !== STATUS.ok) {
    throw new NodeCommandError('error', node.id, `stats on ${node.id} answered ${replyStatusText(last.status, last.value)}`)
  }
  const stats: Record<string, string> = {}
  for (const stat of replies.slice(0, -1)) stats[stat.key] = stat.value.toString('latin1')
  return stats
}

/** Sends `command` and resolves the reply once `complete` says it is whole. */
function textConversation(command: string, complete: (reply: string) => boolean): Conversation<string> {
  let reply = ''
  return {
    start(socket) {
      socket.write(command)
    },
    receive(chunk) {
      reply += chunk.toString('latin1')
      return complete(reply) ? reply : undefined
    },
    received() {
      return reply === '' ? '' : describe(reply)
    },
  }
}

function toAddress(address: ServerAddress | string): ServerAddress {
  if (typeof address === 'string') return parseServerAddress(address, 'address')
  if (typeof address === 'object' && address !== null && typeof address.host === 'string' && typeof address.port === 'number') {
    return address
  }
  return parseServerAddress(address, 'address')
}
