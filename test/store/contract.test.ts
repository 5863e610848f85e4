import { afterAll, beforeAll, describe } from 'vitest'
import { MemcachedStore } from '../../src/store/memcached/memcached-store.js'
import { MemoryStore } from '../../src/store/memory-store.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'
import { storeContract } from './store-contract.js'

describe('MemoryStore', () => {
  storeContract((options) => new MemoryStore(options))
})

describe('MemcachedStore on one real memcached node', () => {
  let cluster: MemcachedCluster

  beforeAll(async () => {
    cluster = await startMemcached(1)
  })

  afterAll(async () => {
    await cluster?.stopAll()
  })

  storeContract((options) => new MemcachedStore({ servers: cluster.servers, ...options }), { framesValues: true })
})

describe('MemcachedStore on one memcached node with SASL on (-S), authenticated', () => {
  const sasl = { username: 'contract', password: 'contract-pw-9f2c' }
  let cluster: MemcachedCluster

  beforeAll(async () => {
    cluster = await startMemcached(1, { sasl })
  })

  afterAll(async () => {
    await cluster?.stopAll()
  })

  storeContract((options) => new MemcachedStore({ servers: cluster.servers, sasl, ...options }), { framesValues: true })
})
