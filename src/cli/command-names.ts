/** The CLI's commands, in the order the usage lists them. */
export const COMMAND_NAMES = ['monitor', 'mode', 'status', 'export', 'warmup'] as const

/** One of {@link COMMAND_NAMES}. */
export type Command = (typeof COMMAND_NAMES)[number]

/**
 * Whether `text` names a command. The type guard lets the caller index
 * per-command tables with it.
 */
export function isCommand(text: string): text is Command {
  return (COMMAND_NAMES as readonly string[]).includes(text)
}
