/**
 * A pg `Client` class that counts the statements the database answered, for
 * pg.Pool's `Client` option: what reached the server, counted below the library
 * (and below Kysely), so a cache can neither hide nor double-count an execution.
 *
 * ```ts
 * const counter = new StatementCounter((text) => (/^insert/i.test(text) ? 'write' : 'read'))
 * const pool = new pg.Pool({ connectionString, Client: counter.Client })
 * // … counter.total, counter.byKind, counter.databaseMs
 * ```
 *
 * A statement counts when the server answered it: with rows, or with an error of
 * its own (a `DatabaseError`, which carries a SQLSTATE `code`: a constraint, a
 * `statement_timeout`). A statement refused before it was sent (the connection was
 * closed or broken) does not count. It counts in the moment its answer arrived.
 */
import pg from 'pg'

type QueryFunction = (this: pg.Client, ...args: unknown[]) => unknown

export class StatementCounter {
  /** Statements the server answered. */
  total = 0
  /** The same, by `classify(text)`. */
  readonly byKind = new Map<string, number>()
  /** Time from handing each statement to its connection until its answer, summed, ms. */
  databaseMs = 0
  /** The class to give pg.Pool as `Client`. */
  readonly Client: typeof pg.Client

  constructor(classify: (text: string) => string = () => 'statement') {
    const counter = this
    const original = pg.Client.prototype.query as unknown as QueryFunction
    const answered = (text: string, started: number) => {
      counter.total++
      counter.databaseMs += performance.now() - started
      const kind = classify(text)
      counter.byKind.set(kind, (counter.byKind.get(kind) ?? 0) + 1)
    }
    const fromServer = (error: unknown) => error instanceof pg.DatabaseError
    class CountingClient extends pg.Client {}
    Object.defineProperty(CountingClient.prototype, 'query', {
      configurable: true,
      writable: true,
      value: function query(this: pg.Client, ...args: unknown[]): unknown {
        const first = args[0]
        const text = typeof first === 'string' ? first : typeof (first as { text?: unknown } | null)?.text === 'string' ? (first as { text: string }).text : ''
        const started = performance.now()
        const last = args.length > 1 ? args[args.length - 1] : undefined
        if (typeof last === 'function') {
          // Callback form.
          const callback = last as (error: unknown, result: unknown) => void
          return original.apply(this, [
            ...args.slice(0, -1),
            (error: unknown, result: unknown) => {
              if (error === null || error === undefined || fromServer(error)) answered(text, started)
              callback(error, result)
            },
          ])
        }
        const result = original.apply(this, args)
        if (result instanceof Promise) {
          result.then(
            () => answered(text, started),
            (error: unknown) => {
              if (fromServer(error)) answered(text, started)
            },
          )
        } else if (typeof (result as { on?: unknown } | null)?.on === 'function') {
          // A submittable (a cursor, a stream): counted once it ends or fails at the server.
          const emitter = result as { on(event: string, listener: (...a: unknown[]) => void): void }
          emitter.on('end', () => answered(text, started))
          emitter.on('error', (error: unknown) => {
            if (fromServer(error)) answered(text, started)
          })
        }
        return result
      },
    })
    this.Client = CountingClient
  }

  /** Counts so far, as a plain object (for reports). */
  snapshot(): { total: number; databaseMs: number; byKind: Record<string, number> } {
    return { total: this.total, databaseMs: this.databaseMs, byKind: Object.fromEntries(this.byKind) }
  }
}
