/**
 * A count with its noun, for log lines.
 *
 * ```ts
 * plural(1, 'entry', 'entries') // '1 entry'
 * ```
 */
export function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`
}

/**
 * What an error says, for log lines.
 *
 * ```ts
 * errorMessage(new Error('ECONNREFUSED')) // 'ECONNREFUSED'
 * ```
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
