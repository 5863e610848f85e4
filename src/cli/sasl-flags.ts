import { readFileSync } from 'node:fs'
import { saslCredentials } from '../util/validate.js'
import type { SaslCredentials } from '../util/validate.js'
import type { CliIo } from './cli-io.js'
import type { Command } from './command-names.js'
import { UsageError, usageCheck } from './usage-error.js'

/** The environment variables the SASL credentials come from when the flags are not given. */
export const SASL_USERNAME_ENV = 'KYSELY_MEMCACHE_SASL_USERNAME'
export const SASL_PASSWORD_ENV = 'KYSELY_MEMCACHE_SASL_PASSWORD'

/** The help block every command that talks to memcached shows. No password flag: it would show in `ps`. */
export const SASL_HELP = `SASL authentication (memcached started with -S), from the flags or else the environment:
  --sasl-username <name>       user to authenticate as (SASL PLAIN); needs --sasl-password-file
  --sasl-password-file <path>  file holding the password (a trailing newline is ignored)
  ${SASL_USERNAME_ENV}, ${SASL_PASSWORD_ENV}
                               the same from the environment: set both or neither`

/**
 * The SASL credentials of a command: --sasl-username with --sasl-password-file
 * (the file's content, one trailing newline stripped) when given, else
 * {@link SASL_USERNAME_ENV} with {@link SASL_PASSWORD_ENV} from `io.env`
 * (default `process.env`; empty counts as unset), else none. Half a pair is a
 * usage error of `command`; no message ever shows the password.
 *
 * ```ts
 * readSasl('status', { 'sasl-username': 'app', 'sasl-password-file': '/run/secrets/memcached' }, io)
 * // { username: 'app', password: '…' }
 * ```
 */
export function readSasl(
  command: Command,
  values: { readonly 'sasl-username'?: string; readonly 'sasl-password-file'?: string },
  io: Pick<CliIo, 'env'>,
): SaslCredentials | undefined {
  const username = values['sasl-username']
  const file = values['sasl-password-file']
  if (username !== undefined || file !== undefined) {
    if (file === undefined) throw new UsageError('--sasl-username needs --sasl-password-file (there is no password flag: it would show in ps)', command)
    if (username === undefined) throw new UsageError('--sasl-password-file needs --sasl-username', command)
    return checked(command, username, readPassword(command, file), '--sasl-username', `the password in --sasl-password-file ${JSON.stringify(file)}`)
  }
  const env = io.env ?? process.env
  const fromEnv = nonEmpty(env[SASL_USERNAME_ENV])
  const passwordFromEnv = nonEmpty(env[SASL_PASSWORD_ENV])
  if (fromEnv === undefined && passwordFromEnv === undefined) return undefined
  if (fromEnv === undefined || passwordFromEnv === undefined) {
    const [set, unset] = fromEnv === undefined ? [SASL_PASSWORD_ENV, SASL_USERNAME_ENV] : [SASL_USERNAME_ENV, SASL_PASSWORD_ENV]
    throw new UsageError(`${set} is set but ${unset} is not; set both or neither`, command)
  }
  return checked(command, fromEnv, passwordFromEnv, SASL_USERNAME_ENV, SASL_PASSWORD_ENV)
}

/** The password in `file`, without one trailing newline (what `echo secret > file` leaves). */
function readPassword(command: Command, file: string): string {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    // Node's message names the file and the reason, nothing of its content.
    throw new UsageError(`--sasl-password-file ${JSON.stringify(file)} cannot be read: ${(error as Error).message}`, command)
  }
  const password = text.replace(/\r?\n$/, '')
  if (password === '') throw new UsageError(`--sasl-password-file ${JSON.stringify(file)} is empty`, command)
  return password
}

/** The library's own check, its messages naming where each value came from. */
function checked(command: Command, username: string, password: string, usernameSource: string, passwordSource: string): SaslCredentials {
  return usageCheck(
    command,
    () => saslCredentials({ username, password }, 'sasl'),
    (message) => message.replace(/^sasl\.username/, usernameSource).replace(/^sasl\.password/, passwordSource),
  )
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
