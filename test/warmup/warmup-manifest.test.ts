import { describe, expect, it } from 'vitest'
import type { HotQuery } from '../../src/statistics/query-shape.js'
import { ManifestError, createManifest, orderForWarmup, parseManifest, serializeManifest } from '../../src/warmup/manifest.js'
import type { WarmupManifest } from '../../src/warmup/manifest.js'

function hot(key: string, score: number, overrides: Partial<HotQuery> = {}): HotQuery {
  return {
    key: `app:q:${key}`,
    sql: 'select * from "person" where "id" = $1',
    parameters: [1],
    tables: ['public.person'],
    tags: [],
    ttl: 60,
    requests: 10,
    error: 0,
    hits: 8,
    misses: 2,
    meanDatabaseMs: score / 10,
    totalDatabaseMs: score / 5,
    lastSeen: 0,
    score,
    ...overrides,
  }
}

const CREATED = new Date(Date.UTC(2024, 5, 10, 12, 0, 0))

/** A valid manifest as a plain object, with one entry changed. */
function withEntry(changes: Record<string, unknown>): Record<string, unknown> {
  const text = serializeManifest(createManifest('app', [hot('a', 5)], CREATED))
  const document = JSON.parse(text) as { entries: Array<Record<string, unknown>> }
  document.entries[0] = { ...document.entries[0], ...changes }
  return document
}

function rejection(input: string | object): ManifestError {
  try {
    parseManifest(input)
  } catch (error) {
    expect(error).toBeInstanceOf(ManifestError)
    return error as ManifestError
  }
  throw new Error('parseManifest accepted it')
}

describe('warm-up manifests', () => {
  it('round-trip create → serialize → parse with Date, bigint and Buffer parameters', () => {
    const parameters = [new Date(Date.UTC(1990, 0, 1)), 2n ** 70n, Buffer.from([0, 1, 254, 255]), null, 'text', 12.5, { nested: [true] }]
    const manifest = createManifest(
      'app',
      [
        hot('dates', 900, { parameters, tables: ['public.person', 'audit.log'], tags: ['people'], ttl: 300 }),
        hot('plain', 100),
      ],
      CREATED,
    )
    expect(manifest).toMatchObject({ version: 1, namespace: 'app', createdAt: '2024-06-10T12:00:00.000Z' })
    const text = serializeManifest(manifest)
    const parsed = parseManifest(text)
    expect(parsed).toEqual(manifest)
    const first = parsed.entries[0]!
    expect(first.parameters[0]).toBeInstanceOf(Date)
    expect(first.parameters[1]).toBe(2n ** 70n)
    expect(Buffer.isBuffer(first.parameters[2])).toBe(true)
    expect(first).toMatchObject({ key: 'app:q:dates', tables: ['public.person', 'audit.log'], tags: ['people'], ttl: 300, score: 900 })
    // The object form (already JSON.parse'd) reads the same.
    expect(parseManifest(JSON.parse(text) as object)).toEqual(manifest)
    // One entry per line; parameters in superjson form.
    expect(text.split('\n').filter((line) => line.includes('"key"'))).toHaveLength(2)
    expect((JSON.parse(text) as { entries: Array<{ parameters: unknown }> }).entries[1]!.parameters).toEqual({ json: [1] })
  })

  it('accepts plain JSON arrays as parameters and ignores unknown fields', () => {
    const parsed = parseManifest(withEntry({ parameters: [1, 'a', null], comment: 'hand-written' }))
    expect(parsed.entries[0]!.parameters).toEqual([1, 'a', null])
  })

  it('accepts semicolons inside literals, quoted identifiers and comments, and one at the end', () => {
    for (const sql of [
      `select * from "person" where "note" = 'a;b' ;  \n`,
      'select * from "odd;name"',
      'select 1 -- trailing; comment\n',
      'select $$x;y$$ as a /* ; */',
      "select E'it\\'s;' as a",
      'with p as (select * from "person") select * from p',
    ]) {
      expect(parseManifest(withEntry({ sql })).entries[0]!.sql).toBe(sql)
    }
  })

  it('rejects an unsupported version', () => {
    const error = rejection({ ...withEntry({}), version: 2 })
    expect(error.message).toBe('manifest version 2 is not supported; this version of kysely-memcache reads version 1')
    expect(error.path).toBe('version')
    expect(rejection({ ...withEntry({}), version: '1' }).message).toBe('version must be the number 1, got "1"')
  })

  it('rejects what is not JSON or not an object', () => {
    expect(rejection('{"version": 1,').message).toMatch(/^manifest is not valid JSON: /)
    expect(rejection('[]').message).toBe('manifest must be an object, got []')
    expect(rejection('[]').path).toBe('')
  })

  it('rejects missing and ill-typed fields, naming them', () => {
    const { namespace: _dropped, ...noNamespace } = withEntry({})
    expect(rejection(noNamespace)).toMatchObject({ message: 'namespace is missing', path: 'namespace' })
    expect(rejection(withEntry({ sql: undefined }))).toMatchObject({ message: 'entries[0].sql is missing', path: 'entries[0].sql' })
    expect(rejection(withEntry({ sql: 42 }))).toMatchObject({ message: 'entries[0].sql must be a string, got 42' })
    expect(rejection(withEntry({ tables: 'person' }))).toMatchObject({
      message: 'entries[0].tables must be an array of non-empty strings, got "person"',
      path: 'entries[0].tables',
    })
    expect(rejection(withEntry({ tags: ['ok', ''] })).path).toBe('entries[0].tags[1]')
    expect(rejection(withEntry({ parameters: { json: 'x' } })).message).toBe('entries[0].parameters.json must be an array, got "x"')
    expect(rejection(withEntry({ key: 'has space' })).path).toBe('entries[0].key')
    expect(rejection({ ...withEntry({}), createdAt: 'yesterday' }).message).toBe(
      'createdAt must be an ISO 8601 date-time, got "yesterday"',
    )
    expect(rejection({ ...withEntry({}), namespace: 'a b' }).path).toBe('namespace')
    expect(rejection({ ...withEntry({}), entries: {} }).message).toBe('entries must be an array, got {}')
  })

  it('rejects negative TTLs and scores', () => {
    expect(rejection(withEntry({ ttl: -1 }))).toMatchObject({
      message: 'entries[0].ttl must be a finite number of seconds between 0 and 2592000 (30 days), got -1',
      path: 'entries[0].ttl',
    })
    expect(rejection(withEntry({ score: -0.5 }))).toMatchObject({
      message: 'entries[0].score must be a finite number >= 0, got -0.5',
      path: 'entries[0].score',
    })
  })

  it('rejects an entry that is not a single SELECT', () => {
    expect(rejection(withEntry({ sql: 'delete from person' }))).toMatchObject({
      message: 'entries[0].sql must be a single read-only SELECT statement, got "delete from person"',
      path: 'entries[0].sql',
    })
    expect(rejection(withEntry({ sql: 'select 1; delete from person' }))).toMatchObject({
      message: 'entries[0].sql must be a single statement (";" may only end it), got "select 1; delete from person"',
      path: 'entries[0].sql',
    })
    expect(rejection(withEntry({ sql: 'with d as (delete from x returning *) select * from d' }))).toMatchObject({
      message: 'entries[0].sql must be a single read-only SELECT statement, got "with d as (delete from x returning *) select * from d"',
      path: 'entries[0].sql',
    })
    expect(rejection(withEntry({ sql: 'select 1; select 2' })).path).toBe('entries[0].sql')
    // A long statement is clipped in the message.
    expect(rejection(withEntry({ sql: `update t set a = '${'x'.repeat(1000)}'` })).message.length).toBeLessThan(300)
  })

  it('names the entry at fault among many', () => {
    const document = JSON.parse(serializeManifest(createManifest('app', [hot('a', 3), hot('b', 2), hot('c', 1)], CREATED))) as {
      entries: Array<Record<string, unknown>>
    }
    document.entries[2]!['sql'] = 'truncate person'
    expect(rejection(document).path).toBe('entries[2].sql')
  })

  it('does not check the namespace against anything: the caller decides', () => {
    expect(parseManifest({ ...withEntry({}), namespace: 'other-app' }).namespace).toBe('other-app')
  })

  it('leaves out of a new manifest what it could not replay', () => {
    const manifest = createManifest('app', [hot('ok', 2), hot('locking', 1, { sql: 'select * from "person" for update' })], CREATED)
    expect(manifest.entries.map((entry) => entry.key)).toEqual(['app:q:ok'])
    expect(() => createManifest('bad namespace', [])).toThrow(/namespace must be/)
  })

  it('orders entries by score, highest first, ties in manifest order', () => {
    const manifest: WarmupManifest = createManifest(
      'app',
      [hot('low', 1), hot('tieA', 50), hot('high', 900), hot('tieB', 50), hot('zero', 0)],
      CREATED,
    )
    const ordered = orderForWarmup(manifest)
    expect(ordered.map((entry) => entry.key)).toEqual(['app:q:high', 'app:q:tieA', 'app:q:tieB', 'app:q:low', 'app:q:zero'])
    // A new array: the manifest keeps its order.
    expect(manifest.entries[0]!.key).toBe('app:q:low')
  })

  it('serializes an empty manifest', () => {
    const manifest = createManifest('app', [], CREATED)
    expect(parseManifest(serializeManifest(manifest))).toEqual(manifest)
  })
})
