import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { DATABASE_URL, type DB } from './database.js'

/**
 * The expensive query of the safe-mode tests: a sleep, and `nextval` of a
 * sequence (through `probe_next()`, see createSchema) so the database itself
 * counts how often it really ran.
 * `failFirst` makes its first execution throw (division by zero) and later ones succeed.
 */
export function expensiveQuery(db: Kysely<DB>, seconds: number, failFirst = false) {
  const execution = failFirst
    ? // probe_current() (volatile) keeps the division out of the planner's constant folding.
      sql<string>`(case when probe_next() = 1 then (1 / (probe_current() - 1))::text else probe_current()::text end)`
    : sql<string>`probe_next()::text`
  return db
    .selectFrom('person')
    .select(['first_name', sql<string>`pg_sleep(${seconds})::text`.as('slept'), execution.as('execution')])
    .where('id', '=', 1)
}

/** How many times the expensive query ran so far, read from the sequence (outside any cache). */
export async function executionsSoFar(schema: string): Promise<number> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  try {
    const { rows } = await client.query<{ last_value: string; is_called: boolean }>(
      `select last_value, is_called from ${schema}.probe_seq`,
    )
    const row = rows[0]!
    return row.is_called ? Number(row.last_value) : 0
  } finally {
    await client.end()
  }
}

export async function resetExecutions(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  try {
    await client.query(`alter sequence ${schema}.probe_seq restart`)
  } finally {
    await client.end()
  }
}
