import { modeOverrideKey, tierStateKey } from '../keys.js'
import { readSharedDocument, writeSharedDocument } from '../store/shared-document.js'
import type { Store } from '../store/store.js'
import { StoreUnavailableError } from '../store/store.js'
import { describe, THIRTY_DAYS_SECONDS } from '../util/validate.js'

/** How the cache tier is doing: `degraded` turns on the farm-wide `safe-` lock. */
export type CacheMode = 'normal' | 'degraded'

/**
 * The shared flag: the monitor's view of the tier, published to every live
 * memcached node each interval with a short TTL. If the monitor dies, the flag
 * expires and every process falls back to its own view.
 */
export interface TierState {
  readonly version: 1
  readonly mode: CacheMode
  /** Nodes (`host:port`) the monitor sees down; processes keep them off their ring. */
  readonly down: readonly string[]
  /** When `mode` took effect, ms since the epoch. */
  readonly since: number
  /** Why, in a few words: `node 10.0.0.3:11211 down (refused)`, `settled`, `operator`. */
  readonly reason: string
  /** Who published it: `monitor host:pid`. */
  readonly setBy: string
  /** When it was published, ms since the epoch. */
  readonly at: number
  /** Farm-wide hit ratio over the monitor's last window, when there was traffic. */
  readonly hitRatio?: number
  /** A mode forced by an operator, in force until `until`. */
  readonly override?: ModeOverride
  /** Warm-up of a returning node, while the monitor replays its hottest keys before listing it up. */
  readonly warmup?: {
    readonly node: string
    readonly done: number
    readonly total: number
    /** ms since the epoch. */
    readonly startedAt: number
  }
}

/** An operator's `kysely-memcache mode degraded --for 10m`. */
export interface ModeOverride {
  readonly mode: CacheMode
  /** ms since the epoch. */
  readonly until: number
  readonly setBy: string
  /** When it was written, ms since the epoch: the newest write wins, a clear included. */
  readonly at: number
}

/** Writes `value` to every live node, so it stays readable whichever nodes are down; resolves how many took it. */
export async function publish(store: Store, key: string, value: object, ttlSeconds: number): Promise<number> {
  const outcomes = await writeSharedDocument(store, key, Buffer.from(JSON.stringify(value)), ttlSeconds)
  return outcomes.filter((outcome) => outcome === true).length
}

/**
 * The tier state on any live node, the freshest if copies differ; `undefined`
 * when none has one or no node answers.
 *
 * ```ts
 * const state = await readTierState(cache.store, 'app')
 * if (state?.mode === 'degraded') console.log(state.reason, state.down)
 * ```
 */
export async function readTierState(store: Store, namespace: string): Promise<TierState | undefined> {
  return readFreshest(store, tierStateKey(namespace), isTierState)
}

/**
 * The operator's override in force now, if any.
 *
 * ```ts
 * const override = await readModeOverride(cache.store, 'app')
 * if (override !== undefined) console.log(`${override.mode} until ${new Date(override.until).toISOString()}`)
 * ```
 */
export async function readModeOverride(store: Store, namespace: string, now = Date.now()): Promise<ModeOverride | undefined> {
  // Newest write wins, so a node that missed a clear cannot revive an old override.
  const override = await readFreshest(store, modeOverrideKey(namespace), isModeOverride)
  return override !== undefined && override.until > now ? override : undefined
}

/**
 * Forces `mode` for `forMs` (or clears the override with `'auto'`), on every live
 * node. Processes and the monitor honour it until it expires.
 *
 * ```ts
 * await writeModeOverride(cache.store, 'app', 'degraded', 10 * 60_000, 'ops@host')
 * await writeModeOverride(cache.store, 'app', 'auto', 0, 'ops@host') // back to the monitor's view
 * ```
 */
export async function writeModeOverride(
  store: Store,
  namespace: string,
  mode: CacheMode | 'auto',
  forMs: number,
  setBy: string,
): Promise<ModeOverride | undefined> {
  if (mode !== 'auto' && !isMode(mode)) {
    throw new TypeError(`mode must be "normal", "degraded" or "auto", got ${describe(mode)}`)
  }
  if (mode !== 'auto' && (typeof forMs !== 'number' || !Number.isFinite(forMs) || forMs <= 0 || forMs > THIRTY_DAYS_SECONDS * 1000)) {
    throw new RangeError(`forMs must be a positive number of milliseconds up to 30 days, got ${describe(forMs)}`)
  }
  if (mode === 'auto') {
    // An override that has already expired reads as none; written last, it beats older ones.
    const cleared: ModeOverride = { mode: 'normal', until: 0, setBy, at: Date.now() }
    // No expiry: it must outlive every older override copy, however long that one was set for.
    await publish(store, modeOverrideKey(namespace), cleared, 0)
    return undefined
  }
  const override: ModeOverride = { mode, until: Date.now() + forMs, setBy, at: Date.now() }
  await publish(store, modeOverrideKey(namespace), override, Math.ceil(forMs / 1000) + 1)
  return override
}

async function readFreshest<T extends { readonly at: number }>(
  store: Store,
  key: string,
  valid: (value: unknown) => value is T,
): Promise<T | undefined> {
  try {
    return await readSharedDocument(store, key, (copy) => parseIf(copy, valid), (document) => document.at)
  } catch (error) {
    if (error instanceof StoreUnavailableError) return undefined
    throw error
  }
}

function parseIf<T>(copy: Buffer, valid: (value: unknown) => value is T): T | undefined {
  try {
    const value: unknown = JSON.parse(copy.toString('utf8'))
    return valid(value) ? value : undefined
  } catch {
    // Garbage under our key is no state at all.
    return undefined
  }
}

function isMode(value: unknown): value is CacheMode {
  return value === 'normal' || value === 'degraded'
}

function isModeOverride(value: unknown): value is ModeOverride {
  const o = value as ModeOverride
  return (
    typeof o === 'object' &&
    o !== null &&
    isMode(o.mode) &&
    typeof o.until === 'number' &&
    typeof o.at === 'number' &&
    typeof o.setBy === 'string'
  )
}

function isTierState(value: unknown): value is TierState {
  const s = value as TierState
  return (
    typeof s === 'object' &&
    s !== null &&
    s.version === 1 &&
    isMode(s.mode) &&
    Array.isArray(s.down) &&
    s.down.every((node) => typeof node === 'string') &&
    typeof s.since === 'number' &&
    typeof s.at === 'number' &&
    typeof s.reason === 'string' &&
    typeof s.setBy === 'string'
  )
}
