/** Why a command on a fresh connection failed: `refused`: nothing listens (process dead); `timeout`: no answer in time (hung, SIGSTOPped, unreachable); `error`: anything else. */
export type ProbeFailureReason = 'refused' | 'timeout' | 'error'

/** A command on a fresh connection (probe, `stats`, `flush_all`) that did not get its answer. */
export class NodeCommandError extends Error {
  override readonly name = 'NodeCommandError'
  constructor(
    readonly reason: ProbeFailureReason,
    /** `host:port`. */
    readonly node: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}
