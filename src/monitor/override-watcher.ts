import type { Store } from '../store/store.js'
import { readModeOverride } from '../tier/tier-state.js'
import type { ModeOverride } from '../tier/tier-state.js'
import { iso } from './log-text.js'
import type { AutoMode } from './recovery.js'

/** Options of {@link OverrideWatcher}. */
export interface OverrideWatcherOptions {
  /** Where operators write their override (`kysely-memcache mode`). */
  readonly store: Store
  readonly namespace: string
  readonly log: (message: string) => void
}

/**
 * Follows the operator's mode override (`kysely-memcache mode degraded --for 10m`)
 * round after round, and logs when one is set, changed, cleared or expires.
 *
 * ```ts
 * const overrides = new OverrideWatcher({ store, namespace: 'shop', log })
 * const override = await overrides.read(now)
 * overrides.update(override, now, auto)
 * overrides.current?.mode // 'degraded'
 * ```
 */
export class OverrideWatcher {
  readonly #options: OverrideWatcherOptions
  #override: ModeOverride | undefined

  constructor(options: OverrideWatcherOptions) {
    this.#options = options
  }

  /** The override in force as of the last {@link update}. */
  get current(): ModeOverride | undefined {
    return this.#override
  }

  /**
   * The override in force at `now`. Never rejects.
   *
   * ```ts
   * const override = await overrides.read(Date.now())
   * ```
   */
  async read(now: number): Promise<ModeOverride | undefined> {
    try {
      return await readModeOverride(this.#options.store, this.#options.namespace, now)
    } catch {
      // Unreadable this round: keep the one we know while it lasts, rather than flap.
      return this.#override !== undefined && this.#override.until > now ? this.#override : undefined
    }
  }

  /**
   * Makes `override` the current one; logs the change, and with it the
   * automatic mode `auto` that resumes when an override ends.
   *
   * ```ts
   * overrides.update(await overrides.read(now), now, auto)
   * ```
   */
  update(override: ModeOverride | undefined, now: number, auto: AutoMode): void {
    const previous = this.#override
    this.#override = override
    if (override !== undefined && !sameOverride(previous, override)) {
      this.#options.log(`override: ${override.mode} until ${iso(override.until)} (set by ${override.setBy})`)
    } else if (override === undefined && previous !== undefined) {
      this.#options.log(`override ${previous.until <= now ? 'expired' : 'cleared'}; automatic mode resumes (${auto.mode}: ${auto.reason})`)
    }
  }
}

function sameOverride(a: ModeOverride | undefined, b: ModeOverride): boolean {
  return a !== undefined && a.mode === b.mode && a.until === b.until && a.setBy === b.setBy
}
