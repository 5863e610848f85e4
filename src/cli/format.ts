import { formatDuration } from '../util/duration.js'

/** An instant (ms since the epoch) as ISO 8601 UTC, as the output shows times. */
export function iso(ms: number): string {
  return new Date(ms).toISOString()
}

/**
 * The time from `from` to `to` (ms since the epoch) for people, e.g. `3m12s`;
 * never negative, since the instants may come from hosts whose clocks differ.
 */
export function formatSpan(from: number, to: number): string {
  return formatDuration(Math.max(0, to - from))
}

/** `1 entry`, `12 entries`: how the output counts manifest entries. */
export function countEntries(count: number): string {
  return `${count} ${count === 1 ? 'entry' : 'entries'}`
}

/** `text` cut to `length` characters, an ellipsis marking the cut. */
export function clip(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text
}

/** What the CLI shows of a thrown value: an Error's message, anything else as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
