import { Kysely, type KyselyPlugin } from 'kysely'
import { createQueryCache, type QueryCache, type QueryCacheOptions } from '../../src/index.js'
import { ExecutionCounter, type DB, type TestDatabase } from './database.js'

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
