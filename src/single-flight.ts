/**
 * In-process coalescing: concurrent callers asking for the same flight key share
 * one execution. Free (no I/O), so it is always on.
 */
export class SingleFlight<T> {
  readonly #flights = new Map<string, Promise<T>>()

  /** Number of flights in progress. */
  get size(): number {
    return this.#flights.size
  }

  /**
   * Runs `work` unless a flight for `key` is already running, in which case its
   * promise is returned and `joined` is called. The flight ends when `work` settles.
   */
  run(key: string, work: () => Promise<T>, joined?: () => void): Promise<T> {
    const running = this.#flights.get(key)
    if (running !== undefined) {
      joined?.()
      return running
    }
    const flight = work().finally(() => {
      this.#flights.delete(key)
    })
    this.#flights.set(key, flight)
    return flight
  }
}
