import { Kysely, type KyselyPlugin } from 'kysely'
import { createQueryCache, type QueryCache, type QueryCacheOptions } from '../../src/index.js'
import { createSchema, ExecutionCounter, openPostgres, type DB, type TestDatabase } from './database.js'
import { startMemcached, type MemcachedCluster } from './memcached.js'

/** One "process" of the farm: its own Kysely, pool and cache client, sharing the store. */
export interface Client {
  readonly db: Kysely<DB>
  readonly cache: QueryCache
  readonly executions: ExecutionCounter
  readonly errors: unknown[]
}

let namespaces = 0

/** A fresh namespace, so tests sharing memcached nodes never see each other's entries. */
export function freshNamespace(): string {
  return `t${process.pid}-${Date.now().toString(36)}-${namespaces++}`
}

export function createClient(
  database: TestDatabase,
  options: QueryCacheOptions,
  plugins: KyselyPlugin[] = [],
): Client {
  const errors: unknown[] = []
  const executions = new ExecutionCounter()
  const cache = createQueryCache({
    defaultSchema: database.schema,
    onError: (error) => errors.push(error),
    ...options,
  })
  const db = new Kysely<DB>({ dialect: cache.wrapDialect(executions.wrap(database.dialect())), plugins })
  return { db, cache, executions, errors }
}

export async function closeClient(client: Client): Promise<void> {
  await client.db.destroy()
  await client.cache.close()
}

/** PostgreSQL with the test schema (two people, `v0` and `other`) and `nodes` memcached processes. */
export async function openFarm(nodes: number): Promise<{ database: TestDatabase; memcached: MemcachedCluster }> {
  const [database, memcached] = await Promise.all([openPostgres(), startMemcached(nodes)])
  const setup = createClient(database, {})
  await createSchema(setup.db)
  await setup.db.insertInto('person').values([{ first_name: 'v0' }, { first_name: 'other' }]).execute()
  await closeClient(setup)
  return { database, memcached }
}

/** Closes `clients`, then the nodes and the database of {@link openFarm} (either may be missing after a failed start). */
export async function closeFarm(farm: { database?: TestDatabase; memcached?: MemcachedCluster }, clients: readonly Client[]): Promise<void> {
  for (const client of clients) await closeClient(client)
  await farm.memcached?.stopAll()
  await farm.database?.close()
}
