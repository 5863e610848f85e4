import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { DATABASE_URL } from '../harness/database.js'
import { freshNamespace } from '../harness/farm.js'
import { startMemcached, type MemcachedCluster } from '../harness/memcached.js'

const SCRIPT = fileURLToPath(new URL('../fixtures/exit-check.ts', import.meta.url))
let memcached: MemcachedCluster

beforeAll(async () => {
  memcached = await startMemcached(2)
})
afterAll(async () => {
  await memcached?.stopAll()
})

it('lets a script exit that destroys its Kysely but never closes the cache, with memcached reachable', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT], {
    env: { ...process.env, SERVERS: memcached.servers.join(','), DATABASE_URL, NAMESPACE: freshNamespace() },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = await new Promise<number | string>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve('still running after 15 s')
    }, 15_000)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve(code ?? String(signal))
    })
  })
  expect(exited, output).toBe(0)
  // The hit came over the memcached sockets that no longer hold the process once idle.
  const { miss, hit, stats } = JSON.parse(output) as { miss: unknown[]; hit: unknown[]; stats: { hits: number } }
  expect(hit).toEqual(miss)
  expect(stats.hits).toBe(1)
}, 30_000)
