import type { Response as MemjsResponse } from 'memjs'
import { THIRTY_DAYS_SECONDS } from '../../util/validate.js'

/** The binary-protocol opcodes this store sends. */
export const OPCODE = {
  get: 0x00,
  set: 0x01,
  add: 0x02,
  delete: 0x04,
  increment: 0x05,
  flush: 0x08,
  version: 0x0b,
} as const

/** Opcodes sent only by the node probes, on a connection of their own. */
export const PROBE_OPCODE = {
  stat: 0x10,
  saslAuth: 0x21,
} as const

/** An operation with a key, as named in errors and events. */
export type Operation = keyof typeof OPCODE

/** The reply statuses this store tells apart. */
export const STATUS = {
  ok: 0x00,
  notFound: 0x01,
  exists: 0x02,
  tooLarge: 0x03,
  notStored: 0x05,
  nonNumeric: 0x06,
  /** SASL credentials refused, or a command sent before authenticating. */
  authError: 0x20,
  /** The node has SASL off (no `-S`): it knows no SASL command. */
  unknownCommand: 0x81,
} as const

export const RESPONSE_MAGIC = 0x81
export const REQUEST_MAGIC = 0x80
/** Fixed size of every binary-protocol header. */
export const HEADER_BYTES = 24
const UINT32_MAX = 0xffffffff

/** No extras, no value. */
export const EMPTY = Buffer.alloc(0)

/**
 * memcached's exptime for a relative TTL: as is up to 30 days, a Unix time
 * beyond (memcached reads anything above 30 days as one).
 */
export function exptime(ttlSeconds: number): number {
  if (ttlSeconds <= THIRTY_DAYS_SECONDS) {
    return ttlSeconds
  }
  const absolute = Math.floor(Date.now() / 1000) + ttlSeconds
  // Past 2106 (and 0xffffffff, which means "do not create" to incr): never expire.
  return absolute >= UINT32_MAX ? 0 : absolute
}

/** Flags (always 0) and exptime, the extras of set/add. */
export function storageExtras(expiry: number): Buffer {
  const extras = Buffer.alloc(8)
  extras.writeUInt32BE(expiry, 4)
  return extras
}

/**
 * The extras of incr, built by hand: memjs writes amount and initial as 32-bit
 * numbers and decodes the reply with `hi << 8`, so it cannot carry a clock-sized counter.
 */
export function incrementExtras(amount: number, initial: bigint, expiry: number): Buffer {
  const extras = Buffer.alloc(20)
  extras.writeBigUInt64BE(BigInt(amount), 0)
  extras.writeBigUInt64BE(initial, 8)
  extras.writeUInt32BE(expiry, 16)
  return extras
}

/** Why a reply cannot be the answer to `operation`, or `undefined` when it can. */
export function garbledReason(operation: Operation, response: MemjsResponse): string | undefined {
  const { magic, opcode, status } = response.header
  if (magic !== RESPONSE_MAGIC || opcode !== OPCODE[operation]) {
    return `magic 0x${magic.toString(16)}, opcode 0x${opcode.toString(16)}`
  }
  if (operation === 'increment' && status === STATUS.ok && response.val.length !== 8) {
    return `a ${response.val.length}-byte counter`
  }
  return undefined
}

/** A refusal's status and memcached's own words, for error messages. */
export function statusText(response: MemjsResponse): string {
  return replyStatusText(response.header.status, response.val)
}

/**
 * {@link statusText} from a reply's status and value.
 *
 * ```ts
 * replyStatusText(0x20, Buffer.from('Auth failure.')) // 'status 0x20 (Auth failure.)'
 * ```
 */
export function replyStatusText(status: number, value: Buffer): string {
  const text = value.length > 0 ? value.toString('latin1', 0, 200) : 'no message'
  return `status 0x${status.toString(16).padStart(2, '0')} (${text})`
}
