import type { Command } from './command-names.js'

/** Bad command-line input: exit code 2, and a pointer to the command's `--help`. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
  constructor(
    message: string,
    readonly command?: Command,
  ) {
    super(message)
  }
}

/**
 * Runs `check` and returns its result; whatever it throws becomes a
 * {@link UsageError} of `command`, its message passed through `reword` first.
 * The library's validators name options as an API caller writes them, so the
 * CLI uses this to report the same checks under its flags' names.
 */
export function usageCheck<T>(command: Command, check: () => T, reword: (message: string) => string = (message) => message): T {
  try {
    return check()
  } catch (error) {
    throw new UsageError(reword((error as Error).message), command)
  }
}
