import { MemcachedStore, secretsOption } from '../store/memcached/memcached-store.js'
import { probeNode } from '../store/memcached/node-probe.js'
import type { ProbeResult } from '../store/memcached/node-probe.js'
import type { ServerAddress } from '../store/memcached/server-address.js'
import type { SaslCredentials } from '../util/validate.js'
import { NAME } from './cli-io.js'
import type { CliIo } from './cli-io.js'


/** What a command needs to talk to the processes' nodes: their SASL credentials and signing secrets. */
export interface NodeAccess {
  readonly sasl: SaslCredentials | undefined
  readonly secrets: readonly Buffer[]
}

/** What {@link probeNodes} found. */
export interface NodeProbes {
  /** One result a node, in the order of the servers. */
  readonly results: readonly ProbeResult[]
  /** The ids of the nodes that did not answer. */
  readonly down: ReadonlySet<string>
  /** The nodes that did not answer and why, e.g. `10.0.0.2:11211 refused`; `''` when all did. */
  readonly failures: string
}

/**
 * Probes every node at once over a fresh connection, each within `timeoutMs`.
 * Commands probe before they open a store so that they can say which nodes
 * they could not reach, and give up before waiting on a farm that is all down.
 * With `sasl`, each probe authenticates first.
 */
export async function probeNodes(servers: readonly ServerAddress[], timeoutMs: number, sasl: SaslCredentials | undefined): Promise<NodeProbes> {
  const results = await Promise.all(servers.map((server) => probeNode(server, timeoutMs, sasl)))
  const down = new Set(servers.filter((_, i) => results[i]?.ok !== true).map((server) => server.id))
  const failures = servers
    .flatMap((server, i) => {
      const probe = results[i]
      return probe === undefined || probe.ok ? [] : [`${server.id} ${probe.reason}`]
    })
    .join(', ')
  return { results, down, failures }
}

/**
 * A store over `servers` that leaves the `down` nodes alone until they are
 * released, as the processes do with nodes the monitor lists down. Reads and
 * writes go only where they can land: a hung node would cost every call its
 * timeout. Its connections authenticate with `access.sasl` and its values are
 * signed with `access.secrets`. The caller closes the store.
 */
export function openStoreSkipping(
  servers: readonly ServerAddress[],
  timeoutMs: number,
  down: ReadonlySet<string>,
  access: NodeAccess,
): MemcachedStore {
  const store = new MemcachedStore({ servers: servers.map((server) => server.id), timeoutMs, sasl: access.sasl, ...secretsOption(access.secrets) })
  store.holdDown(down, 'probe')
  return store
}

/**
 * Probes the nodes (see {@link probeNodes}), then opens a store over the ones
 * that answered (see {@link openStoreSkipping}). When none answered, it says so
 * on stderr, ending with `outcome` (e.g. "nothing was changed"), and resolves
 * `undefined`: the command has nothing to work on and exits 1.
 */
export async function openReachableStore(
  servers: readonly ServerAddress[],
  timeoutMs: number,
  io: CliIo,
  outcome: string,
  access: NodeAccess,
): Promise<{ store: MemcachedStore; probes: NodeProbes } | undefined> {
  const probes = await probeNodes(servers, timeoutMs, access.sasl)
  if (probes.down.size === servers.length) {
    io.stderr.write(`${NAME}: no memcached node answered (${probes.failures}); ${outcome}\n`)
    return undefined
  }
  return { store: openStoreSkipping(servers, timeoutMs, probes.down, access), probes }
}
