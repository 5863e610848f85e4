import { randomBytes } from 'node:crypto'
import { namespaceGenerationKey, tableGenerationKey, tagGenerationKey } from './key.js'
import { majorityOf, readQuorum, writeQuorum, type QuorumRead } from './quorum.js'
import type { Store } from './store/store.js'

/**
 * Generations decide whether a cached result is still current. Every result is
 * stored with the generations of the namespace, of each table it read and of
 * each tag it carries, as they were read *before* its database query; a write
 * replaces the generations of what it touched with fresh ones. A result whose
 * recorded generations differ from the current ones is never served.
 *
 * A generation is an opaque token that is never reused (clock plus randomness),
 * compared for equality only. It lives on the key's homes, a fixed set of
 * nodes, and is read and written by majority (see quorum.ts): a token read that
 * way is never older than the last bump that returned, whatever the nodes did
 * (restarted empty, paused, flushed, seen down by some processes only). Nothing
 * ever copies a token from one node to another, since a copy could resurrect
 * one that a bump replaced; a generation that no majority holds is replaced by
 * a fresh one, which only invalidates.
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

  /** Generation keys for a result, namespace first, in a fixed order. */
  keysFor(tables: readonly string[], tags: readonly string[]): string[] {
    const keys = [namespaceGenerationKey(this.#namespace)]
    for (const table of tables) keys.push(tableGenerationKey(this.#namespace, table))
    for (const tag of tags) keys.push(tagGenerationKey(this.#namespace, tag))
    return keys
  }

  /** The current generation at `key` by majority; never rejects. */
  async read(key: string): Promise<QuorumRead> {
    let answers: Array<Promise<Buffer | undefined>>
    try {
      answers = this.#store.readHomes(key, this.#replicas)
    } catch {
      return { kind: 'unknown' }
    }
    return readQuorum(answers)
  }

  /**
   * The generation of a key no majority held when it was read: a fresh token
   * `add`ed where homes are empty, so processes that find it missing at once
   * (every node restarted) settle on one token instead of replacing each
   * other's; whatever a majority then holds; else a fresh token set over all.
   * Each of these is newer than any bump that returned, so results stored under
   * it were computed after those bumps. Rejects when no majority can be
   * written: then nothing may be stored.
   */
  async create(key: string): Promise<string> {
    const token = freshGeneration()
    const added = await Promise.allSettled(this.#store.addHomes(key, Buffer.from(token, 'latin1'), 0, this.#replicas))
    if (added.filter((outcome) => outcome.status === 'fulfilled' && outcome.value).length >= majorityOf(added.length)) {
      return token
    }
    const now = await this.read(key)
    if (now.kind === 'agreed') return now.value
    return this.#replace(key)
  }

  /** Sets a fresh token on a majority of the key's homes: an invalidation. */
  async #replace(key: string): Promise<string> {
    const token = freshGeneration()
    await writeQuorum(this.#store.writeHomes(key, Buffer.from(token, 'latin1'), 0, this.#replicas))
    return token
  }

  /**
   * Replaces the generations of written tables and tags (`namespace`: of every
   * result). Resolves once each is on a majority of its homes; rejects otherwise.
   */
  async bump(target: { tables?: readonly string[]; tags?: readonly string[]; namespace?: boolean }): Promise<void> {
    const keys: string[] = []
    if (target.namespace) keys.push(namespaceGenerationKey(this.#namespace))
    for (const table of target.tables ?? []) keys.push(tableGenerationKey(this.#namespace, table))
    for (const tag of target.tags ?? []) keys.push(tagGenerationKey(this.#namespace, tag))
    await Promise.all(keys.map((key) => this.#replace(key)))
  }
}

/** Never used before: milliseconds since the epoch and 48 random bits. */
function freshGeneration(): string {
  return `${Date.now().toString(36)}.${randomBytes(6).toString('base64url')}`
}
