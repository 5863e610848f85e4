import { isIPv6 } from 'node:net'
import { describe as describeValue } from '../../util/validate.js'

/** One memcached node, parsed from `"host:port"` or `"[ipv6]:port"`. */
export interface ServerAddress {
  /** Host name or IP to connect to; IPv6 without brackets (`::1`). */
  readonly host: string
  /** TCP port, 1 to 65535. */
  readonly port: number
  /**
   * Canonical `host:port` (`[::1]:11211` for IPv6, host name lower-cased). It names
   * the node on the consistent-hash ring, in events and in errors.
   */
  readonly id: string
}

// RFC 1123 labels; also matches dotted IPv4, which is all this needs to accept.
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
const PORT = /^[0-9]{1,5}$/


/**
 * Parses one `"host:port"` entry (`"[::1]:11211"` for IPv6).
 *
 * @param entry The raw configuration value.
 * @param optionName How the value is named in error messages, e.g. `servers[1]`.
 * @throws {TypeError} When the entry is not a non-empty `host:port` string.
 * @throws {RangeError} When the port is not an integer from 1 to 65535.
 */
export function parseServerAddress(entry: unknown, optionName = 'servers'): ServerAddress {
  if (typeof entry !== 'string') {
    throw new TypeError(`${optionName} must be a "host:port" string, got ${describeValue(entry)}`)
  }
  if (entry.length === 0) {
    throw new TypeError(`${optionName} must be a non-empty "host:port" string, got ""`)
  }
  const malformed = (hint = ''): TypeError =>
    new TypeError(`${optionName} must be "host:port"${hint}, got ${describeValue(entry)}`)

  let host: string
  let portText: string
  let ipv6 = false
  if (entry.startsWith('[')) {
    const match = /^\[([^\]]+)\]:([^:]*)$/.exec(entry)
    if (!match || !isIPv6(match[1] ?? '')) {
      throw malformed(' (IPv6 as "[::1]:11211")')
    }
    host = (match[1] ?? '').toLowerCase()
    portText = match[2] ?? ''
    ipv6 = true
  } else {
    const colon = entry.lastIndexOf(':')
    if (colon < 0) {
      throw malformed()
    }
    host = entry.slice(0, colon)
    portText = entry.slice(colon + 1)
    if (host.includes(':')) {
      // A bare IPv6 address is ambiguous: which colon starts the port?
      throw malformed(' (IPv6 as "[::1]:11211")')
    }
    if (!HOST_NAME.test(host)) {
      throw malformed()
    }
    host = host.toLowerCase()
  }

  if (!PORT.test(portText)) {
    throw malformed()
  }
  const port = Number(portText)
  if (port < 1 || port > 65535) {
    throw new RangeError(
      `${optionName} port must be an integer from 1 to 65535, got ${describeValue(entry)}`,
    )
  }
  return { host, port, id: ipv6 ? `[${host}]:${port}` : `${host}:${port}` }
}

/**
 * Parses a non-empty array of `"host:port"` entries, rejecting duplicates (two
 * spellings of the same node would give it two shares of the ring).
 *
 * @param list The raw configuration value.
 * @param optionName The option's name in error messages; entries read `servers[2]`.
 * @throws {TypeError} When `list` is not an array, an entry is malformed or repeated.
 * @throws {RangeError} When the array is empty or a port is out of range.
 */
export function parseServerList(list: unknown, optionName = 'servers'): ServerAddress[] {
  if (!Array.isArray(list)) {
    throw new TypeError(
      `${optionName} must be an array of "host:port" strings, got ${describeValue(list)}`,
    )
  }
  if (list.length === 0) {
    throw new RangeError(`${optionName} must list at least one "host:port", got []`)
  }
  const seen = new Map<string, number>()
  const addresses: ServerAddress[] = []
  // A plain loop, not map(): map() would skip the holes of a sparse array.
  for (let index = 0; index < list.length; index++) {
    const entry: unknown = list[index]
    const address = parseServerAddress(entry, `${optionName}[${index}]`)
    const first = seen.get(address.id)
    if (first !== undefined) {
      throw new TypeError(
        `${optionName}[${index}] repeats ${optionName}[${first}] (${JSON.stringify(address.id)}), got ${describeValue(entry)}`,
      )
    }
    seen.set(address.id, index)
    addresses.push(address)
  }
  return addresses
}
