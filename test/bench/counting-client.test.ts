/**
 * bench/lib/counting-client.ts: the drill counts database executions with it, below
 * Kysely and the cache, so it must count what the server answered, every way pg
 * and Kysely send statements, and nothing that never reached the server.
 */
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { StatementCounter } from '../../bench/lib/counting-client.js'
import { DATABASE_URL } from '../../bench/lib/common.js'

describe('StatementCounter', () => {
  it('counts the statements the server answered, by kind, through a pool and through Kysely', async () => {
    const counter = new StatementCounter((text) => (/pg_sleep/.test(text) ? 'sleep' : 'other'))
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2, Client: counter.Client })
    const db = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) })
    try {
      await pool.query('select 1') // pool.query: the callback form
      await new Promise<void>((resolve, reject) => pool.query('select 2', (error) => (error ? reject(error) : resolve())))
      await sql`select pg_sleep(0.01)`.execute(db) // Kysely: the promise form on a pooled client
      // An error of the server's own is an answer too.
      await expect(pool.query('select 1 / 0')).rejects.toThrow(/division by zero/)
      expect(counter.total).toBe(4)
      expect(counter.snapshot().byKind).toEqual({ other: 3, sleep: 1 })
      expect(counter.databaseMs).toBeGreaterThanOrEqual(10)
    } finally {
      await db.destroy()
    }
  })

  it('does not count a statement refused before it was sent', async () => {
    const counter = new StatementCounter()
    const client = new counter.Client({ connectionString: DATABASE_URL })
    await client.connect()
    await client.query('select 1')
    await client.end()
    await expect(client.query('select 1')).rejects.toThrow()
    expect(counter.total).toBe(1)
  })
})
