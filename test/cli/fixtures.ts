/**
 * What the CLI test files share: two memcached nodes per file, and for the
 * commands that replay queries a PostgreSQL schema with cached traffic.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll } from 'vitest'
import type { Monitor } from '../../src/monitor/start-monitor.js'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import { createSchema, DATABASE_URL, openPostgres } from '../harness/database.js'
import type { TestDatabase } from '../harness/database.js'
import { closeClient, createClient } from '../harness/farm.js'
import type { Client } from '../harness/farm.js'
import { startMemcached } from '../harness/memcached.js'
import type { MemcachedCluster, StartMemcachedOptions } from '../harness/memcached.js'
import type { SaslCredentials } from '../../src/util/validate.js'

let namespaces = 0

/** A namespace no other test uses, so tests sharing the nodes never see each other's keys. */
export function freshNamespace(): string {
  return `cli${process.pid}-${Date.now().toString(36)}-${namespaces++}`
}

export interface CliMemcached {
  readonly cluster: MemcachedCluster
  /** The nodes as --servers takes them. */
  readonly servers: string
  /** The credentials the nodes want (started with `sasl`), which the stores and clients here use. */
  readonly sasl: SaslCredentials | undefined
  /** A store on the nodes, closed after the test. */
  reader(): MemcachedStore
  /** Stops `monitor` after the test. */
  track(monitor: Monitor): Monitor
}

/** Two memcached nodes for the calling test file (with SASL on when `options.sasl`). */
export function useMemcached(options: StartMemcachedOptions = {}): CliMemcached {
  let cluster: MemcachedCluster | undefined
  const monitors: Monitor[] = []
  const stores: MemcachedStore[] = []

  beforeAll(async () => {
    cluster = await startMemcached(2, options)
  })

  afterEach(async () => {
    await Promise.all(monitors.splice(0).map((monitor) => monitor.stop()))
    await Promise.all(stores.splice(0).map((store) => store.close()))
  })

  afterAll(async () => {
    await cluster?.stopAll()
  })

  const started = (): MemcachedCluster => {
    if (cluster === undefined) throw new Error('memcached is not started yet')
    return cluster
  }
  return {
    get cluster() {
      return started()
    },
    get servers() {
      return started().servers.join(',')
    },
    sasl: options.sasl,
    reader: () => {
      const store = new MemcachedStore({ servers: started().servers, timeoutMs: 200, sasl: options.sasl })
      stores.push(store)
      return store
    },
    track: (monitor) => {
      monitors.push(monitor)
      return monitor
    },
  }
}

export interface CliDatabase {
  /** This file's schema, with 12 rows in `person`. */
  readonly database: TestDatabase
  /** A temporary directory for manifests, removed after the file. */
  readonly directory: string
  /** The test database for the CLI: unqualified names resolve to this file's schema. */
  databaseUrl(): string
  /** One "process" caching in `namespace` on the nodes, closed after the file. */
  client(namespace: string): Client
  /** 12 cached queries, pushed to the farm-wide statistics. */
  traffic(namespace: string): Promise<Client>
}

/** The cached query {@link CliDatabase.traffic} runs, for ids 1 to 12. */
export const byId = (c: Client, id: number) => c.db.selectFrom('person').select(['id', 'first_name']).where('id', '=', id).cached()

/** A PostgreSQL schema for the calling test file, caching on `memcached`. */
export function useDatabase(memcached: CliMemcached): CliDatabase {
  let database: TestDatabase | undefined
  let directory: string | undefined
  const clients: Client[] = []

  beforeAll(async () => {
    database = await openPostgres()
    directory = await mkdtemp(join(tmpdir(), 'kmc-cli-'))
    const setup = createClient(database, {})
    await createSchema(setup.db)
    await setup.db
      .insertInto('person')
      .values(Array.from({ length: 12 }, (_, i) => ({ first_name: `person ${i}` })))
      .execute()
    await closeClient(setup)
  })

  afterAll(async () => {
    await Promise.all(clients.map(closeClient))
    await database?.close()
    if (directory !== undefined) await rm(directory, { recursive: true, force: true })
  })

  const opened = (): TestDatabase => {
    if (database === undefined) throw new Error('the database is not open yet')
    return database
  }
  const client = (namespace: string): Client => {
    const made = createClient(opened(), { servers: memcached.cluster.servers, namespace, sasl: memcached.sasl })
    clients.push(made)
    return made
  }
  return {
    get database() {
      return opened()
    },
    get directory() {
      if (directory === undefined) throw new Error('the directory is not made yet')
      return directory
    },
    databaseUrl: () => {
      const url = new URL(DATABASE_URL)
      url.searchParams.set('options', `-c search_path=${opened().schema}`)
      return url.toString()
    },
    client,
    traffic: async (namespace) => {
      const farm = client(namespace)
      for (let id = 1; id <= 12; id++) await byId(farm, id).execute()
      await farm.cache.exportWarmupManifest()
      return farm
    },
  }
}
