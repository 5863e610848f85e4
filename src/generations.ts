import { namespaceGenerationKey, tableGenerationKey, tagGenerationKey } from './key.js'
import type { Store } from './store/store.js'

/**
 * Generation counters decide whether a cached result is still current. Every
 * result is stored with the generations of the namespace, of each table it read
 * and of each tag it carries, as they were read *before* its database query; a
 * write bumps the counters of what it touched. A result whose recorded
 * generations differ from the current ones is never served.
 *
 * The counters live in the store, so a write in one process invalidates the
 * results cached by every process that shares the store.
 */
export class Generations {
  readonly #store: Store
  readonly #namespace: string

  constructor(store: Store, namespace: string) {
    this.#store = store
    this.#namespace = namespace
  }

  /** Counter keys for a result, namespace first, in a fixed order. */
  keysFor(tables: readonly string[], tags: readonly string[]): string[] {
    const keys = [namespaceGenerationKey(this.#namespace)]
    for (const table of tables) keys.push(tableGenerationKey(this.#namespace, table))
    for (const tag of tags) keys.push(tagGenerationKey(this.#namespace, tag))
    return keys
  }

  /**
   * Reads a counter that was missing, creating it when it still is. A new
   * counter starts from the clock, a value never used before, so a result stored
   * under a counter that was evicted can never match its successor.
   */
  ensure(key: string): Promise<string> {
    return this.#store.increment(key, 0, freshGeneration())
  }

  /** Bumps the counters of written tables and tags (`namespace` bumps every result's). */
  async bump(target: { tables?: readonly string[]; tags?: readonly string[]; namespace?: boolean }): Promise<void> {
    const keys: string[] = []
    if (target.namespace) keys.push(namespaceGenerationKey(this.#namespace))
    for (const table of target.tables ?? []) keys.push(tableGenerationKey(this.#namespace, table))
    for (const tag of target.tags ?? []) keys.push(tagGenerationKey(this.#namespace, tag))
    await Promise.all(keys.map((key) => this.#store.increment(key, 1, freshGeneration())))
  }
}

/**
 * Microseconds since the epoch: a counter created earlier stays below it unless
 * it was bumped more than a thousand times a millisecond on average.
 */
function freshGeneration(): bigint {
  return BigInt(Date.now()) * 1000n + BigInt(Math.floor(Math.random() * 1000))
}
