/**
 * Given to `onError` when a write's invalidation could not be recorded in the
 * cache tier (and `invalidate()` resolves `false`): until the entries expire,
 * other processes may serve results from before that write. This is the one
 * exception to read-your-writes (docs/guarantees.md).
 *
 * ```ts
 * const cache = createQueryCache({
 *   servers,
 *   onError: (error) => {
 *     if (error instanceof InvalidationFailedError) alert(`stale reads possible: ${error.message}`)
 *   },
 * })
 * ```
 */
export class InvalidationFailedError extends Error {
  override readonly name = 'InvalidationFailedError'
  constructor(
    /** What the write should have invalidated. */
    readonly target: { readonly tables: readonly string[]; readonly tags: readonly string[]; readonly namespace: boolean },
    options?: ErrorOptions,
  ) {
    const what = [
      ...(target.namespace ? ['the whole namespace'] : []),
      ...target.tables.map((table) => `table ${table}`),
      ...target.tags.map((tag) => `tag ${tag}`),
    ]
    super(`could not record the invalidation of ${what.join(', ') || 'nothing'}: cached reads of it may be stale until they expire`, options)
  }
}
