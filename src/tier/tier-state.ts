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
  return readFreshest(store, tierStateKey(namespace), readTierStateDocument)
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
  const override = await readFreshest(store, modeOverrideKey(namespace), readModeOverrideDocument)
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
  read: (value: unknown) => T | undefined,
): Promise<T | undefined> {
  try {
    return await readSharedDocument(store, key, (copy) => parseWith(copy, read), (document) => document.at)
  } catch (error) {
    if (error instanceof StoreUnavailableError) return undefined
    throw error
  }
}

/**
 * Anyone who reaches a node can write any bytes under these keys: a copy counts only
 * if it is JSON of the right shape, every field of the right type, times within the
 * range of a Date (status prints them as ISO text), the ratio within 0..1. What is
 * returned is a copy of the known fields, nothing else of the document.
 */
function parseWith<T>(copy: Buffer, read: (value: unknown) => T | undefined): T | undefined {
  let value: unknown
  try {
    value = JSON.parse(copy.toString('utf8'))
  } catch {
    // Garbage under our key is no state at all.
    return undefined
  }
  return read(value)
}

function isMode(value: unknown): value is CacheMode {
  return value === 'normal' || value === 'degraded'
}

/** ms since the epoch that a Date holds (±8.64e15): JSON can say 1e999 (Infinity) or 1e300. */
function isTime(value: unknown): value is number {
  return typeof value === 'number' && Math.abs(value) <= 8.64e15
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function readModeOverrideDocument(value: unknown): ModeOverride | undefined {
  if (!isRecord(value)) return undefined
  const { mode, until, setBy, at } = value
  if (!isMode(mode) || !isTime(until) || !isTime(at) || typeof setBy !== 'string') return undefined
  return { mode, until, setBy, at }
}

function readTierStateDocument(value: unknown): TierState | undefined {
  if (!isRecord(value)) return undefined
  const { version, mode, down, since, reason, setBy, at, hitRatio, override, warmup } = value
  if (version !== 1 || !isMode(mode) || !isTime(since) || !isTime(at) || typeof reason !== 'string' || typeof setBy !== 'string') {
    return undefined
  }
  if (!Array.isArray(down) || !down.every((node) => typeof node === 'string')) return undefined
  if (hitRatio !== undefined && !(typeof hitRatio === 'number' && hitRatio >= 0 && hitRatio <= 1)) return undefined
  const state: { -readonly [K in keyof TierState]: TierState[K] } = { version, mode, down: [...(down as string[])], since, reason, setBy, at }
  if (hitRatio !== undefined) state.hitRatio = hitRatio
  if (override !== undefined) {
    const checked = readModeOverrideDocument(override)
    if (checked === undefined) return undefined
    state.override = checked
  }
  if (warmup !== undefined) {
    if (!isRecord(warmup)) return undefined
    const { node, done, total, startedAt } = warmup
    if (typeof node !== 'string' || !isCount(done) || !isCount(total) || !isTime(startedAt)) return undefined
    state.warmup = { node, done, total, startedAt }
  }
  return state
}
