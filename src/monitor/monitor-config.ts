import type { ServerAddress } from '../store/memcached/server-address.js'
import type { TierState } from '../tier/tier-state.js'
import type { SaslCredentials } from '../util/validate.js'

/** What {@link startMonitor} validated: the monitor trusts it. */
export interface MonitorConfig {
  readonly nodes: readonly ServerAddress[]
  readonly servers: readonly string[]
  readonly namespace: string
  readonly intervalMs: number
  readonly probeTimeoutMs: number
  readonly settleMs: number
  readonly hitRatioRecovery: number
  readonly minRequests: number
  readonly flagTtlSeconds: number
  /** SASL PLAIN credentials for every connection, probes included; `undefined`: none. */
  readonly sasl: SaslCredentials | undefined
  /** Signing secrets, current first; empty: values bound to their key only. */
  readonly secrets: readonly Buffer[]
  readonly log: (line: string) => void
  readonly onState: ((state: TierState) => void) | undefined
  readonly warmup: WarmupConfig | undefined
}

/** The validated `warmup` option. */
export interface WarmupConfig {
  readonly databaseUrl: string | undefined
  /** Absolute. */
  readonly manifestFile: string | undefined
  readonly concurrency: number
  readonly maxMs: number
  readonly saveEveryMs: number
}
