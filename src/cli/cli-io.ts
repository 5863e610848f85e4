/** The program's name: it starts every line the CLI writes about itself. */
export const NAME = 'kysely-memcache'

/** Exit codes of the CLI. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const

/** Where the CLI writes, and what ends `monitor` (and interrupts `warmup`). */
export interface CliIo {
  /** `warmup` draws a progress bar when `isTTY` is true (then it must be a TTY stream such as `process.stdout`), plain lines otherwise. */
  readonly stdout: { write(text: string): unknown; readonly isTTY?: boolean }
  readonly stderr: { write(text: string): unknown }
  /** Ends `kysely-memcache monitor`, or stops `warmup` from starting more entries, when aborted. Default: SIGINT or SIGTERM. */
  readonly signal?: AbortSignal
  /** Where KYSELY_MEMCACHE_SASL_USERNAME and KYSELY_MEMCACHE_SASL_PASSWORD are read. Default: `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>
}
