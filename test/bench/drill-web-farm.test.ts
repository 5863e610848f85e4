/**
 * The drill's web-farm workload counts database statements by kind from the SQL
 * text of examples/web-farm/app.ts's queries (bench/lib/drill-web-farm.ts): when a
 * page's query changes, its statements must still be counted as that page's.
 */
import { Agent } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp, type App } from '../../examples/web-farm/app.js'
import { request } from '../../examples/web-farm/load.js'
import { dropSchema, seed } from '../../examples/web-farm/schema.js'
import { DATABASE_URL } from '../../bench/lib/common.js'
import { StatementCounter } from '../../bench/lib/counting-client.js'
import { statementKind } from '../../bench/lib/drill-web-farm.js'

const schema = `web_farm_drill_t${process.pid}`
const counter = new StatementCounter(statementKind)
let app: App
let base = ''

beforeAll(async () => {
  await seed(DATABASE_URL, schema, { authors: 20, articles: 100, comments: 1000 })
  // No cache: every page's queries reach the database, and the count shows each one.
  app = createApp({ databaseUrl: DATABASE_URL, schema, namespace: schema, cache: false, queryCostMs: 30, Client: counter.Client, poolSize: 2, log: () => {} })
  await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve))
  const address = app.server.address()
  base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
})

afterAll(async () => {
  await app?.close()
  await dropSchema(DATABASE_URL, schema)
})

describe('the web farm as the drill runs it', () => {
  it('counts each page query under its own kind, and adds queryCostMs to each', async () => {
    const agent = new Agent({ keepAlive: true })
    const started = performance.now()
    const front = await request(`${base}/`, { agent })
    const frontMs = performance.now() - started
    expect(front.status).toBe(200)
    expect(front.cache).toBe('none')
    expect((front.body as unknown[]).length).toBe(20)
    // The cost is a sleep the database runs once per execution, not once per row.
    expect(frontMs).toBeGreaterThanOrEqual(30)
    expect(frontMs).toBeLessThan(30 * 20)
    expect((await request(`${base}/authors/top`, { agent })).status).toBe(200)
    expect((await request(`${base}/articles/100`, { agent })).status).toBe(200)
    expect((await request(`${base}/articles/100/comments`, { agent, method: 'POST', json: { body: 'counted' } })).status).toBe(201)
    agent.destroy()
    expect(counter.snapshot().byKind).toEqual({ front: 1, 'top authors': 1, article: 1, 'comment list': 1, 'comment insert': 1 })
  })
})
