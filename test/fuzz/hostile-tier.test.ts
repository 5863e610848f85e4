/**
 * End to end, against real memcached and PostgreSQL: bytes written straight into
 * memcached (a raw memjs client, as anyone who reaches a node could) under the
 * library's own keys, framed as the store frames values without a secret (a key
 * hash: no protection from a writer who means harm, so the decoders are what stands
 * in the way) and some unframed. A `.cached()` query whose entry is garbage, truncated, a bomb
 * or crafted MessagePack behind the right header and generations still returns the
 * database's rows, and the database ran it (its own sequence says so); garbage tier
 * states and overrides do not change the process mode (a valid one does: the reads
 * are real); garbage farm statistics do not stop a farm manifest.
 */
import fc from 'fast-check'
import { ParseJSONResultsPlugin } from 'kysely'
import memjs from 'memjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Codec } from '../../src/cache/codec.js'
import type { CacheEvent } from '../../src/index.js'
import { hotStatisticsKey, modeOverrideKey, queryKey, tierStateKey } from '../../src/keys.js'
import { ValueSigner } from '../../src/store/value-signer.js'
import { parseManifest, serializeManifest } from '../../src/warmup/manifest.js'
import { scopeOf, type TestDatabase } from '../harness/database.js'
import { executionsSoFar, expensiveQuery } from '../harness/expensive-query.js'
import { closeFarm, createClient, freshNamespace, openFarm, type Client } from '../harness/farm.js'
import type { MemcachedCluster } from '../harness/memcached.js'
import { bundleBomb, cat, EXT, ext, framed, hostileBody, hugeClaims, NESTING_LEVELS, nestedValue, NIL, recordDefinition } from './msgpack.js'
import { registeredNames } from './rows.js'

let database: TestDatabase
let memcached: MemcachedCluster
const clients: Client[] = []
let raw: memjs.Client[] = []

beforeAll(async () => {
  ;({ database, memcached } = await openFarm(2))
  raw = memcached.servers.map((server) => memjs.Client.create(server, { retries: 0, timeout: 2, logger: { log: () => {} } }))
})

afterAll(async () => {
  for (const client of raw) client.close()
  await closeFarm({ database, memcached }, clients)
})

/** Frames values as a store without a secret does: anyone can. */
const signer = new ValueSigner()

/** Writes `value` under `key` on every node, bypassing the library; framed as the store frames values unless `unframed`. */
async function writeEverywhere(key: string, value: Buffer, unframed = false): Promise<void> {
  const stored = unframed ? value : signer.seal(key, value)
  await Promise.all(raw.map((client) => client.set(key, stored, { expires: 300 })))
}

/** The stored copies of `key` (unframed), one per node that has it. */
async function readEverywhere(key: string): Promise<Buffer[]> {
  const answers = await Promise.all(raw.map((client) => client.get(key)))
  return answers.flatMap((answer) => {
    const opened = answer.value === null ? undefined : signer.open(key, answer.value)
    return Buffer.isBuffer(opened) ? [opened] : []
  })
}

function client(options: Parameters<typeof createClient>[1] = {}): Client & { events: CacheEvent[] } {
  const events: CacheEvent[] = []
  const made = createClient(
    database,
    { servers: memcached.servers, namespace: freshNamespace(), nearCache: false, earlyRefresh: false, onEvent: (event) => events.push(event), ...options },
    // A plugin that walks the rows recursively: rows nested a few thousand deep would overflow it (a failed query).
    [new ParseJSONResultsPlugin()],
  )
  clients.push(made)
  return Object.assign(made, { events })
}

const sample = <T>(arbitrary: fc.Arbitrary<T>, count: number, seed: number): T[] => fc.sample(arbitrary, { numRuns: count, seed })

describe('a hostile cache tier, end to end', () => {
  it('serves the database rows for a query whose entry is garbage, never a failure', async () => {
    const c = client()
    const query = () => expensiveQuery(c.db, 0).cached({ ttl: 600 })
    const { sql, parameters } = query().compile()
    const key = queryKey(c.cache.namespace, sql, parameters, [], await scopeOf(database))
    await query().execute()
    const stored = await executionsSoFar(database.schema)
    // Sanity: the entry is where the key says, and a hit does not reach the database.
    await query().execute()
    expect(await executionsSoFar(database.schema)).toBe(stored)
    const [entryBytes] = await readEverywhere(key)
    const codec = new Codec()
    const entry = codec.decodeEntry(entryBytes!)!
    expect(entry).toBeDefined()
    const behindHeader = (rows: Buffer) => codec.encodeEntry(entry.generations, rows, { freshUntil: 0, expiresAt: 0, computeMs: 0 })
    const realRows = Buffer.from(entry.rows)

    const garbage: Array<[string, Buffer]> = [
      ['empty', Buffer.alloc(0)],
      ['a header of another release', Buffer.from('k4.abcdefgh\n0,0,0\nx\n\u0093')],
      ['the header alone', entryBytes!.subarray(0, entryBytes!.indexOf(0x0a) + 1)],
      ['times that are not numbers', Buffer.concat([entryBytes!.subarray(0, entryBytes!.indexOf(0x0a) + 1), Buffer.from('1e999,NaN,-1\n\n'), realRows])],
      ['JSON', Buffer.from('{"rows":[{"first_name":"hacked"}]}')],
      ...sample(fc.uint8Array({ minLength: 1, maxLength: 2000 }), 8, 1).map((bytes, i): [string, Buffer] => [`random bytes ${i}`, Buffer.from(bytes)]),
      // Behind the right header and generations: only the rows decoder stands between these and the user.
      ...[1, 5, 17, realRows.length - 1].map((end): [string, Buffer] => [`rows truncated to ${end} bytes`, behindHeader(realRows.subarray(0, end))]),
      ['rows with trailing bytes', behindHeader(Buffer.concat([realRows, Buffer.from([0xc0])]))],
      ['rows without the opening string', behindHeader(Buffer.from([0x91, 0x81, 0xa1, 0x61, 0x01]))],
      ...sample(hugeClaims(), 4, 2).map((bytes, i): [string, Buffer] => [`a huge length claim ${i}`, behindHeader(bytes)]),
      // 4000 arrays: msgpackr reads them, the plugin would not; the encoder never writes more than 1000.
      ...Object.keys(NESTING_LEVELS).flatMap((kind) =>
        [1002, 4000, 40_000].map((depth): [string, Buffer] => [`${kind} nested ${depth} deep`, behindHeader(framed(cat([0x91], nestedValue(kind, depth))))]),
      ),
      ...sample(bundleBomb(), 3, 4).map((bytes, i): [string, Buffer] => [`a string bundle bomb ${i} (${bytes.length} bytes)`, behindHeader(bytes)]),
      // A record keyed by a bigint beyond the cap (msgpackr would turn it into decimal text, superlinear in its size).
      ['a bigint record key of 100 kB', behindHeader(framed(cat([0x91], recordDefinition(0, [ext(EXT.bigint, Buffer.alloc(100_000, 0x7f), 32)], [NIL]))))],
    ]
    // Random crafted MessagePack: what decodes as valid rows would be served (a writer of valid
    // entries is for signing to stop), so only what the decoder refuses is asserted a miss.
    const crafted = sample(hostileBody(registeredNames).map(framed), 40, 6)
      .map((bytes, i): [string, Buffer] => [`crafted MessagePack ${i}`, behindHeader(bytes)])
      .filter(([, bytes]) => {
        try {
          codec.decodeRows(codec.decodeEntry(bytes)!.rows)
          return false
        } catch {
          return true
        }
      })
    expect(crafted.length).toBeGreaterThan(10)
    const refused = [...garbage, ...crafted]

    // Unframed bytes are refused by the store before any decoder: a few, to see that they are misses too.
    const cases = [...refused.map(([what, bytes]) => [what, bytes, false] as const), ...refused.slice(0, 5).map(([what, bytes]) => [`${what}, unframed`, bytes, true] as const)]
    for (const [what, bytes, unframed] of cases) {
      await writeEverywhere(key, bytes, unframed)
      const before = await executionsSoFar(database.schema)
      const rows = await query().execute()
      const after = await executionsSoFar(database.schema)
      expect(after, what).toBe(before + 1)
      expect(rows, what).toEqual([{ first_name: 'v0', slept: '', execution: String(after) }])
    }
    // And the entry the last miss stored is a hit again.
    const last = await executionsSoFar(database.schema)
    await query().execute()
    expect(await executionsSoFar(database.schema)).toBe(last)
  }, 60_000)

  it('keeps the process mode on garbage tier states and overrides; a valid degraded state does change it', async () => {
    const c = client({ modeRefreshMs: 60_000 })
    const namespace = c.cache.namespace
    const valid = { version: 1, mode: 'degraded', down: [], since: Date.now(), reason: 'fuzz', setBy: 'fuzz', at: Date.now() }
    const states: string[] = [
      '',
      'degraded',
      '{"mode":"degraded"}',
      JSON.stringify({ ...valid, version: 2 }),
      JSON.stringify({ ...valid, mode: 'DEGRADED' }),
      JSON.stringify({ ...valid, down: 'all' }),
      JSON.stringify({ ...valid, down: [1] }),
      JSON.stringify({ ...valid, reason: null }),
      JSON.stringify({ ...valid, hitRatio: 'x' }),
      JSON.stringify({ ...valid, hitRatio: 2 }),
      JSON.stringify({ ...valid, override: { mode: 'degraded', until: 'later' } }),
      JSON.stringify({ ...valid, warmup: { node: 1, done: -1, total: 'x', startedAt: 0 } }),
      JSON.stringify(valid).replace(/"since":\d+/, '"since":1e999'),
      JSON.stringify(valid).replace(/"at":\d+/, '"at":-1e999'),
      JSON.stringify(valid).replace(/"since":\d+/, '"since":1e300'),
      `{"__proto__":${JSON.stringify(valid)}}`,
      `{"constructor":{"prototype":${JSON.stringify(valid)}}}`,
      `[${JSON.stringify(valid)}]`,
      '['.repeat(100_000) + ']'.repeat(100_000),
      JSON.stringify(valid).slice(0, -1),
      ...sample(fc.uint8Array({ maxLength: 300 }), 5, 7).map((bytes) => Buffer.from(bytes).toString('latin1')),
    ]
    const overrides: string[] = [
      '{"mode":"degraded","until":1e999,"setBy":"x","at":1}',
      `{"mode":"degraded","until":${Date.now() + 600_000},"setBy":"x"}`,
      `{"mode":"degraded","until":"${Date.now() + 600_000}","setBy":"x","at":1}`,
      `{"mode":"auto","until":${Date.now() + 600_000},"setBy":"x","at":1}`,
      `{"__proto__":{"mode":"degraded","until":${Date.now() + 600_000},"setBy":"x","at":1}}`,
    ]
    expect(await c.cache.refreshMode()).toBe('normal')
    for (const state of states) {
      await writeEverywhere(tierStateKey(namespace), Buffer.from(state, 'latin1'))
      expect(await c.cache.refreshMode(), state.slice(0, 120)).toBe('normal')
    }
    for (const override of overrides) {
      await writeEverywhere(modeOverrideKey(namespace), Buffer.from(override))
      expect(await c.cache.refreshMode(), override).toBe('normal')
    }
    expect(c.events.filter((event) => event.type === 'mode')).toEqual([])
    // The reads are real: a valid degraded state does change the mode, and garbage after it is no state again.
    await writeEverywhere(tierStateKey(namespace), Buffer.from(JSON.stringify(valid)))
    expect(await c.cache.refreshMode()).toBe('degraded')
    await writeEverywhere(tierStateKey(namespace), Buffer.from(JSON.stringify(valid).replace(/"since":\d+/, '"since":1e999')))
    expect(await c.cache.refreshMode()).toBe('normal')
    expect(c.cache.mode).toBe('normal')
  })

  it('exports a farm manifest over garbage farm statistics, and leaves a valid document behind', async () => {
    const c = client({ statistics: { shareEveryMs: 60_000 } })
    const key = hotStatisticsKey(c.cache.namespace)
    const entry = { key: 'x:q:y', sql: 'select 1', tables: [], tags: [], ttl: 1, requests: 1, error: 0, hits: 0, misses: 1, executions: 1, databaseMs: 1, lastSeen: Date.now() }
    const documents = [
      'garbage',
      '{"version":1,"at":1e999,"halfLifeMs":1,"entries":[]}',
      JSON.stringify({ version: 1, at: Date.now(), halfLifeMs: 1, entries: [{ ...entry, parameters: '{"json":[[0]],"meta":{"referentialEqualities":{"0":["0.0"]}}}' }] }),
      JSON.stringify({ version: 1, at: Date.now(), halfLifeMs: 1, entries: [{ ...entry, parameters: '{"json":[],"meta":{"values":"x"}}' }] }),
      JSON.stringify({ version: 1, at: Date.now(), halfLifeMs: 1, entries: [{ ...entry, key: 'has space', parameters: '{"json":[]}', requests: 1e300 }] }),
    ]
    for (const document of documents) {
      await writeEverywhere(key, Buffer.from(document))
      // New traffic, so the export's push writes the document again (with none it leaves it as it is).
      await c.db.selectFrom('person').select('first_name').where('id', '=', 1).cached().execute()
      const manifest = await c.cache.exportWarmupManifest({ scope: 'farm' })
      expect(parseManifest(serializeManifest(manifest))).toEqual(manifest)
      expect(manifest.entries.map((e) => e.sql), document).toEqual(['select "first_name" from "person" where "id" = $1'])
      const [written] = await readEverywhere(key)
      expect(JSON.parse(written!.toString()).entries).toHaveLength(1)
    }
  })
})
