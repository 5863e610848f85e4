import { setTimeout as sleep } from 'node:timers/promises'
import { delayMs, describe, rejectUnknown, wholeSeconds } from '../util/validate.js'
import type { CacheCounters } from './counters.js'
import { lookup, type Lookup } from './lookup.js'
import type { Store } from '../store/store.js'

/**
 * Options of the farm-wide `safe-<key>` lock used while the tier is degraded.
 * The defaults suit web latency: a waiter re-checks after about 20 ms, backing
 * off to 100 ms, and gives up (queries the database itself) after 5 s.
 */
export interface SafeModeOptions {
  /**
   * Seconds the lock outlives a holder that died; a live holder refreshes it
   * while its query runs, so a slow query does not lose it. Default 2.
   */
  readonly lockTtl?: number
  readonly wait?: {
    /** First pause before re-checking the cache. Default 20 ms. */
    readonly initialMs?: number
    /** Longest pause; each pause doubles up to it. Default 100 ms: one poller per process (in-process coalescing), so polls are cheap. */
    readonly maxMs?: number
    /** Longest total wait before querying the database anyway. Default 5000 ms. */
    readonly maxWaitMs?: number
    /** Spread pauses by ±25 % so waiters of many processes do not poll in step. Default true. */
    readonly jitter?: boolean
  }
}

/**
 * The scheme of the 2007 mailing-list post this library grew from: check again
 * every 5 seconds, at most 6 times. Too coarse for web latency, kept for comparison.
 *
 * ```ts
 * const cache = createQueryCache({ servers, safeMode: ORIGINAL_SAFE_MODE })
 * ```
 */
export const ORIGINAL_SAFE_MODE: SafeModeOptions = Object.freeze({
  lockTtl: 35,
  wait: Object.freeze({ initialMs: 5000, maxMs: 5000, maxWaitMs: 30_000, jitter: false }),
})

/** How long a `safe-` lock outlives a holder that died: short, so a successor is not kept waiting. */
export const DEFAULT_LOCK_TTL_SECONDS = 2

const SAFE_MODE_OPTIONS = ['lockTtl', 'wait']
const WAIT_OPTIONS = ['initialMs', 'maxMs', 'maxWaitMs', 'jitter']

export interface SafeLockConfig {
  readonly lockTtl: number
  readonly initialMs: number
  readonly maxMs: number
  readonly maxWaitMs: number
  readonly jitter: boolean
}

/**
 * The lock's settings from `safeMode` as the caller wrote it: defaults filled
 * in, every value checked; `false` turns safe mode off.
 *
 * ```ts
 * resolveSafeMode({ wait: { maxWaitMs: 2000 } })
 * // { lockTtl: 2, initialMs: 20, maxMs: 100, maxWaitMs: 2000, jitter: true }
 * ```
 */
export function resolveSafeMode(options: SafeModeOptions | false | undefined): SafeLockConfig | false {
  if (options === false) return false
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new TypeError(`safeMode must be an object or false, got ${describe(options)}`)
  }
  if (options !== undefined) rejectUnknown(options, SAFE_MODE_OPTIONS, 'safeMode')
  // memcached expires on whole-second ticks: a 1 s lock can vanish at once.
  const lockTtl = wholeSeconds(options?.lockTtl ?? DEFAULT_LOCK_TTL_SECONDS, 'safeMode.lockTtl', 2)
  const wait = options?.wait ?? {}
  if (typeof wait !== 'object' || wait === null) {
    throw new TypeError(`safeMode.wait must be an object, got ${describe(wait)}`)
  }
  rejectUnknown(wait, WAIT_OPTIONS, 'safeMode.wait')
  const initialMs = delayMs(wait.initialMs ?? 20, 'safeMode.wait.initialMs')
  const maxMs = delayMs(wait.maxMs ?? 100, 'safeMode.wait.maxMs')
  const maxWaitMs = delayMs(wait.maxWaitMs ?? 5000, 'safeMode.wait.maxWaitMs')
  if (maxMs < initialMs) {
    throw new RangeError(`safeMode.wait.maxMs must be at least safeMode.wait.initialMs (${initialMs}), got ${maxMs}`)
  }
  const jitter = wait.jitter ?? true
  if (typeof jitter !== 'boolean') {
    throw new TypeError(`safeMode.wait.jitter must be a boolean, got ${describe(jitter)}`)
  }
  return { lockTtl, initialMs, maxMs, maxWaitMs, jitter }
}

/** What the lock protects: one query's computation, and a way to see another process's result. */
export interface LockedWork<T> {
  /** Runs the query and stores its result; `stored` says whether others can now read it. */
  compute(): Promise<{ value: T; stored: boolean }>
  /** The result another process stored: found, absent (none yet), or failed (the cache cannot tell). */
  recheck(): Promise<Lookup<T>>
}

/** What happened to one degraded miss, for tracing. */
export type LockEvent = 'acquired' | 'waited' | 'timeout' | 'unavailable' | 'abandoned'

// Lock values: anything but COMPUTING tells waiters to stop waiting and query themselves.
const COMPUTING = Buffer.from('computing')
const FAILED = Buffer.from('failed')
const UNSTORED = Buffer.from('unstored')

/**
 * Safe mode's single flight across the farm: the process that wins `add
 * safe-<key>` computes, the others wait and re-check the real key, and go to the
 * database when the wait bound passes, when the lock cannot be read or written,
 * or as soon as the holder reports that it failed.
 *
 * ```ts
 * const flight = await computeUnderLock(store, lockKey(key), config, { compute, recheck }, counters)
 * ```
 */
export async function computeUnderLock<T>(
  store: Store,
  lockKey: string,
  config: SafeLockConfig,
  work: LockedWork<T>,
  counters: CacheCounters,
  notify: (event: LockEvent, waitMs?: number) => void = () => {},
): Promise<T> {
  const started = performance.now()
  const deadline = started + config.maxWaitMs
  let pause = config.initialMs
  let waited = false
  const done = (): void => {
    if (waited) {
      const waitMs = performance.now() - started
      counters.lockWaited(waitMs)
      notify('waited', waitMs)
    }
  }
  const fallThrough = async (): Promise<T> => {
    done()
    return (await work.compute()).value
  }

  for (;;) {
    let won: boolean
    try {
      won = await store.add(lockKey, COMPUTING, config.lockTtl)
    } catch {
      counters.lockUnavailable()
      notify('unavailable')
      return fallThrough()
    }
    if (won) {
      counters.lockAcquired()
      notify('acquired')
      done()
      return hold(store, lockKey, config, work)
    }
    waited = true

    for (;;) {
      const remaining = deadline - performance.now()
      if (remaining <= 0) {
        counters.lockTimeout()
        notify('timeout')
        return fallThrough()
      }
      const spread = config.jitter ? 0.75 + Math.random() * 0.5 : 1
      await sleep(Math.min(pause * spread, remaining))
      pause = Math.min(pause * 2, config.maxMs)

      const [found, holder] = await Promise.all([work.recheck(), lookup(store, lockKey)])
      if (found.kind === 'found') {
        counters.lockWaitHit()
        done()
        return found.value
      }
      if (found.kind === 'failed' || holder.kind === 'failed') {
        counters.lockUnavailable()
        notify('unavailable')
        return fallThrough()
      }
      if (holder.kind === 'absent') {
        // Released between our two reads (look once more), or expired with its holder: contend again.
        const late = await work.recheck()
        if (late.kind === 'found') {
          counters.lockWaitHit()
          done()
          return late.value
        }
        break
      }
      if (!holder.value.equals(COMPUTING)) {
        counters.lockAbandoned()
        notify('abandoned')
        return fallThrough()
      }
    }
  }
}

async function hold<T>(store: Store, lockKey: string, config: SafeLockConfig, work: LockedWork<T>): Promise<T> {
  // Keep the lock alive while the query runs: its TTL is for holders that died. At
  // least every 3 s, as a stand-in node caps the TTL (fallbackTtl, 10 s by default).
  const refresh = setInterval(
    () => void store.set(lockKey, COMPUTING, config.lockTtl).catch(() => {}),
    Math.min(3000, (config.lockTtl * 1000) / 3),
  )
  refresh.unref()
  try {
    const { value, stored } = await work.compute()
    clearInterval(refresh)
    await (stored ? store.delete(lockKey) : store.set(lockKey, UNSTORED, config.lockTtl)).catch(() => {})
    return value
  } catch (error) {
    clearInterval(refresh)
    await store.set(lockKey, FAILED, config.lockTtl).catch(() => {})
    throw error
  }
}
