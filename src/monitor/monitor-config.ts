import type { ServerAddress } from '../store/memcached/server-address.js'
import type { TierState } from '../tier/tier-state.js'

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
