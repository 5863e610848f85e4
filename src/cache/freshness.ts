import type { EntryTimes } from './codec.js'

/**
 * How a result whose generations still match may be served, by time alone:
 * `fresh`; `refresh-early`, served and refreshed in the background (XFetch drew
 * it); `stale`, past its TTL but within the `swr` window, served and refreshed in
 * the background; `expired`, not served.
 */
export type Freshness = 'fresh' | 'refresh-early' | 'stale' | 'expired'

/**
 * XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh when
 * `now − δ·β·ln(u) ≥ expiry` for a uniform u in (0, 1]: the chance grows as expiry
 * nears, faster for results that take long to compute (δ), so about one request
 * refreshes a hot result shortly before it expires.
 *
 * ```ts
 * freshness({ freshUntil: Date.now() + 5, expiresAt: Date.now() + 5, computeMs: 200 }, Date.now(), 0, 1) // most likely 'refresh-early'
 * ```
 */
export function freshness(
  times: EntryTimes,
  now: number,
  swrSeconds: number,
  beta: number | false,
  random: () => number = Math.random,
): Freshness {
  if (times.freshUntil === 0) return 'fresh'
  if (now < times.freshUntil) {
    if (beta !== false && times.computeMs > 0 && now - times.computeMs * beta * Math.log(1 - random()) >= times.freshUntil) {
      return 'refresh-early'
    }
    return 'fresh'
  }
  return now < Math.min(times.expiresAt, times.freshUntil + swrSeconds * 1000) ? 'stale' : 'expired'
}
