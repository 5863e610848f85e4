/**
 * In-process coalescing: concurrent callers asking for the same key share one
 * execution. Free (no I/O), so it is always on.
 *
 * Each caller brings a `version` (the generations it read). A caller joins a
 * running flight when it read the same version, or when the flight has not yet
 * started its database query: that query then begins after the caller's read,
 * so it sees every write the caller could know of.
 */
export class SingleFlight<T> {
  readonly #flights = new Map<string, Flight<T>>()

  /**
   * Runs `work` unless a flight for `key` can take this caller, in which case its
   * promise is returned and `joined` is called. `work` calls `started()` right
   * before the part late joiners must not miss (the database query).
   */
  run(key: string, version: string, work: (started: () => void) => Promise<T>, joined?: () => void): Promise<T> {
    const running = this.#flights.get(key)
    if (running !== undefined && (!running.started || running.version === version)) {
      joined?.()
      return running.promise
    }
    const flight: Flight<T> = { version, started: false, promise: undefined as unknown as Promise<T> }
    flight.promise = work(() => {
      flight.started = true
    }).finally(() => {
      if (this.#flights.get(key) === flight) this.#flights.delete(key)
    })
    this.#flights.set(key, flight)
    return flight.promise
  }
}

interface Flight<T> {
  readonly version: string
  started: boolean
  promise: Promise<T>
}
