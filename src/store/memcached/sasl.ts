import type { SaslCredentials } from '../../util/validate.js'

/** The only mechanism used: memcached's SASL setups (sasldb, `mech_list: plain`) all offer it. */
export const SASL_MECHANISM = 'PLAIN'

/**
 * The body of a SASL PLAIN auth request (RFC 4616): an empty authorization id,
 * the user and the password, NUL-separated, in UTF-8 as memjs sends them.
 *
 * ```ts
 * plainAuthValue({ username: 'app', password: 'pw' }) // <Buffer 00 61 70 70 00 70 77>
 * ```
 */
export function plainAuthValue(credentials: SaslCredentials): Buffer {
  return Buffer.from(`\u0000${credentials.username}\u0000${credentials.password}`, 'utf8')
}

/**
 * Why a node turned this client away, naming the node and the user: never the
 * password, which must not reach an error, event or log line.
 *
 * ```ts
 * saslFailureMessage('10.0.0.1:11211', { username: 'app', password: 'pw' })
 * // 'SASL authentication failed for 10.0.0.1:11211 (user "app")'
 * saslFailureMessage('10.0.0.1:11211', undefined)
 * // '10.0.0.1:11211 requires SASL authentication, and no credentials were given'
 * ```
 */
export function saslFailureMessage(node: string, credentials: SaslCredentials | undefined): string {
  return credentials === undefined
    ? `${node} requires SASL authentication, and no credentials were given`
    : `SASL authentication failed for ${node} (user ${JSON.stringify(credentials.username)})`
}
