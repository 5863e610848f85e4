import { readFileSync } from 'node:fs'
import { signingSecrets } from '../util/validate.js'
import type { CliIo } from './cli-io.js'
import type { Command } from './command-names.js'
import { UsageError, usageCheck } from './usage-error.js'

/** The environment variable a single signing secret comes from when --secret-file is not given. */
export const SECRET_ENV = 'KYSELY_MEMCACHE_SECRET'

/** The help block of every command. No flag takes a secret itself: it would show in `ps`. */
export const SECRET_HELP = `Signed values (createQueryCache's secret; see docs/security.md), from the flag or else the environment:
  --secret-file <path>         the processes' signing secrets, one per line, current first
  ${SECRET_ENV}       the secret itself (one; for a rotation use --secret-file)`

/**
 * The signing secrets of a command: the lines of --secret-file (blank lines and
 * one trailing newline ignored), else {@link SECRET_ENV} (empty counts as unset),
 * else none. Each is checked as `createQueryCache` checks `secrets`; no message
 * ever shows a secret.
 *
 * ```ts
 * readSecrets('status', { 'secret-file': '/run/secrets/cache' }, io) // [current, previous]
 * ```
 */
export function readSecrets(command: Command, values: { readonly 'secret-file'?: string }, io: Pick<CliIo, 'env'>): Buffer[] {
  const file = values['secret-file']
  if (file !== undefined) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (error) {
      // Node's message names the file and the reason, nothing of its content.
      throw new UsageError(`--secret-file ${JSON.stringify(file)} cannot be read: ${(error as Error).message}`, command)
    }
    const lines = text.split(/\r?\n/).filter((line) => line !== '')
    if (lines.length === 0) throw new UsageError(`--secret-file ${JSON.stringify(file)} holds no secret`, command)
    return usageCheck(
      command,
      () => signingSecrets(undefined, lines),
      (message) => message.replace(/^secrets\[(\d+)\]/, (_, index: string) => `line ${Number(index) + 1} of --secret-file ${JSON.stringify(file)}`),
    )
  }
  const secret = (io.env ?? process.env)[SECRET_ENV]
  if (secret === undefined || secret === '') return []
  return usageCheck(
    command,
    () => signingSecrets(secret, undefined),
    (message) => message.replace(/^secret\b/, SECRET_ENV),
  )
}
