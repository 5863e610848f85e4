/**
 * One read of the cache: a value found, none there, or the cache could not
 * tell (the store failed). Unlike a missing value, a failed read proves nothing.
 *
 * ```ts
 * const entry = await lookup(store, key)
 * if (entry.kind === 'found') return decode(entry.value)
 * if (entry.kind === 'failed') return runWithoutCache()
 * ```
 */
export type Lookup<T> =
  | { readonly kind: 'found'; readonly value: T }
  | { readonly kind: 'absent' }
  | { readonly kind: 'failed' }

export const ABSENT: Lookup<never> = Object.freeze({ kind: 'absent' })
export const FAILED: Lookup<never> = Object.freeze({ kind: 'failed' })

/**
 * Reads `key`, a failure becoming `FAILED` (reported to `onFailure` when given).
 *
 * ```ts
 * const lock = await lookup(store, lockKey(key))
 * if (lock.kind === 'failed') return fallThrough()
 * ```
 */
export async function lookup(
  store: { get(key: string): Promise<Buffer | undefined> },
  key: string,
  onFailure?: (error: unknown) => void,
): Promise<Lookup<Buffer>> {
  try {
    const value = await store.get(key)
    return value === undefined ? ABSENT : { kind: 'found', value }
  } catch (error) {
    onFailure?.(error)
    return FAILED
  }
}
