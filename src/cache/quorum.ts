/**
 * Majority reads and writes over a key's homes (its fixed replica nodes).
 *
 * A write counts once a majority of homes acknowledged it; a read trusts a value
 * only when a majority of homes hold it. Any read majority shares a node with
 * any write majority, so a value read that way is never older than the last
 * write that counted, whichever nodes this process can reach, restarted empty,
 * paused or flushed. Both settle as soon as the outcome is decided: one slow
 * home does not slow them down.
 */

/** The smallest majority of `homes`. */
export function majorityOf(homes: number): number {
  return Math.floor(homes / 2) + 1
}

/** What a majority read found. */
export type QuorumRead =
  /** A majority of homes hold this value. */
  | { readonly kind: 'agreed'; readonly value: string }
  /** A majority answered, but no value is held by a majority (missing, or homes disagree). */
  | { readonly kind: 'absent' }
  /** Too few homes answered to know. */
  | { readonly kind: 'unknown' }

const ABSENT: QuorumRead = Object.freeze({ kind: 'absent' })
const UNKNOWN: QuorumRead = Object.freeze({ kind: 'unknown' })

/** Reads the homes' answers (`undefined`: the key is absent there; a rejection: no answer). Never rejects. */
export function readQuorum(answers: ReadonlyArray<Promise<Buffer | undefined>>): Promise<QuorumRead> {
  const needed = majorityOf(answers.length)
  if (answers.length === 0) return Promise.resolve(UNKNOWN)
  return new Promise((resolve) => {
    const counts = new Map<string, number>()
    let answered = 0
    let settled = 0
    const settle = (): void => {
      settled++
      if (settled === answers.length) resolve(answered >= needed ? ABSENT : UNKNOWN)
    }
    for (const answer of answers) {
      answer.then(
        (value) => {
          answered++
          if (value !== undefined) {
            const text = value.toString('latin1')
            const count = (counts.get(text) ?? 0) + 1
            counts.set(text, count)
            if (count === needed) resolve({ kind: 'agreed', value: text })
          }
          settle()
        },
        settle,
      )
    }
  })
}

/** Resolves once a majority of `writes` succeeded; rejects (with the first failure) once that cannot happen. */
export function writeQuorum(writes: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const needed = majorityOf(writes.length)
  if (writes.length === 0) return Promise.reject(new Error('a key has no homes to write to'))
  return new Promise((resolve, reject) => {
    let succeeded = 0
    let failed = 0
    let firstFailure: unknown
    for (const write of writes) {
      write.then(
        () => {
          succeeded++
          if (succeeded === needed) resolve()
        },
        (error: unknown) => {
          failed++
          firstFailure ??= error
          if (failed === writes.length - needed + 1) reject(firstFailure)
        },
      )
    }
  })
}
