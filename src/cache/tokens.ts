import type { Generations } from './generations.js'
import type { QuorumRead } from './quorum.js'

/** Generation tokens that prove the state of every table read, or none that do. */
export type Tokens = { readonly kind: 'proven'; readonly tokens: readonly string[] } | { readonly kind: 'unproven' }

export const UNPROVEN: Tokens = Object.freeze({ kind: 'unproven' })

/**
 * Proven when a majority agreed on every generation; else they prove nothing.
 *
 * ```ts
 * agreedTokens([{ kind: 'agreed', value: 'a' }, { kind: 'absent' }]) // UNPROVEN
 * ```
 */
export function agreedTokens(read: readonly QuorumRead[]): Tokens {
  const tokens: string[] = []
  for (const generation of read) {
    if (generation.kind !== 'agreed') return UNPROVEN
    tokens.push(generation.value)
  }
  return { kind: 'proven', tokens }
}

/**
 * The generations to store a result under, read before its query: those a
 * majority held, with fresh ones for any no majority held. Unproven when any
 * is unknown (too few homes answered) or could not be created (`failed` hears
 * why): nothing is stored then.
 */
export async function currentTokens(
  generations: Generations,
  keys: readonly string[],
  read: readonly QuorumRead[],
  failed: (error: unknown) => void,
): Promise<Tokens> {
  if (read.some((generation) => generation.kind === 'unknown')) return UNPROVEN
  try {
    const tokens = await Promise.all(
      keys.map((key, i) => {
        const generation = read[i]!
        return generation.kind === 'agreed' ? generation.value : generations.create(key)
      }),
    )
    return { kind: 'proven', tokens }
  } catch (error) {
    failed(error)
    return UNPROVEN
  }
}

/** Whether `kept` (an entry's or a near copy's) are exactly the tokens a majority holds `now`. */
export function sameTokens(kept: readonly string[], now: readonly string[]): boolean {
  if (kept.length !== now.length) return false
  for (let i = 0; i < kept.length; i++) if (kept[i] !== now[i]) return false
  return true
}

/** The version a flight is shared by: only proven tokens make one. */
export function versionOf(tokens: Tokens): string | undefined {
  return tokens.kind === 'proven' ? tokens.tokens.join(',') : undefined
}
