import type { ProbeResult } from '../store/memcached/node-probe.js'

/** A node the monitor lists down, from its first failed probe until it is listed up again. */
export interface DownNode {
  /** Published reason: `refused`, `timeout`, `error`, `flush failed`, `inherited`, `waiting to warm`, `warming`, `warmed`. */
  readonly reason: string
  readonly message: string
  /** Already logged that it answers but cannot be flushed (once per outage). */
  readonly flushFailureLogged: boolean
  /**
   * Answered and flushed, and warm-up is due: queued (`waiting`), replaying
   * (`running`), or over (`done`: listed up at the next round, not flushed again).
   */
  readonly warm?: 'waiting' | 'running' | 'done'
  /** Its `cmd_flush` when its warm-up last checked it (`done` only). */
  readonly flushes?: number | undefined
}

/** The flush of a node that answered: `null` when none was due, `undefined` when it succeeded, else why it failed. */
export type FlushOutcome = string | null | undefined

/** What a round changed for one node: what the monitor logs and acts on. */
export type NodeEvent =
  | { readonly type: 'down'; readonly reason: string; readonly message: string }
  | { readonly type: 'down-again'; readonly after: 'waiting' | 'running' | 'done'; readonly reason: string; readonly message: string }
  | { readonly type: 'back'; readonly warmed: false }
  | { readonly type: 'back'; readonly warmed: true; readonly summary: string; readonly flushes: number | undefined }
  | { readonly type: 'warm-due'; readonly entries: number }
  | { readonly type: 'flush-failed'; readonly message: string }

/**
 * Whether a round of probes took so long that the monitor itself stalled (GC,
 * a paused VM), not the nodes: its failures are asked again (see {@link needsReprobe}).
 *
 * ```ts
 * probesStalled(400, 250) // true
 * ```
 */
export function probesStalled(elapsedMs: number, probeTimeoutMs: number): boolean {
  return elapsedMs > probeTimeoutMs * 1.5
}

/**
 * Whether a failed probe is asked again before the node is taken down: only in
 * a stalled round and only for a node listed up.
 *
 * ```ts
 * needsReprobe(true, { ok: false, reason: 'timeout', message: 'no answer in 250 ms' }, undefined) // true
 * ```
 */
export function needsReprobe(stalled: boolean, probe: ProbeResult, down: DownNode | undefined): boolean {
  return stalled && !probe.ok && down === undefined
}

/**
 * Whether a node that answered must be flushed before it counts as up: a down
 * node, unless it was already flushed for its warm-up (that would wipe what the warm-up wrote).
 *
 * ```ts
 * flushDue({ ok: true, latencyMs: 1, version: '1.6.21' }, { reason: 'refused', message: '', flushFailureLogged: false }) // true
 * ```
 */
export function flushDue(probe: ProbeResult, down: DownNode | undefined): boolean {
  return probe.ok && down !== undefined && down.warm === undefined
}

/**
 * A node's state after a round: its probe and, if one was due, its flush.
 * `entriesToWarm` counts the manifest entries it owns (0 when nodes are not
 * warmed); it is asked only when the node was just flushed.
 *
 * ```ts
 * const { down, event } = observeNode(tracked.get(id), probe, flush, () => 0)
 * ```
 */
export function observeNode(
  down: DownNode | undefined,
  probe: ProbeResult,
  flush: FlushOutcome,
  entriesToWarm: () => number,
): { down: DownNode | undefined; event: NodeEvent | undefined } {
  if (!probe.ok) {
    const { reason, message } = probe
    if (down === undefined) return { down: { reason, message, flushFailureLogged: false }, event: { type: 'down', reason, message } }
    // Lost again before it was listed up: whatever was warmed is gone; flush and warm again when it answers.
    const lost: DownNode = { reason, message, flushFailureLogged: down.flushFailureLogged }
    return { down: lost, event: down.warm === undefined ? undefined : { type: 'down-again', after: down.warm, reason, message } }
  }
  if (down === undefined) return { down, event: undefined }
  if (down.warm === 'done') return { down: undefined, event: { type: 'back', warmed: true, summary: down.message, flushes: down.flushes } }
  if (down.warm !== undefined || flush === null) return { down, event: undefined }
  if (flush === undefined) {
    const entries = entriesToWarm()
    if (entries === 0) return { down: undefined, event: { type: 'back', warmed: false } }
    const waiting: DownNode = { ...down, warm: 'waiting', reason: 'waiting to warm', message: `${entries} manifest entries to replay` }
    return { down: waiting, event: { type: 'warm-due', entries } }
  }
  const failed: DownNode = { ...down, reason: 'flush failed', message: flush, flushFailureLogged: true }
  return { down: failed, event: down.flushFailureLogged ? undefined : { type: 'flush-failed', message: flush } }
}

/**
 * The node once its warm-up started replaying `entries` manifest entries.
 *
 * ```ts
 * tracked.set(id, warming(down, 42))
 * ```
 */
export function warming(down: DownNode, entries: number): DownNode {
  return { ...down, warm: 'running', reason: 'warming', message: `replaying ${entries} manifest entries` }
}

/**
 * The node once its warm-up is over (`summary` says how it went): listed up at the next round.
 *
 * ```ts
 * tracked.set(id, warmed(down, '42 of 50 entries warmed', 3))
 * ```
 */
export function warmed(down: DownNode, summary: string, flushes: number | undefined): DownNode {
  return { ...down, warm: 'done', reason: 'warmed', message: summary, flushes }
}

/**
 * The published reason for the nodes down.
 *
 * ```ts
 * downReason(tracked) // 'node 10.0.0.2:11211 down (refused)'
 * ```
 */
export function downReason(down: ReadonlyMap<string, DownNode>): string {
  const entries = [...down.entries()]
  if (entries.length === 1) {
    const [id, node] = entries[0]!
    return `node ${id} down (${node.reason})`
  }
  return `${entries.length} nodes down: ${entries.map(([id, node]) => `${id} (${node.reason})`).join(', ')}`
}

/**
 * The logged detail for the nodes down.
 *
 * ```ts
 * downDetail(tracked) // 'node 10.0.0.2:11211 down: refused'
 * ```
 */
export function downDetail(down: ReadonlyMap<string, DownNode>): string {
  return [...down.entries()].map(([id, node]) => `node ${id} down: ${node.reason}`).join(', ')
}

/**
 * Nodes a warm-up of `node` must route around: the ones down, except `node`
 * and the ones already warmed (those are as current as the healthy nodes and
 * are listed up at the next round).
 *
 * ```ts
 * store.holdDown(heldDownFor(tracked, '10.0.0.2:11211'), 'flushed')
 * ```
 */
export function heldDownFor(down: ReadonlyMap<string, DownNode>, node: string): Set<string> {
  return new Set([...down.entries()].filter(([id, state]) => id !== node && state.warm !== 'done').map(([id]) => id))
}
