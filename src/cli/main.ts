#!/usr/bin/env node
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { EXIT, NAME } from './cli-io.js'
import type { CliIo } from './cli-io.js'
import { parseFlags } from './cli-flags.js'
import type { FlagDefinitions, ParsedFlags } from './cli-flags.js'
import { COMMAND_NAMES, isCommand } from './command-names.js'
import type { Command } from './command-names.js'
import { EXPORT_FLAGS, EXPORT_HELP, runExport } from './commands/export.js'
import { MODE_FLAGS, MODE_HELP, runMode } from './commands/mode.js'
import { MONITOR_FLAGS, MONITOR_HELP, runMonitor } from './commands/monitor.js'
import { runStatus, STATUS_FLAGS, STATUS_HELP } from './commands/status.js'
import { runWarmup, WARMUP_FLAGS, WARMUP_HELP } from './commands/warmup.js'
import { messageOf } from './format.js'
import { USAGE } from './usage.js'
import { UsageError } from './usage-error.js'

export { EXIT } from './cli-io.js'
export type { CliIo } from './cli-io.js'

/** A command as {@link main} dispatches to it: its `--help` text, and how it runs after the command name. */
interface CommandEntry {
  readonly help: string
  run(command: Command, argv: readonly string[], io: CliIo): Promise<number>
}

/**
 * The commands by name. Their flags are read, and --help answered, here, so a
 * command starts from flags that parsed, each given once; only `mode` takes an
 * argument (the mode).
 */
const COMMANDS: { readonly [C in Command]: CommandEntry } = {
  monitor: defineCommand(MONITOR_FLAGS, MONITOR_HELP, runMonitor),
  mode: defineCommand(MODE_FLAGS, MODE_HELP, runMode, true),
  status: defineCommand(STATUS_FLAGS, STATUS_HELP, runStatus),
  export: defineCommand(EXPORT_FLAGS, EXPORT_HELP, runExport),
  warmup: defineCommand(WARMUP_FLAGS, WARMUP_HELP, runWarmup),
}

/** How usage errors list the commands: "monitor, mode, status, export or warmup". */
const COMMAND_LIST = `${COMMAND_NAMES.slice(0, -1).join(', ')} or ${COMMAND_NAMES.at(-1)}`

/**
 * The `kysely-memcache` command line, callable without spawning a process.
 *
 * @example
 * // What the bin does:
 * process.exitCode = await main(process.argv.slice(2))
 * // In a test:
 * let out = ''
 * const code = await main(['status', '--servers', '127.0.0.1:11211'], { stdout: { write: (t) => (out += t) }, stderr: process.stderr })
 *
 * @param argv Arguments after the program name.
 * @returns The exit code: 0 done, 1 memcached could not be written or read (or a warm-up entry failed), 2 bad input.
 */
export async function main(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let command: Command | undefined
  try {
    const [first, ...rest] = argv
    if (first === undefined) {
      io.stderr.write(USAGE)
      return EXIT.usage
    }
    if (first === '--help' || first === '-h' || first === 'help') {
      const topic = rest[0]
      io.stdout.write(topic !== undefined && isCommand(topic) ? COMMANDS[topic].help : USAGE)
      return EXIT.ok
    }
    if (!isCommand(first)) {
      throw new UsageError(
        first.startsWith('-')
          ? `expected a command before ${JSON.stringify(first)}: ${COMMAND_LIST}`
          : `unknown command ${JSON.stringify(first)}; expected ${COMMAND_LIST}`,
      )
    }
    command = first
    return await COMMANDS[command].run(command, rest, io)
  } catch (error) {
    if (error instanceof UsageError) {
      const topic = error.command ?? command
      io.stderr.write(`${NAME}: ${error.message}\nRun "${NAME} ${topic ?? ''}${topic === undefined ? '' : ' '}--help" for usage.\n`)
      return EXIT.usage
    }
    io.stderr.write(`${NAME}: ${messageOf(error)}\n`)
    return EXIT.failure
  }
}

/**
 * A command for {@link COMMANDS}: `run` gets its flags as `flags` define them,
 * and arguments besides flags only when `takesArguments`.
 */
function defineCommand<F extends FlagDefinitions & { readonly help: { readonly type: 'boolean' } }>(
  flags: F,
  help: string,
  run: (parsed: ParsedFlags<F>, io: CliIo) => Promise<number>,
  takesArguments = false,
): CommandEntry {
  return {
    help,
    run: async (command, argv, io) => {
      const parsed = parseFlags(command, flags, argv, takesArguments)
      if (parsed.values.help === true) {
        io.stdout.write(help)
        return EXIT.ok
      }
      return await run(parsed, io)
    },
  }
}

/** True when this file is the program being run (directly, through tsx, or through npm's bin symlink). */
function isEntryPoint(): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (error: unknown) => {
      process.stderr.write(`${NAME}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
      process.exitCode = EXIT.failure
    },
  )
}
