/**
 * What the cache did for one request, told apart per request: every `.cached()`
 * query publishes `{ namespace, key, outcome: 'hit' | 'miss', databaseMs?, stale?: true }`
 * on the library's `kysely-memcache:query` diagnostics channel, synchronously,
 * inside the async context of the code that awaited it. Running each request in
 * an AsyncLocalStorage context therefore attributes every message to its request,
 * however many requests are in flight.
 *
 * app.ts answers it in the `x-cache` response header; the drill (bench/drill.ts)
 * reads that header to time hits, stale answers and misses apart.
 *
 * ```ts
 * const tracked = trackCacheOutcome(() => handle(request))
 * const body = await tracked.result
 * response.setHeader('x-cache', tracked.outcome()) // 'hit' | 'stale' | 'miss' | 'none'
 * ```
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { channels } from '../../src/index.js'

/**
 * - `'miss'`: at least one of the request's cached queries went to the database
 *   (or joined an identical query of this process that did);
 * - `'stale'`: none missed, and at least one was served past its TTL (`swr`) while
 *   being refreshed in the background;
 * - `'hit'`: every cached query was served fresh from the cache;
 * - `'none'`: the request ran no cached query (a write, or an app without a cache).
 */
export type CacheOutcome = 'hit' | 'stale' | 'miss' | 'none'
export const CACHE_OUTCOMES: readonly CacheOutcome[] = ['hit', 'stale', 'miss', 'none']

interface Tally {
  hit: number
  stale: number
  miss: number
  /** Closed once the request answered: a query it left running (a failed `Promise.all`) no longer counts. */
  open: boolean
}

const requests = new AsyncLocalStorage<Tally>()
let subscribed = false

function onQuery(message: unknown): void {
  const tally = requests.getStore()
  if (tally === undefined || !tally.open) return
  const { outcome, stale } = message as { outcome?: unknown; stale?: unknown }
  if (outcome === 'miss') tally.miss++
  else if (stale === true) tally.stale++
  else if (outcome === 'hit') tally.hit++
}

export interface Tracked<T> {
  /** What `run` resolved or rejected with. */
  readonly result: Promise<T>
  /** The request's outcome so far; messages published after the first call are ignored. */
  outcome(): CacheOutcome
}

/** Runs `run` in a context of its own and tallies the outcomes of the cached queries it runs. */
export function trackCacheOutcome<T>(run: () => Promise<T>): Tracked<T> {
  if (!subscribed) {
    // Once per process; the library builds query messages only while someone listens.
    channels.query.subscribe(onQuery)
    subscribed = true
  }
  const tally: Tally = { hit: 0, stale: 0, miss: 0, open: true }
  return {
    result: requests.run(tally, run),
    outcome() {
      tally.open = false
      return tally.miss > 0 ? 'miss' : tally.stale > 0 ? 'stale' : tally.hit > 0 ? 'hit' : 'none'
    },
  }
}
