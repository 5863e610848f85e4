import { parseArgs } from 'node:util'
import type { Command } from './command-names.js'
import { UsageError } from './usage-error.js'

/** A command's flags as parseArgs takes them: each a string or a boolean, none repeatable. */
export type FlagDefinitions = Readonly<Record<string, { readonly type: 'string' | 'boolean'; readonly short?: string }>>

/** The flags {@link parseFlags} found for definitions `F`: a string flag's text, or `true`. */
export type FlagValues<F extends FlagDefinitions> = { readonly [K in keyof F]?: F[K]['type'] extends 'boolean' ? boolean : string }

/** What {@link parseFlags} returns: the flags given, and the arguments that are not flags. */
export interface ParsedFlags<F extends FlagDefinitions> {
  readonly values: FlagValues<F>
  readonly positionals: readonly string[]
}

/** The namespace when --namespace is not given: the library's default. */
export const DEFAULT_NAMESPACE = 'kysely'

/** The --timeout of the commands that talk to memcached once and leave. */
export const DEFAULT_TIMEOUT_MS = 500

/** Entries `warmup` replays at once; the monitor's own default is the same, and its help shows this one. */
export const DEFAULT_WARMUP_CONCURRENCY = 4

/** The flags of every command (all talk to memcached, so all take SASL credentials and signing secrets; see sasl-flags.ts, secret-flags.ts). */
export const COMMON_FLAGS = {
  servers: { type: 'string' },
  namespace: { type: 'string' },
  'sasl-username': { type: 'string' },
  'sasl-password-file': { type: 'string' },
  'secret-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies FlagDefinitions

/** The help lines of {@link COMMON_FLAGS}. */
export const COMMON_HELP = `  --servers <list>      memcached nodes, comma-separated: 10.0.0.1:11211,10.0.0.2:11211 (required)
  --namespace <name>    the caches' namespace (default "${DEFAULT_NAMESPACE}")
  -h, --help            show this help`

/** The --timeout flag of `mode`, `status` and `export`. */
export const TIMEOUT_FLAG = { timeout: { type: 'string' } } as const satisfies FlagDefinitions

/** The help line of {@link TIMEOUT_FLAG}. */
export const TIMEOUT_HELP = `  --timeout <duration>  longest any memcached call may take (default ${DEFAULT_TIMEOUT_MS}ms)`

interface Token {
  kind: string
  name?: string
  value?: string
}

/**
 * Reads `argv` (what follows the command name) against the command's `flags`.
 * Unknown flags, a missing value, a flag given twice and, unless
 * `takesArguments` or --help, any argument that is not a flag are usage errors
 * of `command`; the values are the flags' text, not yet checked.
 */
export function parseFlags<F extends FlagDefinitions>(
  command: Command,
  flags: F,
  argv: readonly string[],
  takesArguments = false,
): ParsedFlags<F> {
  let parsed: { values: FlagValues<F>; positionals: string[]; tokens: Token[] }
  try {
    parsed = parseArgs({ args: attachNegativeValues(flags, argv), options: flags, strict: true, allowPositionals: true, tokens: true }) as unknown as typeof parsed
  } catch (error) {
    const code = (error as { code?: unknown }).code
    let message = (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ')
    // Node's hint about "--" only confuses here: no command takes arguments that start with "-".
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') message = message.replace(/\. To specify a positional.*$/, '')
    throw new UsageError(message.charAt(0).toLowerCase() + message.slice(1), command)
  }
  if (!takesArguments && parsed.positionals.length > 0 && parsed.values['help'] !== true) {
    throw new UsageError(`${command} takes no arguments, got ${parsed.positionals.map((p) => JSON.stringify(p)).join(' ')}`, command)
  }
  // parseArgs keeps the last of a repeated flag; a second --servers is more likely a mistake than an override.
  const given = new Map<string, Array<string | undefined>>()
  for (const token of parsed.tokens) {
    if (token.kind === 'option' && token.name !== undefined) given.set(token.name, [...(given.get(token.name) ?? []), token.value])
  }
  for (const [name, values] of given) {
    if (values.length > 1) {
      const shown = values.every((value) => value === undefined) ? '' : ` (${values.map((value) => JSON.stringify(value)).join(', ')})`
      throw new UsageError(`--${name} was given ${values.length} times${shown}; give it once`, command)
    }
  }
  return { values: parsed.values, positionals: parsed.positionals }
}

/**
 * Joins `--timeout -1s` into `--timeout=-1s`: parseArgs takes a value starting
 * with "-" for a flag, while the flag's own check names it and says what is wrong.
 */
function attachNegativeValues(flags: FlagDefinitions, argv: readonly string[]): string[] {
  const args: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    const next = argv[i + 1]
    if (arg.startsWith('--') && flags[arg.slice(2)]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      args.push(`${arg}=${next}`)
      i++
    } else {
      args.push(arg)
    }
  }
  return args
}
