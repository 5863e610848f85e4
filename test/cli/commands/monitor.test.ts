import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { readTierState } from '../../../src/tier/tier-state.js'
import { parseManifest } from '../../../src/warmup/manifest.js'
import { waitFor } from '../../harness/wait.js'
import { freshNamespace, useDatabase, useMemcached } from '../fixtures.js'
import { run } from '../run-cli.js'

const memcached = useMemcached()
const db = useDatabase(memcached)

describe('kysely-memcache monitor', () => {
  it('runs until its signal, publishing the state, then stops cleanly', async () => {
    const namespace = freshNamespace()
    const controller = new AbortController()
    const store = memcached.reader()
    const running = run(['monitor', '--servers', memcached.servers, '--namespace', namespace, '--interval', '200ms', '--settle', '1s'], controller.signal)
    const state = await waitFor('the flag', 2000, () => readTierState(store, namespace))
    expect(state).toMatchObject({ mode: 'normal', down: [] })
    controller.abort()
    const { code, stdout, stderr } = await running
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    expect(stdout).toMatch(/^\S+Z kysely-memcache monitor: started for 2 nodes .* every 200ms, settle 1s$/m)
    expect(stdout).toMatch(/^\S+Z kysely-memcache monitor: stopped; the published state expires within 3s$/m)
  })

  it('runs the monitor with --database-url and --manifest: it saves the manifest from the farm-wide statistics', async () => {
    const namespace = freshNamespace()
    await db.traffic(namespace)
    const file = join(db.directory, `${namespace}-monitor.json`)
    const controller = new AbortController()
    const running = run(
      ['monitor', '--servers', memcached.servers, '--namespace', namespace, '--interval', '200ms', '--database-url', 'postgres://app:secret@db.internal/app', '--manifest', file, '--manifest-every', '200ms'],
      controller.signal,
    )
    await waitFor('the manifest file', 3000, () => (existsSync(file) ? true : undefined))
    controller.abort()
    const { code, stdout } = await running
    expect(code).toBe(0)
    expect(parseManifest(await readFile(file, 'utf8')).entries).toHaveLength(12)
    expect(stdout).toMatch(/monitor: returning nodes are warmed from postgres:\/\/app:\*\*\*@db\.internal\/app before they are listed up \(concurrency 4, at most 1m each\); manifest kept in .*, rebuilt every 200ms$/m)
    expect(stdout).not.toContain('secret')
    expect(stdout).toMatch(/monitor: warm-up manifest 12 entries from the farm-wide statistics, saved to /)
  })
})
