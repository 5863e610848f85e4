import { CompiledQuery, type DatabaseConnection, type RootOperationNode } from 'kysely'
import type { WriteSet } from '../cache/write-set.js'
import { describe, tagList } from '../util/validate.js'
import { analyzeStatement, type StatementInfo } from './statement.js'

/*
 * The same SQL returns other rows in another database, under another role, or
 * with another search_path (which decides what table an unqualified name is).
 * Every key carries the scope of the dialect that read it, so two tenants never
 * share an entry (design rule 9). The scope is learned from the dialect's first
 * real connection, and every later connection is checked against it once.
 */

/** What a wrapped dialect's scope is made of, validated. */
export interface ScopeConfig {
  /** Set for an explicit `scope`. */
  readonly explicit: { readonly id: string; readonly searchPath: readonly string[] } | undefined
  readonly defaultSchema: string
}

/** The scope `wrapDialect`'s `scope` and `searchPath` name, or none (learned from the database). */
export function resolveScope(options: { readonly scope?: unknown; readonly searchPath?: unknown }, defaultSchema: string): ScopeConfig {
  const { scope, searchPath } = options
  if (scope === undefined) {
    if (searchPath !== undefined) {
      throw new TypeError(`searchPath applies with an explicit scope only (a learned scope reads it from the database), got ${describe(searchPath)}`)
    }
    return { explicit: undefined, defaultSchema }
  }
  if (typeof scope !== 'string' || scope === '') {
    throw new TypeError(`scope must be a non-empty string, got ${describe(scope)}`)
  }
  if (searchPath === undefined) return { explicit: { id: explicitScopeId(scope), searchPath: [defaultSchema] }, defaultSchema }
  return { explicit: { id: explicitScopeId(scope), searchPath: [...tagList(searchPath, 'searchPath')] }, defaultSchema }
}

/** The key scope of `wrapDialect(dialect, { scope: name })`. */
export function explicitScopeId(name: string): string {
  return `scope:${name}`
}

/** A schema name no table can have (PostgreSQL names cannot hold NUL): marks unqualified names. */
const UNQUALIFIED = '\u0000'

/** The scope a dialect's cached reads are keyed by. */
export class KeyScope {
  /** Part of every query key. */
  readonly id: string
  /** The schemas unqualified table names resolve through. */
  readonly searchPath: readonly string[]
  readonly #resolveIn: readonly string[]
  readonly #reads = new WeakMap<StatementInfo, StatementInfo>()

  constructor(id: string, searchPath: readonly string[], defaultSchema: string) {
    this.id = id
    this.searchPath = searchPath
    this.#resolveIn = searchPath.length > 0 ? searchPath : [defaultSchema]
  }

  /**
   * `info` with the tables as the database resolves them here: an unqualified
   * name is the table of the first schema on the path that has it, which the
   * cache cannot know, so the read depends on that name in every schema of the
   * path. Memoised per analysis (the engine keeps one per SQL text).
   */
  reads(info: StatementInfo, node: RootOperationNode): StatementInfo {
    let resolved = this.#reads.get(info)
    if (resolved === undefined) {
      const tables = new Set<string>()
      for (const name of analyzeStatement(node, UNQUALIFIED).reads) {
        if (!name.startsWith(`${UNQUALIFIED}.`)) {
          tables.add(name)
          continue
        }
        const table = name.slice(UNQUALIFIED.length + 1)
        for (const schema of this.#resolveIn) tables.add(`${schema}.${table}`)
      }
      resolved = { ...info, reads: [...tables].sort() }
      this.#reads.set(info, resolved)
    }
    return resolved
  }
}

/**
 * `writes` (tables named `schema.table`, unqualified ones under `defaultSchema`)
 * with every table they may be: a `defaultSchema.` name was either written so or
 * unqualified, and an unqualified one is in one of `searchPath`'s schemas. An
 * unknown path invalidates the namespace.
 */
export function resolveWrites(writes: WriteSet, searchPath: readonly string[] | undefined, defaultSchema: string): WriteSet {
  if (writes.namespace || writes.tables.size === 0) return writes
  if (searchPath === undefined) return { namespace: true, tables: writes.tables }
  const prefix = `${defaultSchema}.`
  const tables = new Set<string>()
  for (const name of writes.tables) {
    tables.add(name)
    if (name.startsWith(prefix)) {
      for (const schema of searchPath) tables.add(`${schema}.${name.slice(prefix.length)}`)
    }
  }
  return { namespace: false, tables }
}

/** What a connection's session resolves names in, as read from the database. */
export interface Detected {
  readonly id: string
  readonly searchPath: readonly string[]
  readonly description: string
}

/** The cluster's system identifier tells apart servers whose databases share a name (shards, PGlite instances). */
const SCOPE_SQL = `select current_database() as database, current_user as "user", current_setting('search_path') as search_path,
  case when pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'execute')
    then (select system_identifier::text from pg_catalog.pg_control_system()) end as cluster`
/** Without the identifier, for servers that refuse `pg_control_system()` anyway. */
const SCOPE_SQL_PLAIN = `select current_database() as database, current_user as "user", current_setting('search_path') as search_path, null as cluster`
/** Cannot fail, so it is safe inside the user's transaction. */
const PATH_SQL = `select current_user as "user", current_setting('search_path') as search_path`

interface ScopeRow {
  readonly database: string
  readonly user: string
  readonly search_path: string
  readonly cluster: string | null
}

/** Reads what a connection's session resolves names in; exported for tests that derive keys. */
export async function detectScope(connection: Pick<DatabaseConnection, 'executeQuery'>): Promise<Detected> {
  let row: ScopeRow | undefined
  try {
    row = (await connection.executeQuery<ScopeRow>(CompiledQuery.raw(SCOPE_SQL))).rows[0]
  } catch {
    // Runs only when the connection is taken, outside any transaction: a second try is safe.
    row = (await connection.executeQuery<ScopeRow>(CompiledQuery.raw(SCOPE_SQL_PLAIN))).rows[0]
  }
  if (row === undefined) throw new Error('the scope query returned no row')
  const searchPath = parseSearchPath(row.search_path, row.user)
  return {
    id: JSON.stringify([row.cluster, row.database, row.user, searchPath]),
    searchPath,
    description: `database ${JSON.stringify(row.database)}, user ${JSON.stringify(row.user)}, search_path ${JSON.stringify(row.search_path)}`,
  }
}

async function detectPath(connection: DatabaseConnection): Promise<readonly string[]> {
  const row = (await connection.executeQuery<{ user: string; search_path: string }>(CompiledQuery.raw(PATH_SQL))).rows[0]
  if (row === undefined) throw new Error('the search_path query returned no row')
  return parseSearchPath(row.search_path, row.user)
}

/**
 * The schemas of a `search_path` setting, as PostgreSQL reads it: comma-separated,
 * unquoted names folded to lower case, `"$user"` meaning the current user's schema.
 *
 * @example parseSearchPath('"$user", public', 'ada') // ['ada', 'public']
 */
export function parseSearchPath(setting: string, user: string): string[] {
  const schemas: string[] = []
  for (const match of setting.matchAll(/\s*(?:"((?:[^"]|"")*)"|([^,]*?))\s*(?:,|$)/gy)) {
    if (match[0] === '') break
    const name = match[1] === undefined ? (match[2] ?? '').toLowerCase() : match[1].replaceAll('""', '"')
    if (name === '') continue
    schemas.push(name === '$user' ? user : name)
  }
  return schemas
}

/** Statements that change what names resolve to, or who reads: `set search_path`, `set role`, … */
const SESSION_CHANGE =
  /(?:^|;)\s*(?:(?:--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)\s*)*(?:set\s+(?:session\s+|local\s+)?(?:search_path|schema|role|session\s+authorization)\b|reset\s+(?:search_path|role|session\s+authorization|all)\b|discard\s+all\b)/i
const SET_CONFIG = /\bset_config\s*\(\s*([^,)]*)/gi
const SCOPE_SETTINGS = new Set(['search_path', 'role', 'session_authorization'])

/** Whether `sql` may change its session's scope. A `set_config` whose setting is not a literal counts. */
export function changesScope(sql: string): boolean {
  if (SESSION_CHANGE.test(sql)) return true
  for (const match of sql.matchAll(SET_CONFIG)) {
    const literal = /^'([^']*)'$/.exec((match[1] ?? '').trim())
    if (literal === null || SCOPE_SETTINGS.has(literal[1]!.trim().toLowerCase())) return true
  }
  return false
}

type WarningCode = 'KYSELY_MEMCACHE_SCOPE_MISMATCH' | 'KYSELY_MEMCACHE_SCOPE_CHANGED' | 'KYSELY_MEMCACHE_SCOPE_UNKNOWN'

/**
 * One wrapped driver's scope: learned from its first connection (or given),
 * checked on each new physical connection, and lost by a connection whose
 * session changes it.
 */
export class ScopeTracker {
  readonly #explicit: KeyScope | undefined
  readonly #defaultSchema: string
  #learned: Detected | undefined
  #learning: Promise<KeyScope | undefined> | undefined
  #scope: KeyScope | undefined
  readonly #checks = new WeakMap<DatabaseConnection, Promise<void>>()
  /** `null`: the connection's scope could not be read. */
  readonly #detected = new WeakMap<DatabaseConnection, Detected | null>()
  readonly #changed = new WeakSet<DatabaseConnection>()
  readonly #warned = new Set<WarningCode>()

  constructor(config: ScopeConfig) {
    this.#defaultSchema = config.defaultSchema
    this.#explicit =
      config.explicit === undefined ? undefined : new KeyScope(config.explicit.id, config.explicit.searchPath, config.defaultSchema)
  }

  /**
   * The first check's outcome while it runs: concurrent first reads wait for it
   * instead of each taking a connection to learn the same scope.
   */
  get learning(): Promise<KeyScope | undefined> | undefined {
    return this.#learning
  }

  /** Marks the first learning as under way while `connecting` (whose acquisition checks it) runs. */
  learnFrom(connecting: Promise<DatabaseConnection>): void {
    this.#learning ??= connecting.then(
      () => this.known,
      () => undefined,
    )
  }

  /** The key scope, once known: a hit needs no connection. */
  get known(): KeyScope | undefined {
    return this.#explicit ?? this.#scope
  }

  /**
   * Learns or checks the scope of a connection just taken; once per physical
   * connection, which from then on is watched for statements that change it.
   * Never rejects.
   */
  check(connection: DatabaseConnection): Promise<void> {
    let check = this.#checks.get(connection)
    if (check === undefined) {
      check = this.#explicit === undefined ? this.#check(connection) : Promise.resolve()
      this.#learning ??= check.then(() => this.known)
      this.#checks.set(connection, check)
      this.#watch(connection)
    }
    return check
  }

  /**
   * Sees every later statement on the connection, whoever sends it: the cache's
   * own, and the pool's too (an `onReserveConnection` that sets search_path per
   * checkout changes the scope after the check).
   */
  #watch(connection: DatabaseConnection): void {
    const execute = connection.executeQuery.bind(connection)
    connection.executeQuery = <R>(compiled: CompiledQuery, options?: Parameters<DatabaseConnection['executeQuery']>[1]) => {
      this.note(connection, compiled.sql)
      return execute<R>(compiled, options)
    }
  }

  async #check(connection: DatabaseConnection): Promise<void> {
    let detected: Detected
    try {
      detected = await detectScope(connection)
    } catch (error) {
      this.#detected.set(connection, null)
      this.#warn(
        'KYSELY_MEMCACHE_SCOPE_UNKNOWN',
        `kysely-memcache could not learn a connection's key scope (${error instanceof Error ? error.message : String(error)}); ` +
          '.cached() queries on it run uncached. Name the scope instead: cache.wrapDialect(dialect, { scope }).',
      )
      return
    }
    this.#detected.set(connection, detected)
    if (this.#learned === undefined) {
      this.#learned = detected
      this.#scope = new KeyScope(detected.id, detected.searchPath, this.#defaultSchema)
    } else if (detected.id !== this.#learned.id) {
      this.#warn(
        'KYSELY_MEMCACHE_SCOPE_MISMATCH',
        `kysely-memcache: a connection of this dialect runs with ${detected.description}, not ${this.#learned.description} ` +
          'as the first one did; results read on it are not cached. Wrap one dialect (one pool) per scope.',
      )
    }
  }

  /** Whether rows read on `connection` are the rows the key scope stands for. */
  inScope(connection: DatabaseConnection): boolean {
    if (this.#changed.has(connection)) return false
    if (this.#explicit !== undefined) return true
    const detected = this.#detected.get(connection)
    return detected != null && detected.id === this.#learned?.id
  }

  /** The scope to key a read by on a runner holding `connection` (or none); `undefined`: bypass the cache. */
  keyScopeFor(connection: DatabaseConnection | undefined): KeyScope | undefined {
    return connection === undefined || this.inScope(connection) ? this.known : undefined
  }

  /** Called with each statement before it runs on a watched connection. */
  note(connection: DatabaseConnection, sql: string): void {
    if (this.#changed.has(connection) || !changesScope(sql)) return
    this.#changed.add(connection)
    this.#warn(
      'KYSELY_MEMCACHE_SCOPE_CHANGED',
      'kysely-memcache: a statement changed its session\'s search_path or role; .cached() queries on that connection ' +
        'run uncached from now on, also after it goes back to the pool. Set it per pool instead (e.g. pg\'s options: "-c search_path=...").',
    )
  }

  /** `writes` resolved through the search_path of the connection they ran on. */
  async resolveWrites(connection: DatabaseConnection | undefined, writes: WriteSet): Promise<WriteSet> {
    if (writes.namespace || writes.tables.size === 0) return writes
    return resolveWrites(writes, await this.#pathOf(connection), this.#defaultSchema)
  }

  async #pathOf(connection: DatabaseConnection | undefined): Promise<readonly string[] | undefined> {
    if (connection === undefined) return undefined
    // Changed by the session itself: ask now, on the connection the write just ran on.
    if (this.#changed.has(connection)) return detectPath(connection).catch(() => undefined)
    if (this.#explicit !== undefined) return this.#explicit.searchPath
    await this.check(connection)
    return this.#detected.get(connection)?.searchPath
  }

  #warn(code: WarningCode, message: string): void {
    if (this.#warned.has(code)) return
    this.#warned.add(code)
    process.emitWarning(message, { code })
  }
}
