import { flushNode, probeNode } from '../store/memcached/node-probe.js'
import type { ProbeResult } from '../store/memcached/node-probe.js'
import type { ServerAddress } from '../store/memcached/server-address.js'
import type { SaslCredentials } from '../util/validate.js'
import { errorMessage } from './log-text.js'
import { flushDue, needsReprobe, probesStalled } from './node-tracker.js'
import type { DownNode, FlushOutcome } from './node-tracker.js'

/** What one round saw of one node: its probe and, if one was due, its flush. */
export interface NodeCheck {
  readonly node: ServerAddress
  readonly probe: ProbeResult
  readonly flush: FlushOutcome
}

/**
 * Probes every node over a fresh connection and flushes the ones coming back
 * before they count as up (not again once flushed for a warm-up: that would
 * wipe what the warm-up wrote). With `sasl`, every probe and flush authenticates
 * first (binary protocol: a node started with `-S` has no other). Never rejects.
 *
 * ```ts
 * for (const { node, probe, flush } of await probeRound(config.nodes, down, 250, config.sasl)) {
 *   const { down: next, event } = observeNode(down.get(node.id), probe, flush, () => 0)
 * }
 * ```
 */
export async function probeRound(
  nodes: readonly ServerAddress[],
  down: ReadonlyMap<string, DownNode>,
  probeTimeoutMs: number,
  sasl: SaslCredentials | undefined,
): Promise<NodeCheck[]> {
  const probing = performance.now()
  const first = await Promise.all(nodes.map((node) => probeNode(node, probeTimeoutMs, sasl)))
  // Probes that took well over their timeout mean the monitor itself stalled (GC, a
  // paused VM), not the nodes: ask again before taking a node down and flushing it.
  const stalled = probesStalled(performance.now() - probing, probeTimeoutMs)
  const probes = await Promise.all(
    nodes.map((node, i) => (needsReprobe(stalled, first[i]!, down.get(node.id)) ? probeNode(node, probeTimeoutMs, sasl) : first[i]!)),
  )
  const flushes = await Promise.all(
    nodes.map((node, i): Promise<FlushOutcome> =>
      flushDue(probes[i]!, down.get(node.id))
        ? flushNode(node, probeTimeoutMs, sasl).then(
            () => undefined,
            (error: unknown) => errorMessage(error),
          )
        : Promise.resolve(null),
    ),
  )
  return nodes.map((node, i) => ({ node, probe: probes[i]!, flush: flushes[i] }))
}
