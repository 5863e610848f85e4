import type { Socket } from 'node:net'
import type { SaslCredentials } from '../../util/validate.js'
import { NodeCommandError } from './node-command-error.js'
import type { Conversation } from './node-exchange.js'
import { HEADER_BYTES, PROBE_OPCODE, REQUEST_MAGIC, replyStatusText, RESPONSE_MAGIC, STATUS } from './protocol.js'
import { plainAuthValue, SASL_MECHANISM, saslFailureMessage } from './sasl.js'
import type { ServerAddress } from './server-address.js'

/** One binary-protocol reply, as the node probes read it. */
export interface BinaryReply {
  readonly opcode: number
  readonly status: number
  readonly key: string
  readonly value: Buffer
}

/**
 * A binary-protocol conversation for the node probes, which memcached started
 * with `-S` needs (it turns the text protocol off): SASL PLAIN with `credentials`
 * first, then, once the node accepted, one request with `opcode` (no key, no
 * body). Resolves the replies to it, up to and including the one `isLast`
 * accepts. A refusal of the credentials (or of the request for want of them)
 * throws a {@link NodeCommandError} naming the node and the user.
 *
 * ```ts
 * const replies = await exchange(node, 250, authenticatedCommand(node, { username: 'app', password }, OPCODE.version, () => true))
 * replies[0].value.toString() // '1.6.18'
 * ```
 */
export function authenticatedCommand(
  node: ServerAddress,
  credentials: SaslCredentials,
  opcode: number,
  isLast: (reply: BinaryReply) => boolean,
): Conversation<BinaryReply[]> {
  let socket: Socket | undefined
  let buffered: Buffer = Buffer.alloc(0)
  let authenticated = false
  const replies: BinaryReply[] = []
  const refused = (): NodeCommandError => new NodeCommandError('error', node.id, saslFailureMessage(node.id, credentials))
  return {
    start(connected) {
      socket = connected
      // The command waits for the verdict: memcached answers some commands (version) unauthenticated.
      socket.write(request(PROBE_OPCODE.saslAuth, SASL_MECHANISM, plainAuthValue(credentials)))
    },
    receive(chunk) {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      for (;;) {
        const parsed = parseReply(node, buffered)
        if (parsed === undefined) return undefined
        buffered = buffered.subarray(parsed.bytes)
        const { reply } = parsed
        if (!authenticated) {
          checkAuthReply(node, reply, refused)
          authenticated = true
          socket?.write(request(opcode, '', Buffer.alloc(0)))
          continue
        }
        if (reply.status === STATUS.authError) throw refused()
        if (reply.opcode !== opcode) {
          throw new NodeCommandError('error', node.id, `${node.id} answered opcode 0x${reply.opcode.toString(16)} to opcode 0x${opcode.toString(16)}`)
        }
        replies.push(reply)
        if (isLast(reply)) return replies
      }
    },
    received() {
      return replies.length === 0 && buffered.length === 0 ? '' : `${replies.length} whole replies and ${buffered.length} bytes of the next`
    },
  }
}

/**
 * Accepts the node's answer to SASL auth: success, or "unknown command" from a
 * node with SASL off (it needs no credentials; memjs, under the store, goes on
 * the same way). A refusal throws `refused()`.
 */
function checkAuthReply(node: ServerAddress, reply: BinaryReply, refused: () => NodeCommandError): void {
  if (reply.opcode !== PROBE_OPCODE.saslAuth) {
    throw new NodeCommandError('error', node.id, `${node.id} answered opcode 0x${reply.opcode.toString(16)} to SASL auth`)
  }
  if (reply.status === STATUS.authError) throw refused()
  if (reply.status !== STATUS.ok && reply.status !== STATUS.unknownCommand) {
    throw new NodeCommandError('error', node.id, `unexpected reply to SASL auth from ${node.id}: ${replyStatusText(reply.status, reply.value)}`)
  }
}

/** A request with no extras. */
function request(opcode: number, key: string, value: Buffer): Buffer {
  const keyBytes = Buffer.from(key, 'utf8')
  const buffer = Buffer.alloc(HEADER_BYTES + keyBytes.length + value.length)
  buffer[0] = REQUEST_MAGIC
  buffer[1] = opcode
  buffer.writeUInt16BE(keyBytes.length, 2)
  buffer.writeUInt32BE(keyBytes.length + value.length, 8)
  keyBytes.copy(buffer, HEADER_BYTES)
  value.copy(buffer, HEADER_BYTES + keyBytes.length)
  return buffer
}

/** The first whole reply in `buffer` and its size, or `undefined` while it is incomplete. */
function parseReply(node: ServerAddress, buffer: Buffer): { reply: BinaryReply; bytes: number } | undefined {
  if (buffer.length > 0 && buffer[0] !== RESPONSE_MAGIC) {
    // A text-protocol node ("ERROR\r\n") or not memcached at all.
    throw new NodeCommandError('error', node.id, `${node.id} did not answer in memcached's binary protocol (got ${JSON.stringify(buffer.toString('latin1', 0, 40))})`)
  }
  if (buffer.length < HEADER_BYTES) return undefined
  const bodyBytes = buffer.readUInt32BE(8)
  if (buffer.length < HEADER_BYTES + bodyBytes) return undefined
  const keyBytes = buffer.readUInt16BE(2)
  const extrasBytes = buffer[4]!
  if (keyBytes + extrasBytes > bodyBytes) {
    throw new NodeCommandError('error', node.id, `${node.id} sent a garbled binary-protocol reply`)
  }
  const keyStart = HEADER_BYTES + extrasBytes
  const reply: BinaryReply = {
    opcode: buffer[1]!,
    status: buffer.readUInt16BE(6),
    key: buffer.toString('latin1', keyStart, keyStart + keyBytes),
    value: Buffer.from(buffer.subarray(keyStart + keyBytes, HEADER_BYTES + bodyBytes)),
  }
  return { reply, bytes: HEADER_BYTES + bodyBytes }
}
