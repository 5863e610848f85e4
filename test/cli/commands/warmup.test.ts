import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { serializeManifest } from '../../../src/warmup/manifest.js'
import type { WarmupManifest } from '../../../src/warmup/manifest.js'
import { freshNamespace, useDatabase, useMemcached } from '../fixtures.js'
import { run } from '../run-cli.js'

const memcached = useMemcached()
const db = useDatabase(memcached)

describe('kysely-memcache warmup', () => {
  it('draws a progress bar on a terminal, and exits 1 listing the entries that failed', async () => {
    const namespace = freshNamespace()
    const manifest: WarmupManifest = {
      version: 1,
      namespace,
      createdAt: new Date().toISOString(),
      entries: [
        { key: `${namespace}:q:a`, sql: 'select count(*) as n from person', parameters: [], tables: [`${db.database.schema}.person`], tags: [], ttl: 60, score: 2 },
        { key: `${namespace}:q:b`, sql: 'select * from no_such_table', parameters: [], tables: [], tags: [], ttl: 60, score: 1 },
      ],
    }
    const file = join(db.directory, `${namespace}.json`)
    await writeFile(file, serializeManifest(manifest))
    const result = await run(['warmup', '--from', file, '--database-url', db.databaseUrl(), '--servers', memcached.servers], undefined, true)
    expect(result.code).toBe(1)
    expect(result.stdout).toMatch(/warming \[[█░]+\] 2\/2 \| 1 warmed, 0 skipped, 1 failed/)
    expect(result.stdout).toMatch(/^kysely-memcache: 1 warmed, 0 skipped, 1 failed of 2 entries in \d+\.\ds/m)
    expect(result.stdout).toContain(`  failed ${namespace}:q:b: relation "no_such_table" does not exist\n    select * from no_such_table\n`)
  })

  it('exits 2 on an invalid manifest, with the ManifestError message and the field at fault', async () => {
    const file = join(db.directory, 'bad.json')
    const bad = { version: 1, namespace: 'shop', createdAt: new Date().toISOString(), entries: [{ key: 'shop:q:x', sql: 'delete from person', parameters: [], tables: [], tags: [], ttl: 60, score: 1 }] }
    await writeFile(file, JSON.stringify(bad))
    const args = ['--database-url', db.databaseUrl(), '--servers', memcached.servers]
    const deleting = await run(['warmup', '--from', file, ...args])
    expect(deleting).toEqual({
      code: 2,
      stdout: '',
      stderr: `kysely-memcache: ${file}: entries[0].sql must be a single read-only SELECT statement, got "delete from person" (at entries[0].sql)\n`,
    })
    await writeFile(file, '{"version": 1,')
    const truncated = await run(['warmup', '--from', file, ...args])
    expect(truncated.code).toBe(2)
    expect(truncated.stderr).toMatch(new RegExp(`^kysely-memcache: ${file.replaceAll('.', '\\.')}: manifest is not valid JSON: `))
    await writeFile(file, JSON.stringify({ ...bad, version: 2 }))
    expect((await run(['warmup', '--from', file, ...args])).stderr).toContain('manifest version 2 is not supported; this version of kysely-memcache reads version 1 (at version)')
  })

  it("refuses a --namespace other than the manifest's", async () => {
    const file = join(db.directory, 'shop.json')
    await writeFile(file, serializeManifest({ version: 1, namespace: 'shop', createdAt: new Date().toISOString(), entries: [] }))
    const result = await run(['warmup', '--from', file, '--database-url', db.databaseUrl(), '--servers', memcached.servers, '--namespace', 'blog'])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^kysely-memcache: --namespace "blog" does not match the namespace of .*shop\.json \("shop"\); omit --namespace to use the manifest's$/m)
  })
})
