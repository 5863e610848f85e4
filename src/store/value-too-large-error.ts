/**
 * A value was not stored because it is larger than the store accepts: either
 * above the store's `maxValueBytes` (then it was never sent) or refused by
 * memcached itself ("Value too large"). Not a node failure: the node is fine.
 *
 * ```ts
 * const cache = createQueryCache({
 *   servers,
 *   onError: (error) => {
 *     if (error instanceof ValueTooLargeError) log.info(`not cached: ${error.key} is ${error.size} bytes`)
 *   },
 * })
 * ```
 */
export class ValueTooLargeError extends Error {
  override readonly name = 'ValueTooLargeError'
  constructor(
    /** The key whose value was refused. */
    readonly key: string,
    /** Size of the refused value in bytes. */
    readonly size: number,
    /** The limit that refused it, in bytes; `undefined` when memcached refused it. */
    readonly limit: number | undefined,
    options?: ErrorOptions,
  ) {
    super(
      limit === undefined
        ? `value for ${JSON.stringify(key)} (${size} bytes) was refused by memcached as too large`
        : `value for ${JSON.stringify(key)} is ${size} bytes, above maxValueBytes ${limit}`,
      options,
    )
  }
}
