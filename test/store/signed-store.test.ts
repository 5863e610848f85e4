/**
 * An attacker who reaches memcached writes under the library's keys directly (a
 * raw memjs client per node, no library code). Real memcached and PostgreSQL;
 * what the database executes is counted below the cache (ExecutionCounter).
 */
import memjs from 'memjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { QueryCacheOptions } from '../../src/index.js'
import { modeOverrideKey, namespaceGenerationKey, queryKey, tableGenerationKey, tierStateKey } from '../../src/keys.js'
import { RejectedValueError, signStore } from '../../src/store/signed-store.js'
import { MemoryStore } from '../../src/store/memory-store.js'
import { ValueSigner } from '../../src/store/value-signer.js'
import { encodeEntry, encodeRows } from '../../src/cache/codec.js'
import { scopeOf, type TestDatabase } from '../harness/database.js'
import { closeFarm, createClient, freshNamespace, openFarm, type Client } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

let database: TestDatabase
let memcached: MemcachedCluster
let scope: string
const clients: Client[] = []
const attackers: memjs.Client[] = []

const SECRET = 'a farm secret of more than 16 bytes'
const NEXT_SECRET = 'the next farm secret, also long enough'

beforeAll(async () => {
  ;({ database, memcached } = await openFarm(2))
  scope = await scopeOf(database)
  for (const server of memcached.servers) attackers.push(memjs.Client.create(server, { retries: 1, logger: { log: () => {} } }))
})

afterAll(async () => {
  for (const attacker of attackers) attacker.close()
  await closeFarm({ database, memcached }, clients)
})

function client(options: QueryCacheOptions): Client {
  const made = createClient(database, { servers: memcached.servers, ttlJitter: 0, nearCache: false, earlyRefresh: false, ...options })
  clients.push(made)
  return made
}

const personQuery = (c: Client, id: number) => c.db.selectFrom('person').select(['id', 'first_name']).where('id', '=', id)

function keyOf(c: Client, id: number): string {
  const { sql: text, parameters } = personQuery(c, id).compile()
  return queryKey(c.cache.namespace, text, parameters, [], scope)
}

/** The raw bytes under `key` on whichever node holds them. */
async function rawGet(key: string): Promise<Buffer> {
  for (const attacker of attackers) {
    const { value } = await attacker.get(key)
    if (value !== null) return value
  }
  throw new Error(`nothing stored under ${key}`)
}

/** Writes `value` under `key` on every node, as an attacker who does not know the ring would. */
async function rawSetEverywhere(key: string, value: Buffer): Promise<void> {
  for (const attacker of attackers) await attacker.set(key, value, { expires: 60 })
}

/** Caches the rows of person 1 and person 2, then copies person 1's entry under person 2's key. */
async function swapEntries(c: Client): Promise<void> {
  await personQuery(c, 1).cached({ ttl: 60 }).execute()
  await personQuery(c, 2).cached({ ttl: 60 }).execute()
  await rawSetEverywhere(keyOf(c, 2), await rawGet(keyOf(c, 1)))
}

describe('a value copied under another key', () => {
  for (const [name, options] of [
    ['with a secret', { secret: SECRET }],
    ['without a secret', {}],
  ] as const) {
    it(`is never served ${name}: the query goes to the database and the copy is counted as rejected`, async () => {
      const c = client({ namespace: freshNamespace(), ...options })
      await swapEntries(c)
      c.executions.reset()
      // Same table, so the generations inside the copied entry match: only the frame tells them apart.
      expect(await personQuery(c, 2).cached({ ttl: 60 }).execute()).toEqual([{ id: 2, first_name: 'other' }])
      expect(c.executions.count('"person"')).toBe(1)
      expect(c.cache.stats().rejected).toBe(1)
      expect(c.errors.filter((error) => error instanceof RejectedValueError)).toHaveLength(1)
      // The database's rows replaced the copy: the next read is a hit again.
      expect(await personQuery(c, 2).cached({ ttl: 60 }).execute()).toEqual([{ id: 2, first_name: 'other' }])
      expect(c.executions.count('"person"')).toBe(1)
    })
  }
})

describe('a forged entry', () => {
  it('is never served with a secret set, whether unsigned, signed with another secret, or signed for another key', async () => {
    const c = client({ namespace: freshNamespace(), secret: SECRET })
    await personQuery(c, 2).cached({ ttl: 60 }).execute()
    const key = keyOf(c, 2)
    // A well-formed entry with the right generations: only the signature can refuse it.
    const genuine = await rawGet(key)
    const payload = genuine.subarray(new ValueSigner([Buffer.from(SECRET)]).overhead)
    const forgedRows = encodeRows([{ id: 2, first_name: 'mallory' }])
    const decoded = payload.toString('latin1').split('\n')
    const forgedEntry = encodeEntry(decoded[2]!.split(','), forgedRows)
    const forgeries = [
      new ValueSigner().seal(key, forgedEntry),
      new ValueSigner([Buffer.from('an attacker guessing the secret')]).seal(key, forgedEntry),
      new ValueSigner([Buffer.from(SECRET)]).seal(`${key}x`, forgedEntry),
      forgedEntry,
    ]
    for (const forged of forgeries) {
      await rawSetEverywhere(key, forged)
      c.executions.reset()
      expect(await personQuery(c, 2).cached({ ttl: 60 }).execute()).toEqual([{ id: 2, first_name: 'other' }])
      expect(c.executions.count('"person"')).toBe(1)
    }
    expect(c.cache.stats().rejected).toBe(forgeries.length)
  })

  it('garbage under generation keys and the tier state never fails a query nor serves a wrong row', async () => {
    const namespace = freshNamespace()
    const c = client({ namespace, secret: SECRET })
    await personQuery(c, 1).cached({ ttl: 60 }).execute()
    for (const key of [tableGenerationKey(namespace, `${database.schema}.person`), namespaceGenerationKey(namespace), tierStateKey(namespace), modeOverrideKey(namespace)]) {
      await rawSetEverywhere(key, Buffer.from('attacker bytes'))
    }
    for (let i = 0; i < 3; i++) {
      expect(await personQuery(c, 1).cached({ ttl: 60 }).execute()).toEqual([{ id: 1, first_name: 'v0' }])
    }
  })
})

describe('rotating the secret', () => {
  it('keeps hits while both secrets are configured, and refuses the old secret once it is dropped', async () => {
    const namespace = freshNamespace()
    const old = client({ namespace, secret: SECRET })
    await personQuery(old, 1).cached({ ttl: 60 }).execute()
    await personQuery(old, 2).cached({ ttl: 60 }).execute()

    const rotating = client({ namespace, secrets: [NEXT_SECRET, SECRET] })
    expect(await personQuery(rotating, 1).cached({ ttl: 60 }).execute()).toEqual([{ id: 1, first_name: 'v0' }])
    expect(rotating.executions.count('"person"')).toBe(0)
    expect(rotating.cache.stats()).toMatchObject({ hits: 1, rejected: 0 })

    // Once every process has both, the old secret goes: what it signed now misses (and is rewritten).
    const rotated = client({ namespace, secret: NEXT_SECRET })
    expect(await personQuery(rotated, 2).cached({ ttl: 60 }).execute()).toEqual([{ id: 2, first_name: 'other' }])
    expect(rotated.executions.count('"person"')).toBe(1)
    expect(rotated.cache.stats().rejected).toBeGreaterThan(0)
  })
})

describe('reporting', () => {
  it('counts every refused read but tells onError about a key once a minute', async () => {
    const c = client({ namespace: freshNamespace(), secret: SECRET })
    await personQuery(c, 1).cached({ ttl: 60 }).execute()
    for (let i = 0; i < 3; i++) {
      await rawSetEverywhere(keyOf(c, 1), Buffer.from(`forged ${i}`))
      await personQuery(c, 1).cached({ ttl: 60 }).execute()
    }
    expect(c.cache.stats().rejected).toBe(3)
    const reported = c.errors.filter((error) => error instanceof RejectedValueError) as RejectedValueError[]
    expect(reported).toHaveLength(1)
    expect(reported[0]!.message).toContain(keyOf(c, 1))
    expect(reported[0]!.message).not.toContain(SECRET)
  })
})

describe('signStore over any store', () => {
  // The embedded store stands in for "some store": the wrapper's rules do not depend on memcached.
  const rejected: string[] = []
  const inner = new MemoryStore()
  const store = signStore(inner, new ValueSigner([Buffer.from(SECRET)]), (key, reason) => rejected.push(`${key} ${reason}`))

  it('a refused home reads as a home that did not answer, never as an absent one', async () => {
    await Promise.all(store.writeHomes('g', Buffer.from('token'), 0, 1))
    expect(await Promise.all(store.readHomes('g', 1))).toEqual([Buffer.from('token')])
    await inner.set('g', Buffer.from('forged token'), 0)
    await expect(Promise.all(store.readHomes('g', 1))).rejects.toBeInstanceOf(RejectedValueError)
    expect(await store.get('g')).toBeUndefined()
    expect(rejected).toEqual(['g unframed', 'g unframed'])
  })

  it('leaves room for the frame and does not touch counters', async () => {
    expect(store.maxValueBytes).toBe(inner.maxValueBytes - new ValueSigner([Buffer.from(SECRET)]).overhead)
    expect(await store.increment('n', 2, 5n)).toBe('5')
    expect(await store.increment('n', 2, 5n)).toBe('7')
  })
})

describe('on memcached with SASL on (-S)', () => {
  // An insider who holds the SASL password but not the signing secret: authentication keeps strangers out, signing keeps rows true.
  const sasl = { username: 'app', password: 'signed-store-pw-71c3' }
  let nodes: MemcachedCluster
  let insider: memjs.Client

  beforeAll(async () => {
    nodes = await startMemcached(1, { sasl })
    insider = memjs.Client.create(nodes.servers[0]!, { username: sasl.username, password: sasl.password, retries: 1, logger: { log: () => {} } })
  })

  afterAll(async () => {
    insider?.close()
    await nodes?.stopAll()
  })

  it('a swapped or forged entry written by an authenticated client is never served', async () => {
    const c = createClient(database, { servers: nodes.servers, sasl, secret: SECRET, namespace: freshNamespace(), ttlJitter: 0, nearCache: false })
    clients.push(c)
    await personQuery(c, 1).cached({ ttl: 60 }).execute()
    await personQuery(c, 2).cached({ ttl: 60 }).execute()
    const { value: first } = await insider.get(keyOf(c, 1))
    expect(first).not.toBeNull()
    await insider.set(keyOf(c, 2), first!, { expires: 60 })
    c.executions.reset()
    expect(await personQuery(c, 2).cached({ ttl: 60 }).execute()).toEqual([{ id: 2, first_name: 'other' }])
    await insider.set(keyOf(c, 1), new ValueSigner().seal(keyOf(c, 1), first!), { expires: 60 })
    expect(await personQuery(c, 1).cached({ ttl: 60 }).execute()).toEqual([{ id: 1, first_name: 'v0' }])
    expect(c.executions.count('"person"')).toBe(2)
    expect(c.cache.stats()).toMatchObject({ rejected: 2, errors: 0 })
  })
})
