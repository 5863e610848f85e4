/**
 * The web farm's tables and their deterministic seed: authors, their articles
 * and the articles' comments, in a schema of their own (default `web_farm`).
 *
 * Seeding runs set-based SQL (`generate_series`), so the same sizes always
 * give the same rows: 200 authors, 5 000 articles and 50 000 comments take
 * about a second. Recent articles get more comments, as on a real site.
 */
import type { Generated } from 'kysely'
import pg from 'pg'

export const DEFAULT_SCHEMA = 'web_farm'
export const DEFAULT_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export interface AuthorTable {
  id: Generated<number>
  name: string
  bio: string
}
export interface ArticleTable {
  id: Generated<number>
  author_id: number
  title: string
  body: string
  published_at: Date
}
export interface CommentTable {
  id: Generated<number>
  article_id: number
  body: string
  created_at: Generated<Date>
}
/** The Kysely database type of the farm's schema (unqualified: connections set `search_path`). */
export interface Database {
  author: AuthorTable
  article: ArticleTable
  comment: CommentTable
}

export interface SeedSizes {
  authors: number
  articles: number
  comments: number
}
export const DEFAULT_SIZES: SeedSizes = { authors: 200, articles: 5000, comments: 50_000 }

export interface SeedReport extends SeedSizes {
  schema: string
  ms: number
}

/** Only plain lower-case identifiers, so a schema name never needs quoting anywhere. */
export function checkSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new TypeError(`schema must be a lower-case SQL identifier (a-z, 0-9, _), got ${JSON.stringify(schema)}`)
  }
  return schema
}

/** A pg pool setting for connections that work in `schema`: what the farm's workers use. */
export function searchPathOption(schema: string): string {
  return `-c search_path=${checkSchemaName(schema)}`
}

const TABLES = (sizes: SeedSizes) => `
create table author (
  id serial primary key,
  name text not null,
  bio text not null
);
create table article (
  id serial primary key,
  author_id integer not null references author (id),
  title text not null,
  body text not null,
  published_at timestamptz not null
);
create index article_published_at on article (published_at desc, id desc);
create index article_author_id on article (author_id);
create table comment (
  id serial primary key,
  article_id integer not null references article (id),
  body text not null,
  created_at timestamptz not null default now()
);

insert into author (name, bio)
select (array['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Margaret', 'Niklaus'])[1 + g % 10]
       || ' ' || (array['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Hamilton', 'Wirth', 'Ritchie'])[1 + g % 11]
       || ' ' || g,
       'Writes about ' || (array['databases', 'caches', 'compilers', 'networks', 'operating systems'])[1 + g % 5] || '.'
from generate_series(1, ${sizes.authors}) g;

insert into article (author_id, title, body, published_at)
select 1 + (g * 37) % ${sizes.authors},
       'Article ' || g || ': notes on ' || (array['query plans', 'cache keys', 'invalidation', 'replication', 'failover', 'load shedding'])[1 + g % 6],
       repeat('A paragraph of article ' || g || ' about keeping the database alive when the cache tier is hurt. ', 4 + g % 17),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes'
from generate_series(1, ${sizes.articles}) g;

-- u is a fixed pseudo-random number in [0, 1) per comment; u^2 leans towards the newest articles.
insert into comment (article_id, body, created_at)
select a.id, 'Comment ' || c.g || ' on article ' || a.id || '.', a.published_at + (c.g % 1440) * interval '7 minutes'
from (
  select g, ${sizes.articles} - floor(${sizes.articles} * power(((g::bigint * 2654435761) % 4294967296) / 4294967296.0, 2))::integer as article_id
  from generate_series(1, ${sizes.comments}) g
) c
join article a on a.id = c.article_id
order by c.g;
create index comment_article_created on comment (article_id, created_at desc, id desc);
analyze author, article, comment;
`

/**
 * Drops `schema` if it exists, creates the farm's tables in it and fills them.
 * Resolves once the rows are committed. Run it with no farm serving the schema,
 * then invalidate the farm's namespace (main.ts does), since the cache did not
 * see these statements.
 */
export async function seed(databaseUrl: string, schema: string, sizes: SeedSizes = DEFAULT_SIZES): Promise<SeedReport> {
  for (const [name, value] of Object.entries(sizes)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`)
  }
  const start = performance.now()
  const client = new pg.Client({ connectionString: databaseUrl, options: searchPathOption(schema) })
  await client.connect()
  try {
    await client.query(`begin; drop schema if exists ${schema} cascade; create schema ${schema};${TABLES(sizes)}commit;`)
  } catch (error) {
    await client.query('rollback').catch(() => {})
    throw error
  } finally {
    await client.end()
  }
  return { schema, ...sizes, ms: Math.round(performance.now() - start) }
}

/** Whether `schema` holds the farm's three tables. */
export async function isSeeded(databaseUrl: string, schema: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ tables: string }>(
      `select count(*) as tables from information_schema.tables
       where table_schema = $1 and table_name in ('author', 'article', 'comment')`,
      [checkSchemaName(schema)],
    )
    return rows[0]?.tables === '3'
  } finally {
    await client.end()
  }
}

/** Drops `schema` and everything in it (tests clean up with it). */
export async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    await client.query(`drop schema if exists ${checkSchemaName(schema)} cascade`)
  } finally {
    await client.end()
  }
}
