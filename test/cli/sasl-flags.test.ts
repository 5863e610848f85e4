import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readSasl, SASL_PASSWORD_ENV, SASL_USERNAME_ENV } from '../../src/cli/sasl-flags.js'
import { UsageError } from '../../src/cli/usage-error.js'
import { run } from './run-cli.js'

const PASSWORD = 'flags-Pw-6a1d'

let directory: string

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'kmc-sasl-flags-'))
})

afterAll(async () => {
  await rm(directory, { recursive: true, force: true })
})

async function passwordFile(name: string, content: string): Promise<string> {
  const file = join(directory, name)
  await writeFile(file, content)
  return file
}

/** The usage error `read` throws (fails the test when it throws none). */
function usageError(read: () => unknown): UsageError {
  try {
    read()
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError)
    return error as UsageError
  }
  throw new Error('no usage error')
}

describe('readSasl', () => {
  it('reads nothing without flags or environment, and empty variables count as unset', () => {
    expect(readSasl('status', {}, { env: {} })).toBeUndefined()
    expect(readSasl('status', {}, { env: { [SASL_USERNAME_ENV]: '', [SASL_PASSWORD_ENV]: '' } })).toBeUndefined()
  })

  it('reads both environment variables, and one alone is a usage error that never shows the password', () => {
    expect(readSasl('status', {}, { env: { [SASL_USERNAME_ENV]: 'app', [SASL_PASSWORD_ENV]: PASSWORD } })).toEqual({ username: 'app', password: PASSWORD })
    expect(usageError(() => readSasl('status', {}, { env: { [SASL_USERNAME_ENV]: 'app' } })).message).toBe(
      'KYSELY_MEMCACHE_SASL_USERNAME is set but KYSELY_MEMCACHE_SASL_PASSWORD is not; set both or neither',
    )
    const passwordOnly = usageError(() => readSasl('mode', {}, { env: { [SASL_PASSWORD_ENV]: PASSWORD } }))
    expect(passwordOnly).toMatchObject({ command: 'mode', message: 'KYSELY_MEMCACHE_SASL_PASSWORD is set but KYSELY_MEMCACHE_SASL_USERNAME is not; set both or neither' })
    const nul = usageError(() => readSasl('status', {}, { env: { [SASL_USERNAME_ENV]: 'app', [SASL_PASSWORD_ENV]: `x\u0000${PASSWORD}` } }))
    expect(nul.message).toBe('KYSELY_MEMCACHE_SASL_PASSWORD must be a non-empty string without NUL characters (value not shown)')
  })

  it('reads the password file without its trailing newline; the flags win over the environment', async () => {
    const file = await passwordFile('lf', `${PASSWORD}\n`)
    const env = { [SASL_USERNAME_ENV]: 'other', [SASL_PASSWORD_ENV]: 'other-pw' }
    expect(readSasl('status', { 'sasl-username': 'app', 'sasl-password-file': file }, { env })).toEqual({ username: 'app', password: PASSWORD })
    const crlf = await passwordFile('crlf', `${PASSWORD}\r\n`)
    expect(readSasl('status', { 'sasl-username': 'app', 'sasl-password-file': crlf }, { env: {} })?.password).toBe(PASSWORD)
    const bare = await passwordFile('bare', PASSWORD)
    expect(readSasl('status', { 'sasl-username': 'app', 'sasl-password-file': bare }, { env: {} })?.password).toBe(PASSWORD)
  })

  it('wants both flags, a readable non-empty file, and never shows what the file holds', async () => {
    expect(usageError(() => readSasl('status', { 'sasl-username': 'app' }, { env: {} })).message).toBe(
      '--sasl-username needs --sasl-password-file (there is no password flag: it would show in ps)',
    )
    const file = await passwordFile('alone', PASSWORD)
    expect(usageError(() => readSasl('status', { 'sasl-password-file': file }, { env: {} })).message).toBe('--sasl-password-file needs --sasl-username')
    const missing = join(directory, 'missing')
    expect(usageError(() => readSasl('status', { 'sasl-username': 'app', 'sasl-password-file': missing }, { env: {} })).message).toMatch(
      new RegExp(`^--sasl-password-file "${missing.replaceAll('/', '\\/')}" cannot be read: ENOENT`),
    )
    const empty = await passwordFile('empty', '\n')
    expect(usageError(() => readSasl('status', { 'sasl-username': 'app', 'sasl-password-file': empty }, { env: {} })).message).toBe(
      `--sasl-password-file ${JSON.stringify(empty)} is empty`,
    )
    const nul = await passwordFile('nul', `a\u0000${PASSWORD}`)
    const error = usageError(() => readSasl('status', { 'sasl-username': 'app', 'sasl-password-file': nul }, { env: {} }))
    expect(error.message).toBe(`the password in --sasl-password-file ${JSON.stringify(nul)} must be a non-empty string without NUL characters (value not shown)`)
    expect(usageError(() => readSasl('status', { 'sasl-username': 'a\u0000b', 'sasl-password-file': file }, { env: {} })).message).toMatch(/^--sasl-username must be a non-empty string without NUL characters, got /)
  })
})

describe('the SASL flags on the command line', () => {
  const commands: Array<[string, string[]]> = [
    ['monitor', ['monitor', '--servers', '127.0.0.1:1']],
    ['mode', ['mode', 'degraded', '--for', '1m', '--servers', '127.0.0.1:1']],
    ['status', ['status', '--servers', '127.0.0.1:1']],
    ['export', ['export', '--servers', '127.0.0.1:1']],
    ['warmup', ['warmup', '--from', 'hot.json', '--database-url', 'postgres://db/x', '--servers', '127.0.0.1:1']],
  ]

  it.each(commands)('%s: only one of the two environment variables is a usage error (exit 2) that never shows the password', async (command, argv) => {
    const { code, stdout, stderr } = await run(argv, undefined, false, { [SASL_PASSWORD_ENV]: PASSWORD })
    expect(code).toBe(2)
    expect(stderr).toBe(
      `kysely-memcache: KYSELY_MEMCACHE_SASL_PASSWORD is set but KYSELY_MEMCACHE_SASL_USERNAME is not; set both or neither\nRun "kysely-memcache ${command} --help" for usage.\n`,
    )
    expect(stdout).toBe('')
  })

  it.each(commands)('%s: documents the flags and the environment variables in its help', async (command) => {
    const { code, stdout } = await run([command, '--help'])
    expect(code).toBe(0)
    expect(stdout).toContain('--sasl-username <name>')
    expect(stdout).toContain('--sasl-password-file <path>')
    expect(stdout).toContain('KYSELY_MEMCACHE_SASL_USERNAME, KYSELY_MEMCACHE_SASL_PASSWORD')
  })

  it('has no flag that takes the password itself', async () => {
    for (const flag of ['--sasl-password', '--password']) {
      const { code, stderr } = await run(['status', '--servers', '127.0.0.1:1', flag, PASSWORD])
      expect(code).toBe(2)
      expect(stderr).toContain(`unknown option '${flag}'`)
      expect(stderr).not.toContain(PASSWORD)
    }
    expect((await run(['--help'])).stdout).toContain('No flag takes the password itself')
  })
})
