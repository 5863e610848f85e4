/**
 * SQL functions whose result must not be frozen in the cache, and how to find
 * them in SQL text. The lists follow PostgreSQL 15's `pg_proc` (functions marked
 * `VOLATILE`, plus `STABLE` ones that depend on the clock or the session),
 * grouped by why caching them goes wrong.
 *
 * An entry ending in `*` is a prefix: every function whose name starts with it.
 * Names are unquoted PostgreSQL names, so lowercase; schema qualifiers are
 * ignored (`pg_catalog.nextval` is `nextval`), which may also catch a user's
 * own function of the same name: that only costs the cache a hit.
 */

/**
 * - `'stable'`: nothing from the lists below; the result depends on the tables only.
 * - `'volatile'`: the result changes without any write (clock, randomness, session,
 *   server state); cached only with `.cached({ volatile: true })`.
 * - `'side-effect'`: calling it changes something; never cached.
 */
export type Volatility = 'stable' | 'volatile' | 'side-effect'

/** Calling one changes state, so a query calling one must reach the database every time. */
export const SIDE_EFFECT_FUNCTIONS: readonly string[] = Object.freeze([
  // Sequences: each call advances or moves one.
  'nextval',
  'setval',
  // Session state: settings and the seed of random().
  'set_config',
  'setseed',
  // Advisory locks: taking or releasing one is the point of the call.
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  // Notifications to listeners.
  'pg_notify',
  // Assign a transaction id to the caller's transaction.
  'txid_current',
  'pg_current_xact_id',
  // Large objects: create, write, delete, or move a descriptor's position.
  'lo_*',
  'loread',
  'lowrite',
  // Other backends and the server.
  'pg_cancel_backend',
  'pg_terminate_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_rotate_logfile_old',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_promote',
  'pg_wal_replay_pause',
  'pg_wal_replay_resume',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_start_backup',
  'pg_stop_backup',
  'pg_export_snapshot',
  'pg_import_system_collations',
  'pg_nextoid',
  'pg_extension_config_dump',
  'pg_log_backend_memory_contexts',
  'pg_stat_reset*',
  'pg_stat_statements_reset',
  'pg_stat_clear_snapshot',
  'pg_stat_force_next_flush',
  'pg_prewarm',
  // Replication slots and origins; reading a logical slot's changes consumes them.
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_replication_slot_advance',
  'pg_logical_slot_get_changes',
  'pg_logical_slot_get_binary_changes',
  'pg_logical_emit_message',
  'pg_replication_origin_*',
  // Index maintenance.
  'brin_summarize_new_values',
  'brin_summarize_range',
  'brin_desummarize_range',
  'gin_clean_pending_list',
  // dblink runs any SQL, writes included, on another connection.
  'dblink*',
])

/**
 * The result changes with no write the cache could see. Not cached unless the
 * query says `.cached({ volatile: true })` (e.g. a `now()` frozen for the TTL).
 */
export const VOLATILE_FUNCTIONS: readonly string[] = Object.freeze([
  // Randomness.
  'random',
  'random_normal',
  'gen_random_uuid',
  'uuid_generate_v1',
  'uuid_generate_v1mc',
  'uuid_generate_v4',
  'gen_random_bytes',
  'gen_salt',
  // The clock. PostgreSQL calls the transaction-time ones STABLE: fixed within a
  // transaction, not across the cache's TTL. age() with one argument counts from
  // today; the two-argument form is listed too (one name, no parsing of arguments).
  'now',
  'current_timestamp',
  'current_date',
  'current_time',
  'localtime',
  'localtimestamp',
  'statement_timestamp',
  'transaction_timestamp',
  'clock_timestamp',
  'timeofday',
  'age',
  // The session: who is connected, its settings, its sequence values, its transaction.
  // None of it is part of the cache key.
  'current_user',
  'session_user',
  'current_role',
  'user',
  'current_setting',
  'currval',
  'lastval',
  'pg_backend_pid',
  'inet_client_addr',
  'inet_client_port',
  'pg_listening_channels',
  'txid_current_if_assigned',
  'pg_current_xact_id_if_assigned',
  'txid_current_snapshot',
  'pg_current_snapshot',
  'txid_status',
  'pg_xact_status',
  'pg_xact_commit_timestamp',
  'pg_last_committed_xact',
  // Server state and files, which change with no write through Kysely.
  'pg_is_in_recovery',
  'pg_postmaster_start_time',
  'pg_conf_load_time',
  'pg_notification_queue_usage',
  'pg_current_wal_lsn',
  'pg_current_wal_insert_lsn',
  'pg_current_wal_flush_lsn',
  'pg_last_wal_receive_lsn',
  'pg_last_wal_replay_lsn',
  'pg_last_xact_replay_timestamp',
  'pg_is_wal_replay_paused',
  'pg_get_wal_replay_pause_state',
  'pg_current_logfile',
  'pg_control_*',
  'pg_logical_slot_peek_*',
  'pg_show_replication_origin_status',
  'pg_prepared_xact',
  'pg_get_multixact_members',
  'pg_get_backend_memory_contexts',
  'pg_get_shmem_allocations',
  'pg_hba_file_rules',
  'pg_ident_file_mappings',
  'pg_show_all_file_settings',
  'pg_stat_have_stats',
  'pg_lock_status',
  'pg_blocking_pids',
  'pg_safe_snapshot_blocking_pids',
  'pg_stat_get_*',
  'pg_stat_file',
  'pg_read_file',
  'pg_read_binary_file',
  'pg_read_file_old',
  'pg_ls_*',
  // Sizes and sequence values: they change with writes to relations named as text
  // arguments, which the cache does not count as reads.
  'pg_database_size',
  'pg_relation_size',
  'pg_table_size',
  'pg_indexes_size',
  'pg_total_relation_size',
  'pg_tablespace_size',
  'pg_sequence_last_value',
  // Run a query given as text, reading tables the cache cannot see.
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'ts_stat',
  'ts_rewrite',
])

/**
 * PostgreSQL marks these VOLATILE, yet they are cached like any read: they change
 * no data and their result (void) never differs, so a hit only skips the wait.
 */
export const HARMLESS_VOLATILE_FUNCTIONS: readonly string[] = Object.freeze(['pg_sleep', 'pg_sleep_for', 'pg_sleep_until'])

/** SQL keywords that call a listed function without parentheses (`select current_date`). */
export const BARE_KEYWORDS: readonly string[] = Object.freeze([
  'current_timestamp',
  'current_date',
  'current_time',
  'localtime',
  'localtimestamp',
  'current_user',
  'session_user',
  'current_role',
  'user',
])

interface Lookup {
  readonly exact: ReadonlyMap<string, Volatility>
  readonly prefixes: ReadonlyArray<readonly [string, Volatility]>
}

const lookup: Lookup = (() => {
  const exact = new Map<string, Volatility>()
  const prefixes: Array<readonly [string, Volatility]> = []
  const add = (names: readonly string[], volatility: Volatility) => {
    for (const name of names) {
      if (name.endsWith('*')) prefixes.push([name.slice(0, -1), volatility])
      else exact.set(name, volatility)
    }
  }
  add(VOLATILE_FUNCTIONS, 'volatile')
  add(SIDE_EFFECT_FUNCTIONS, 'side-effect')
  return { exact, prefixes }
})()

const bareKeywords: ReadonlySet<string> = new Set(BARE_KEYWORDS)

/** How a function name is classed: exact as given (lowercase it first unless it was quoted). */
export function functionVolatility(name: string): Volatility {
  const exact = lookup.exact.get(name)
  if (exact !== undefined) return exact
  for (const [prefix, volatility] of lookup.prefixes) if (name.startsWith(prefix)) return volatility
  return 'stable'
}

const RANK: Readonly<Record<Volatility, number>> = { stable: 0, volatile: 1, 'side-effect': 2 }

/** The more dangerous of the two. */
export function worseVolatility(a: Volatility, b: Volatility): Volatility {
  return RANK[a] >= RANK[b] ? a : b
}

/**
 * The worst function called by a piece of SQL text: each identifier followed by
 * `(` (unquoted names case-insensitive, quoted ones exact, schema ignored), and
 * the bare keywords such as `current_timestamp`. String literals (also `E''` and
 * dollar-quoted), comments and `$1` parameters are skipped.
 *
 * @example sqlVolatility("pg_catalog.NEXTVAL('s')") // 'side-effect'
 * @example sqlVolatility("'nextval(1)'") // 'stable': a string
 */
export function sqlVolatility(text: string): Volatility {
  let worst: Volatility = 'stable'
  const n = text.length
  let i = 0
  // A bare keyword after a dot is a column name (`t.user`).
  let afterDot = false
  // The identifier just read was `E`, so a quote right after it opens an escape string.
  let escapeString = false
  while (i < n) {
    const c = text.charCodeAt(i)
    if (isIdentifierStart(c)) {
      const start = i
      while (i < n && isIdentifierPart(text.charCodeAt(i))) i++
      const next = i < n ? text.charCodeAt(i) : -1
      if (next === SINGLE_QUOTE && i - start === 1 && (c === 0x45 || c === 0x65)) {
        escapeString = true
        continue
      }
      const word = text.slice(start, i).toLowerCase()
      const follow = text.charCodeAt(skipTrivia(text, i))
      if (follow === OPEN_PAREN) {
        worst = worseVolatility(worst, functionVolatility(word))
      } else if (!afterDot && follow !== DOT && bareKeywords.has(word)) {
        worst = worseVolatility(worst, 'volatile')
      }
      afterDot = false
      if (worst === 'side-effect') return worst
      continue
    }
    switch (c) {
      case SINGLE_QUOTE:
        i = skipString(text, i, escapeString)
        break
      case DOUBLE_QUOTE: {
        const end = skipQuotedIdentifier(text, i)
        if (text.charCodeAt(skipTrivia(text, end)) === OPEN_PAREN) {
          worst = worseVolatility(worst, functionVolatility(text.slice(i + 1, end - 1).replaceAll('""', '"')))
          if (worst === 'side-effect') return worst
        }
        i = end
        break
      }
      case DOLLAR:
        i = skipDollar(text, i)
        break
      case DOT:
        i++
        escapeString = false
        afterDot = true
        continue
      default:
        if (c >= 0x30 && c <= 0x39) {
          // A number, `1e5` included: its letters are no identifier.
          while (i < n && (isIdentifierPart(text.charCodeAt(i)) || text.charCodeAt(i) === DOT)) i++
        } else {
          const skipped = skipTrivia(text, i)
          if (skipped > i) {
            // Whitespace and comments: `t . user` is still after a dot.
            i = skipped
            continue
          }
          i++
        }
    }
    escapeString = false
    afterDot = false
  }
  return worst
}

const SINGLE_QUOTE = 0x27
const DOUBLE_QUOTE = 0x22
const DOLLAR = 0x24
const DOT = 0x2e
const OPEN_PAREN = 0x28
const BACKSLASH = 0x5c

function isIdentifierStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c >= 0x80
}

function isIdentifierPart(c: number): boolean {
  return isIdentifierStart(c) || (c >= 0x30 && c <= 0x39) || c === DOLLAR
}

/** Past whitespace and comments (`--` to the end of the line, nested `/* *\/`). */
function skipTrivia(text: string, i: number): number {
  const n = text.length
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) {
      i++
    } else if (c === 0x2d && text.charCodeAt(i + 1) === 0x2d) {
      const end = text.indexOf('\n', i)
      i = end === -1 ? n : end + 1
    } else if (c === 0x2f && text.charCodeAt(i + 1) === 0x2a) {
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        if (text.charCodeAt(i) === 0x2a && text.charCodeAt(i + 1) === 0x2f) {
          depth--
          i += 2
        } else if (text.charCodeAt(i) === 0x2f && text.charCodeAt(i + 1) === 0x2a) {
          depth++
          i += 2
        } else {
          i++
        }
      }
    } else {
      break
    }
  }
  return i
}

/** Past a `'...'` literal (`''` is a quote; in an `E''` string, so is `\'`). */
function skipString(text: string, i: number, backslashEscapes: boolean): number {
  const n = text.length
  i++
  while (i < n) {
    const c = text.charCodeAt(i)
    if (backslashEscapes && c === BACKSLASH) {
      i += 2
    } else if (c === SINGLE_QUOTE) {
      if (text.charCodeAt(i + 1) !== SINGLE_QUOTE) return i + 1
      i += 2
    } else {
      i++
    }
  }
  return n
}

/** Past a `"..."` identifier (`""` is a quote). */
function skipQuotedIdentifier(text: string, i: number): number {
  const n = text.length
  i++
  while (i < n) {
    if (text.charCodeAt(i) === DOUBLE_QUOTE) {
      if (text.charCodeAt(i + 1) !== DOUBLE_QUOTE) return i + 1
      i += 2
    } else {
      i++
    }
  }
  return n
}

const DOLLAR_TAG = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y

/** Past a `$1` parameter or a `$tag$...$tag$` string; a lone `$` is one character. */
function skipDollar(text: string, i: number): number {
  const next = text.charCodeAt(i + 1)
  if (next >= 0x30 && next <= 0x39) {
    i++
    while (i < text.length && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++
    return i
  }
  DOLLAR_TAG.lastIndex = i
  const tag = DOLLAR_TAG.exec(text)
  if (tag === null) return i + 1
  const end = text.indexOf(tag[0], i + tag[0].length)
  return end === -1 ? text.length : end + tag[0].length
}
