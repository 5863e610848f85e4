import { describe } from './validate.js'

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
// One or more `<number><unit>` parts (`1h30m`), or a plain number of milliseconds.
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y
const PLAIN = /^\d+(?:\.\d+)?$/

/** Options of {@link parseDuration}. */
export interface ParseDurationOptions {
  /** Accept `0` (e.g. `--settle 0`). Default `false`: durations are positive. */
  allowZero?: boolean
}

/**
 * Parses a command-line duration into milliseconds: `250ms`, `1s`, `30s`, `10m`,
 * `1h`, `1d`, combinations such as `1m30s`, or a plain number of milliseconds.
 *
 * @example
 * parseDuration('250ms', '--probe-timeout') // 250
 * parseDuration('10m', '--for')             // 600000
 * parseDuration('1m30s', '--settle')        // 90000
 * parseDuration('1500', '--interval')       // 1500
 * parseDuration('soon', '--for')            // throws RangeError: --for must be a duration like ...
 *
 * @param text The flag's value.
 * @param flagName How the flag is named in the error message, e.g. `--interval`.
 * @throws {RangeError} When `text` is not a duration, or is zero without `allowZero`.
 */
export function parseDuration(text: string, flagName: string, options: ParseDurationOptions = {}): number {
  const fail = (): RangeError =>
    new RangeError(
      `${flagName} must be a ${options.allowZero === true ? '' : 'positive '}duration like 250ms, 1s, 30s, 10m, 1h or 1d (a plain number is milliseconds), got ${describe(text)}`,
    )
  if (typeof text !== 'string') throw fail()
  const trimmed = text.trim()
  let ms: number
  if (PLAIN.test(trimmed)) {
    ms = Number(trimmed)
  } else {
    ms = 0
    PART.lastIndex = 0
    let parts = 0
    while (PART.lastIndex < trimmed.length) {
      const match = PART.exec(trimmed)
      if (match === null) throw fail()
      ms += Number(match[1]) * (UNIT_MS[match[2] ?? ''] ?? Number.NaN)
      parts++
    }
    if (parts === 0) throw fail()
  }
  // Timers count whole milliseconds.
  ms = Math.round(ms)
  if (!Number.isSafeInteger(ms) || ms < 0 || (ms === 0 && options.allowZero !== true)) throw fail()
  return ms
}

/**
 * A compact rendering of a span of time, the inverse of {@link parseDuration}
 * for display: the two largest units, no spaces.
 *
 * @example
 * formatDuration(192_000)   // '3m12s'
 * formatDuration(250)       // '250ms'
 * formatDuration(3_720_000) // '1h2m'
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms)
  if (ms < 0) return `-${formatDuration(-ms)}`
  if (ms < 1000) return `${Math.round(ms)}ms`
  const totalSeconds = Math.floor(ms / 1000)
  const days = Math.floor(totalSeconds / 86_400)
  const hours = Math.floor(totalSeconds / 3600) % 24
  const minutes = Math.floor(totalSeconds / 60) % 60
  const seconds = totalSeconds % 60
  if (days > 0) return hours > 0 ? `${days}d${hours}h` : `${days}d`
  if (hours > 0) return minutes > 0 ? `${hours}h${minutes}m` : `${hours}h`
  if (minutes > 0) return seconds > 0 ? `${minutes}m${seconds}s` : `${minutes}m`
  return `${seconds}s`
}
