import { randomBytes } from 'node:crypto'
import { namespaceGenerationKey, tableGenerationKey, tagGenerationKey } from '../keys.js'
import { majorityOf, readQuorum, writeQuorum, type QuorumRead } from './quorum.js'
import { setTimeout as delay } from 'node:timers/promises'
import { StoreUnavailableError, type Store } from '../store/store.js'

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
   * The generation of a key no majority held when it was read. Only ever a fresh
   * token, never one copied from a node (a copy could bring back a token a bump
   * replaced): added where homes are empty, so processes that find it missing
   * together (every node restarted) usually settle on one; else whatever a
   * majority holds after a short random pause; else a fresh token set over all,
   * which is an invalidation. Any of these is newer than every bump that
   * returned. Rejects when no token reaches a majority: nothing may be stored.
   */
  async create(key: string): Promise<string> {
    const token = freshGeneration()
    const added = await Promise.allSettled(this.#store.addHomes(key, Buffer.from(token, 'latin1'), 0, this.#replicas))
    if (added.filter((outcome) => outcome.status === 'fulfilled' && outcome.value).length >= majorityOf(added.length)) {
      return token
    }
    for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
      // Split votes between processes creating at once: let one of them finish first.
      await delay(CREATE_PAUSE_MS * (1 + Math.random()))
      const now = await this.read(key)
      if (now.kind === 'agreed') return now.value
      if (now.kind === 'unknown') break
      await this.#replace(key)
    }
    const settled = await this.read(key)
    if (settled.kind === 'agreed') return settled.value
    throw new StoreUnavailableError(`no majority of the homes of ${JSON.stringify(key)} agrees on a generation`)
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

/** Rounds of pause, read and replace before a creation gives up (nothing is stored then). */
const CREATE_ATTEMPTS = 3
const CREATE_PAUSE_MS = 5

/** Never used before: milliseconds since the epoch and 48 random bits. */
function freshGeneration(): string {
  return `${Date.now().toString(36)}.${randomBytes(6).toString('base64url')}`
}
