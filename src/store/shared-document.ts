import type { Store, StoreUnavailableError } from './store.js'

/**
 * Small documents every process must find whichever nodes are down (the tier
 * state, the operator's override, farm statistics): written to every live node,
 * read from all of them, the freshest valid copy wins.
 */

/** Enough replicas to reach every node of any realistic tier. */
const EVERY_NODE = 1024

/**
 * Writes `value` to every live node; resolves, per node, `true` or its failure.
 * Rejects only when no node answered.
 *
 * ```ts
 * const outcomes = await writeSharedDocument(store, tierStateKey('app'), Buffer.from(json), 5)
 * const copies = outcomes.filter((outcome) => outcome === true).length
 * ```
 */
export function writeSharedDocument(
  store: Store,
  key: string,
  value: Buffer,
  ttlSeconds: number,
): Promise<Array<true | StoreUnavailableError>> {
  return store.setReplicas(key, value, ttlSeconds, EVERY_NODE)
}

/**
 * The freshest copy of a document on any live node: every copy `parse` accepts
 * (it returns `undefined` for one that is not a document), the one with the
 * highest `at` wins. `undefined` when no node holds a valid copy. Rejects only
 * when no node answered.
 *
 * ```ts
 * const state = await readSharedDocument(store, tierStateKey('app'), parseTierState, (state) => state.at)
 * ```
 */
export async function readSharedDocument<T>(
  store: Store,
  key: string,
  parse: (copy: Buffer) => T | undefined,
  at: (document: T) => number,
): Promise<T | undefined> {
  let freshest: T | undefined
  for (const copy of await store.getReplicas(key, EVERY_NODE)) {
    if (!(copy instanceof Buffer)) continue
    const document = parse(copy)
    if (document !== undefined && (freshest === undefined || at(document) > at(freshest))) freshest = document
  }
  return freshest
}
