import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseManifest } from '../../../src/warmup/manifest.js'
import { byId, freshNamespace, useDatabase, useMemcached } from '../fixtures.js'
import { run } from '../run-cli.js'

const memcached = useMemcached()
const db = useDatabase(memcached)

describe('kysely-memcache export', () => {
  it('exports the farm-wide statistics, and warms a flushed memcached from them: then every query is a hit', async () => {
    const namespace = freshNamespace()
    await db.traffic(namespace)
    const file = join(db.directory, `${namespace}.json`)
    const exported = await run(['export', '--servers', memcached.servers, '--namespace', namespace, '--out', file])
    expect({ code: exported.code, stderr: exported.stderr }).toEqual({ code: 0, stderr: '' })
    expect(exported.stdout).toMatch(new RegExp(`^kysely-memcache: exported 12 entries of namespace "${namespace}" to ${file.replaceAll('.', '\\.')} \\(statistics last merged \\d+ms ago\\)\\n$`))
    const manifest = parseManifest(await readFile(file, 'utf8'))
    expect(manifest).toMatchObject({ version: 1, namespace })
    expect(manifest.entries).toHaveLength(12)
    // To stdout: the manifest alone; the count on stderr.
    const piped = await run(['export', '--servers', memcached.servers, '--namespace', namespace, '--limit', '5'])
    expect(piped.code).toBe(0)
    expect(parseManifest(piped.stdout).entries).toHaveLength(5)
    expect(piped.stderr).toMatch(/^kysely-memcache: exported 5 entries of namespace ".*" \(statistics last merged \d+ms ago\)\n$/)

    await Promise.all(memcached.cluster.nodes.map((node) => node.flush()))
    const warmed = await run(['warmup', '--from', file, '--database-url', db.databaseUrl(), '--servers', memcached.servers, '--concurrency', '3'])
    expect({ code: warmed.code, stderr: warmed.stderr }).toEqual({ code: 0, stderr: '' })
    const lines = warmed.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(
      new RegExp(`^kysely-memcache: warming 12 entries of namespace "${namespace}" from .*\\.json \\(made \\d+(ms|s) ago\\) into ${memcached.servers.replaceAll('.', '\\.').replace(',', ', ')}, 3 at a time, from postgres://`),
    )
    // Plain lines at each tenth (12 entries: every 2), then the summary.
    expect(lines.slice(1, -1)).toEqual([2, 4, 6, 8, 10, 12].map((n) => expect.stringMatching(new RegExp(`^${n}/12 done: ${n} warmed, 0 skipped, 0 failed \\(\\d+\\.\\ds\\)$`))))
    expect(lines.at(-1)).toMatch(/^kysely-memcache: 12 warmed, 0 skipped, 0 failed of 12 entries in \d+\.\ds \(\d+\.\d entries\/s\)$/)

    const fresh = db.client(namespace)
    fresh.executions.reset()
    for (let id = 1; id <= 12; id++) expect(await byId(fresh, id).execute()).toEqual([{ id, first_name: `person ${id - 1}` }])
    expect(fresh.executions.count()).toBe(0)
    expect(fresh.cache.stats().hits).toBe(12)
  })

  it('exits 1 and writes nothing when there are no farm-wide statistics', async () => {
    const namespace = freshNamespace()
    const file = join(db.directory, `${namespace}.json`)
    const result = await run(['export', '--servers', memcached.servers, '--namespace', namespace, '--out', file])
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(
      `kysely-memcache: no farm-wide statistics for namespace "${namespace}" (key ${namespace}:hot); processes merge theirs every 10s when they cache through memcached with statistics on; ${file} was left as it was\n`,
    )
    expect(existsSync(file)).toBe(false)
    const none = await run(['export', '--servers', '127.0.0.1:1'])
    expect(none).toMatchObject({ code: 1, stderr: 'kysely-memcache: no memcached node answered (127.0.0.1:1 refused); nothing was exported\n' })
  })
})
