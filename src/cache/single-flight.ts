/**
 * In-process coalescing: concurrent callers asking for the same key share one
 * execution. Free (no I/O), so it is always on.
 *
 * Each caller brings the moment its read began (a {@link ticket}) and a
 * `version`: the generations it read, or `undefined` when they prove nothing (a
 * majority did not agree on each). A caller joins a running flight whose
 * database query began after the caller's read did (that query sees every
 * write the caller could know of), or one that read the same proven version
 * (no write replaced those generations in between).
 */
export class SingleFlight<T> {
  readonly #flights = new Map<string, Flight<T>>()
  readonly #retainMs: number
  #clock = 0

  /**
   * @param retainMs How long a settled flight still takes callers whose read
   *   began before its query did (those still in their cache lookup when it
   *   settled; the lookup is bounded by the cache timeout).
   */
  constructor(retainMs = 0) {
    this.#retainMs = retainMs
  }

  /** A moment on this process's order of reads and query starts. */
  ticket(): number {
    return ++this.#clock
  }

  /**
   * Runs `work` unless a flight for `key` can take this caller, in which case it
   * joins that flight's promise (`joined: true`). `work` calls `started()` right
   * before the part late joiners must not miss (the database query), with the
   * proven version that query runs under when it has one (it created the
   * generations it read missing).
   *
   * ```ts
   * const { promise, joined } = flights.run(key, flights.ticket(), version, async (started) => {
   *   started()
   *   return runQuery()
   * })
   * ```
   */
  run(
    key: string,
    readAt: number,
    version: string | undefined,
    work: (started: (version?: string) => void) => Promise<T>,
  ): { readonly promise: Promise<T>; readonly joined: boolean } {
    const running = this.#flights.get(key)
    if (running !== undefined && (running.startedAt > readAt || (version !== undefined && running.version === version))) {
      return { promise: running.promise, joined: true }
    }
    const flight: Flight<T> = { version, startedAt: Number.POSITIVE_INFINITY, promise: undefined as unknown as Promise<T> }
    const forget = (): void => {
      if (this.#flights.get(key) === flight) this.#flights.delete(key)
    }
    flight.promise = work((version) => {
      flight.startedAt = this.ticket()
      if (version !== undefined) flight.version = version
    })
    flight.promise.then(
      () => {
        if (this.#retainMs <= 0) return forget()
        // Settled, it is no shared query any more: only callers whose read began before it did.
        flight.version = undefined
        setTimeout(forget, this.#retainMs).unref()
      },
      forget,
    )
    this.#flights.set(key, flight)
    return { promise: flight.promise, joined: false }
  }
}

interface Flight<T> {
  version: string | undefined
  /** When its database query began; infinity until then. */
  startedAt: number
  promise: Promise<T>
}
