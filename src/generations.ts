import { randomBytes } from 'node:crypto'
import { namespaceGenerationKey, tableGenerationKey, tagGenerationKey } from './key.js'
import { StoreUnavailableError, type Store } from './store/store.js'

/**
 * Generations decide whether a cached result is still current. Every result is
 * stored with the generations of the namespace, of each table it read and of
 * each tag it carries, as they were read *before* its database query; a write
 * replaces the generations of what it touched with fresh ones. A result whose
 * recorded generations differ from the current ones is never served.
 *
 * A generation is an opaque token that is never reused (clock plus randomness),
 * compared for equality only. It lives in the store, so a write in one process
 * invalidates what every process cached, and it is replicated on several nodes
 * (see {@link Store.getReplicas}): losing the node that holds `person`'s
 * generation must not invalidate every cached read of `person`.
 */
export class Generations {
  readonly #store: Store
  readonly #namespace: string
  readonly #replicas: number

  constructor(store: Store, namespace: string, replicas: number) {
    this.#store = store
    this.#namespace = namespace
    this.#replicas = replicas
  }

  /** Generation keys for a result, namespace first, in a fixed order. Read them with `store.get`. */
  keysFor(tables: readonly string[], tags: readonly string[]): string[] {
    const keys = [namespaceGenerationKey(this.#namespace)]
    for (const table of tables) keys.push(tableGenerationKey(this.#namespace, table))
    for (const tag of tags) keys.push(tagGenerationKey(this.#namespace, tag))
    return keys
  }

  /**
   * The generation of a key `get` found missing: copied from another replica
   * when one still has it (the node that holds the first copy came back empty),
   * else created fresh. Only ever `add`s, so it cannot undo a concurrent bump.
   */
  async ensure(key: string): Promise<string> {
    const copies = await this.#store.getReplicas(key, this.#replicas)
    const first = copies[0]
    if (first instanceof Buffer) {
      return first.toString('latin1')
    }
    const survivor = copies.find((copy): copy is Buffer => copy instanceof Buffer)
    const token = survivor === undefined ? freshGeneration() : survivor.toString('latin1')
    const added = await this.#store.addReplicas(key, Buffer.from(token, 'latin1'), 0, this.#replicas)
    if (added[0] === true) {
      return token
    }
    const current = await this.#store.get(key)
    if (current === undefined) {
      throw new StoreUnavailableError(`generation ${JSON.stringify(key)} could neither be read nor created`)
    }
    return current.toString('latin1')
  }

  /** Replaces the generations of written tables and tags (`namespace`: of every result). */
  async bump(target: { tables?: readonly string[]; tags?: readonly string[]; namespace?: boolean }): Promise<void> {
    const keys: string[] = []
    if (target.namespace) keys.push(namespaceGenerationKey(this.#namespace))
    for (const table of target.tables ?? []) keys.push(tableGenerationKey(this.#namespace, table))
    for (const tag of target.tags ?? []) keys.push(tagGenerationKey(this.#namespace, tag))
    await Promise.all(
      keys.map(async (key) => {
        const [first] = await this.#store.setReplicas(key, Buffer.from(freshGeneration(), 'latin1'), 0, this.#replicas)
        // Readers read the first copy: if that one missed the bump, the invalidation did not happen.
        if (first !== true) throw first
      }),
    )
  }
}

/** Never used before: milliseconds since the epoch and 48 random bits. */
function freshGeneration(): string {
  return `${Date.now().toString(36)}.${randomBytes(6).toString('base64url')}`
}
