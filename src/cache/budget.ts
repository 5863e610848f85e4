/**
 * Cache work for one query, all steps together, stays within one cache timeout:
 * each bounded step is charged what it waited.
 *
 * ```ts
 * const budget = new Budget(timeoutMs - lookupMs)
 * const stored = await budget.bound(store.set(key, value, ttl).then(() => true, () => false), false)
 * ```
 */
export class Budget {
  #leftMs: number

  constructor(leftMs: number) {
    this.#leftMs = leftMs
  }

  /**
   * `work`, or `late` if it does not settle within what is left; it then goes
   * on in the background. `work` must not reject.
   */
  async bound<T>(work: Promise<T>, late: T): Promise<T> {
    if (this.#leftMs <= 0) return late
    const started = performance.now()
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<T>((resolve) => {
      timer = setTimeout(() => resolve(late), this.#leftMs)
    })
    try {
      return await Promise.race([work, expired])
    } finally {
      clearTimeout(timer)
      this.#leftMs -= performance.now() - started
    }
  }
}
