import { Kysely, PostgresDialect } from 'kysely'
import { CacheEngine } from '../cache/engine.js'
import { Codec } from '../cache/codec.js'
import { createCachingDialect } from '../kysely/caching-dialect.js'
import { MemcachedStore, secretsOption } from '../store/memcached/memcached-store.js'
import type { NodeAwareStore } from '../store/node-aware-store.js'
import type { SaslCredentials } from '../util/validate.js'
import { runWarmup } from './replay.js'
import type { WarmupOptions, WarmupReport } from './replay.js'
import type { WarmupManifest } from './manifest.js'

/** Options of {@link createReplayClient}. */
export interface ReplayClientOptions {
  /** memcached nodes as `"host:port"`, the same list the processes use. */
  readonly servers: readonly string[]
  /** Namespace of the processes' caches. */
  readonly namespace: string
  /** PostgreSQL connection string the entries are replayed against. */
  readonly databaseUrl: string
  /** Database connections, and so entries replayed at once at most. */
  readonly concurrency: number
  /** Longest the replay may run, ms: bounds connecting (at most 10 s) and every statement. */
  readonly maxMs: number
  /** Nodes the replay routes around (down, or not yet flushed): it reads and writes the others only. */
  readonly holdDown?: ReadonlySet<string>
  /** SASL PLAIN credentials for the memcached connections (nodes started with `-S`). */
  readonly sasl?: SaslCredentials
  /** The processes' signing secrets, current first (see docs/security.md). */
  readonly secrets?: readonly Buffer[]
  /** An idle database connection failed; without a listener the pool's `error` event would end the process. */
  readonly onDatabaseError?: (error: Error) => void
}

/** A cache client made for replaying manifests, nothing else: no mode, no statistics, no safe mode. */
export interface ReplayClient {
  /** Its memcached store, to route (hold nodes down) while it replays. */
  readonly store: NodeAwareStore
  /** Replays `manifest` (see `QueryCache.warmup`) through the client's own database pool. */
  replay(manifest: WarmupManifest, options?: Omit<WarmupOptions, 'db'>): Promise<WarmupReport>
  /** Closes the database pool and the memcached connections. Never rejects. */
  close(): Promise<void>
}

/**
 * Creates a client that replays warm-up manifests into memcached: a cache
 * engine over its own memcached store (holding `holdDown` off its ring) and a
 * Kysely instance over a pg pool, each entry under generations read by
 * majority, like any miss. `pg` is loaded on first use.
 *
 * ```ts
 * const client = await createReplayClient({
 *   servers: ['10.0.0.1:11211', '10.0.0.2:11211'],
 *   namespace: 'shop',
 *   databaseUrl: 'postgres://reader@db:5432/shop',
 *   concurrency: 4,
 *   maxMs: 60_000,
 *   holdDown: new Set(['10.0.0.3:11211']),
 * })
 * try {
 *   const report = await client.replay(manifest, { concurrency: 4 })
 * } finally {
 *   await client.close()
 * }
 * ```
 */
export async function createReplayClient(options: ReplayClientOptions): Promise<ReplayClient> {
  const { default: pg } = await import('pg')
  const store = new MemcachedStore({ servers: options.servers, sasl: options.sasl, ...secretsOption(options.secrets ?? []) })
  if (options.holdDown !== undefined) store.holdDown(options.holdDown, 'flushed')
  const engine = new CacheEngine({
    store,
    namespace: options.namespace,
    defaultTtl: 60,
    defaultSchema: 'public',
    generationReplicas: 3,
    timeoutMs: 250,
    safeMode: false,
    mode: () => 'normal',
    statistics: undefined,
    hotReplicas: 2,
    codec: new Codec(),
    // Replay only stores; nothing is read twice.
    nearCache: false,
    earlyRefresh: false,
    ttlJitter: 0.1,
    onError: () => {},
  })
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: options.concurrency,
    connectionTimeoutMillis: Math.min(options.maxMs, 10_000),
    statement_timeout: Math.max(1, Math.ceil(options.maxMs)),
  })
  const onDatabaseError = options.onDatabaseError
  pool.on('error', (error: Error) => onDatabaseError?.(error))
  const db = new Kysely<any>({ dialect: createCachingDialect(new PostgresDialect({ pool }), engine, { scope: { explicit: undefined, defaultSchema: 'public' }, cacheAll: undefined }) })
  return {
    store,
    replay: (manifest, replayOptions = {}) => runWarmup(manifest, { ...replayOptions, db }, engine),
    close: async () => {
      await Promise.all([db.destroy().catch(() => {}), store.close().catch(() => {})])
    },
  }
}
