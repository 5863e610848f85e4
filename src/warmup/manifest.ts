/**
 * Warm-up manifests: the cached queries worth replaying into a cold cache
 * (expensive to get and often requested), as a versioned JSON document that
 * operators can read, diff, keep in a file and hand to the CLI.
 *
 * JSON shape (version 1); `serializeManifest` writes one entry per line:
 * ```json
 * {
 *   "version": 1,
 *   "namespace": "app",
 *   "createdAt": "2024-06-10T12:00:00.000Z",
 *   "entries": [
 *     {"key":"app:q:3Jx…","sql":"select * from \"person\" where \"born\" > $1 and \"id\" = $2","parameters":{"json":["1990-01-01T00:00:00.000Z","42"],"meta":{"values":{"0":["Date"],"1":["bigint"]},"v":1}},"tables":["public.person"],"tags":["people"],"ttl":60,"score":5230.5}
 *   ]
 * }
 * ```
 * - `parameters` is the superjson form (`{ json, meta? }`) of the parameter array,
 *   made by the superjson instance of cache/codec.ts, so Date, bigint, Buffer (bytea),
 *   undefined, Map and Set survive. A plain JSON array is accepted too, for
 *   hand-written manifests whose parameters are plain JSON values.
 * - `score` is requests × mean database time (ms) when the manifest was made;
 *   warm-up replays the highest first.
 * - `key` is the cache key the entry was recorded under; unknown fields are ignored.
 *
 * @module
 */
import { decodeValue, encodeValue } from '../cache/codec.js'
import { validateNamespace } from '../keys.js'
import { describe, ttlSeconds } from '../util/validate.js'
import type { HotQuery, QueryShape } from '../statistics/query-shape.js'
import { classifyRawStatement } from '../kysely/raw-statement.js'
import { isParameterTree, isReadableSuperjsonMeta } from '../statistics/statistics-snapshot.js'

/** One query to replay. */
export interface WarmupEntry extends QueryShape {
  /** requests × mean database time (ms): higher goes first. */
  readonly score: number
}

/** A versioned list of queries to replay into the cache of `namespace`. */
export interface WarmupManifest {
  readonly version: 1
  readonly namespace: string
  /** ISO 8601. */
  readonly createdAt: string
  readonly entries: readonly WarmupEntry[]
}

/**
 * A manifest that cannot be read; `path` names the offending field (`''` for the document itself).
 *
 * ```ts
 * try {
 *   parseManifest(await readFile('warmup.json', 'utf8'))
 * } catch (error) {
 *   if (error instanceof ManifestError) console.error(`warmup.json ${error.path}: ${error.message}`)
 * }
 * ```
 */
export class ManifestError extends Error {
  override readonly name = 'ManifestError'
  constructor(
    message: string,
    /** The field at fault, e.g. `"entries[3].sql"`; `''` for the whole document. */
    readonly path: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

const SUPPORTED_VERSION = 1
/** memcached keys: at most 250 bytes of printable ASCII without spaces. */
const VALID_KEY = /^[!-~]{1,250}$/
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/

/**
 * A manifest of `hot` (as ranked by `QueryStatistics.top` or
 * `FarmStatistics.read`), in the given order. Entries a manifest cannot carry
 * (SQL that is not a single read-only statement, a key that is not a cache key, a
 * score that is not finite…) are left out, so what this returns always passes
 * {@link parseManifest}.
 *
 * @throws {TypeError} When `namespace` is not a valid namespace.
 *
 * @example
 * ```ts
 * const manifest = createManifest('app', statistics.top(500))
 * await writeFile('warmup.json', serializeManifest(manifest))
 * ```
 */
export function createManifest(namespace: string, hot: readonly HotQuery[], now: Date = new Date()): WarmupManifest {
  validateNamespace(namespace)
  const entries: WarmupEntry[] = []
  for (const query of hot) {
    const entry = {
      key: query.key,
      sql: query.sql,
      parameters: [...query.parameters],
      tables: [...query.tables],
      tags: [...query.tags],
      ttl: query.ttl,
      score: query.score,
    }
    // Checked as parseManifest will check its text: farm statistics come from memcached, which
    // anyone who reaches a node can write (a key with spaces, a score of Infinity…).
    try {
      parseEntry({ ...entry, parameters: JSON.parse(encodeValue(entry.parameters)) as unknown }, 'entry')
    } catch {
      continue
    }
    entries.push(entry)
  }
  return { version: SUPPORTED_VERSION, namespace, createdAt: now.toISOString(), entries }
}

/**
 * The manifest as JSON text (shape in the module comment): parameters in
 * superjson form, one entry per line so files diff and grep well.
 *
 * @example
 * ```ts
 * const text = serializeManifest(manifest)
 * parseManifest(text) // deep-equals manifest, Dates, bigints and Buffers included
 * ```
 */
export function serializeManifest(manifest: WarmupManifest): string {
  const head = [
    `  "version": ${JSON.stringify(manifest.version)}`,
    `  "namespace": ${JSON.stringify(manifest.namespace)}`,
    `  "createdAt": ${JSON.stringify(manifest.createdAt)}`,
  ]
  const lines = manifest.entries.map((entry) =>
    JSON.stringify({
      key: entry.key,
      sql: entry.sql,
      parameters: JSON.parse(encodeValue(entry.parameters)) as unknown,
      tables: entry.tables,
      tags: entry.tags,
      ttl: entry.ttl,
      score: entry.score,
    }),
  )
  const entries = lines.length === 0 ? '  "entries": []' : `  "entries": [\n    ${lines.join(',\n    ')}\n  ]`
  return `{\n${[...head, entries].join(',\n')}\n}\n`
}

/**
 * Reads and validates a manifest, from JSON text or the already parsed object.
 * Every entry must be a single read-only statement (a `;` only at its end).
 * A namespace other than the cache's is not an error here: the caller decides.
 *
 * @throws {ManifestError} Saying what is wrong and where (`error.path`): not
 *   JSON, an unsupported version, a missing or ill-typed field, an entry that is
 *   not a single SELECT, a negative TTL or score.
 *
 * @example
 * ```ts
 * try {
 *   const manifest = parseManifest(await readFile('warmup.json', 'utf8'))
 * } catch (error) {
 *   if (error instanceof ManifestError) console.error(`warmup.json: ${error.message}`)
 * }
 * ```
 */
export function parseManifest(text: string | object): WarmupManifest {
  let document: unknown = text
  if (typeof text === 'string') {
    try {
      document = JSON.parse(text)
    } catch (error) {
      throw new ManifestError(`manifest is not valid JSON: ${(error as Error).message}`, '', { cause: error })
    }
  }
  const root = objectAt(document, '', 'manifest')
  const version = field(root, 'version', '')
  if (typeof version === 'number') {
    if (version !== SUPPORTED_VERSION) {
      throw new ManifestError(
        `manifest version ${version} is not supported; this version of kysely-memcache reads version ${SUPPORTED_VERSION}`,
        'version',
      )
    }
  } else {
    throw new ManifestError(`version must be the number ${SUPPORTED_VERSION}, got ${describe(version)}`, 'version')
  }
  const namespace = field(root, 'namespace', '')
  try {
    validateNamespace(namespace)
  } catch (error) {
    throw new ManifestError((error as Error).message, 'namespace', { cause: error })
  }
  const createdAt = field(root, 'createdAt', '')
  if (typeof createdAt !== 'string' || !ISO_DATE.test(createdAt) || Number.isNaN(Date.parse(createdAt))) {
    throw new ManifestError(`createdAt must be an ISO 8601 date-time, got ${describe(createdAt)}`, 'createdAt')
  }
  const list = field(root, 'entries', '')
  if (!Array.isArray(list)) {
    throw new ManifestError(`entries must be an array, got ${describe(list)}`, 'entries')
  }
  const entries = list.map((item, index) => parseEntry(item, `entries[${index}]`))
  return { version: SUPPORTED_VERSION, namespace: namespace as string, createdAt, entries }
}

/**
 * The entries in replay order: highest score first; equal scores keep their
 * manifest order. Returns a new array.
 *
 * @example
 * ```ts
 * for (const entry of orderForWarmup(manifest)) await replay(entry)
 * ```
 */
export function orderForWarmup(manifest: WarmupManifest): WarmupEntry[] {
  // Array.prototype.sort is stable (ES2019).
  return [...manifest.entries].sort((a, b) => b.score - a.score)
}

function parseEntry(item: unknown, path: string): WarmupEntry {
  const entry = objectAt(item, path, 'each entry')
  const key = field(entry, 'key', path)
  if (typeof key !== 'string' || !VALID_KEY.test(key)) {
    throw new ManifestError(
      `${path}.key must be a cache key (1 to 250 printable ASCII characters, no spaces), got ${describe(clip(key))}`,
      `${path}.key`,
    )
  }
  const sql = field(entry, 'sql', path)
  if (typeof sql !== 'string') {
    throw new ManifestError(`${path}.sql must be a string, got ${describe(sql)}`, `${path}.sql`)
  }
  const problem = sqlProblem(sql)
  if (problem !== undefined) {
    throw new ManifestError(`${path}.sql must be ${problem}, got ${describe(clip(sql))}`, `${path}.sql`)
  }
  const parameters = parseParameters(field(entry, 'parameters', path), `${path}.parameters`)
  const tables = stringList(field(entry, 'tables', path), `${path}.tables`)
  const tags = stringList(field(entry, 'tags', path), `${path}.tags`)
  const ttl = field(entry, 'ttl', path) as number
  try {
    // Checked, not rounded: the entry keeps the TTL it was recorded with.
    ttlSeconds(ttl, `${path}.ttl`)
  } catch (error) {
    throw new ManifestError((error as Error).message, `${path}.ttl`)
  }
  const score = field(entry, 'score', path)
  if (typeof score !== 'number' || !Number.isFinite(score) || score < 0) {
    throw new ManifestError(`${path}.score must be a finite number >= 0, got ${describe(score)}`, `${path}.score`)
  }
  return { key, sql, parameters, tables, tags, ttl, score }
}

/** Superjson `{ json, meta? }`, or a plain JSON array. */
function parseParameters(value: unknown, path: string): unknown[] {
  if (Array.isArray(value)) {
    // Plain JSON makes no shared values; an object handed in might (a bound keeps the walk finite).
    if (!isParameterTree(value, 10_000_000)) {
      throw new ManifestError(`${path} must be parameters (no key __proto__, constructor or prototype, no value that refers to itself)`, path)
    }
    return value
  }
  if (typeof value !== 'object' || value === null) {
    throw new ManifestError(`${path} must be an array or superjson { json, meta }, got ${describe(value)}`, path)
  }
  const form = value as Record<string, unknown>
  if (!Array.isArray(form['json'])) {
    throw new ManifestError(`${path}.json must be an array, got ${describe(form['json'])}`, `${path}.json`)
  }
  if (form['meta'] !== undefined && (typeof form['meta'] !== 'object' || form['meta'] === null || Array.isArray(form['meta']))) {
    throw new ManifestError(`${path}.meta must be an object, got ${describe(form['meta'])}`, `${path}.meta`)
  }
  if (!isReadableSuperjsonMeta(form['meta'])) {
    throw new ManifestError(`${path}.meta holds annotations superjson cannot read in time`, `${path}.meta`)
  }
  let decoded: unknown
  let text: string
  try {
    text = JSON.stringify({ json: form['json'], meta: form['meta'] })
    decoded = decodeValue(text)
  } catch (error) {
    throw new ManifestError(`${path} is not valid superjson: ${(error as Error).message}`, path, { cause: error })
  }
  if (!Array.isArray(decoded)) {
    throw new ManifestError(`${path} must decode to an array, got ${describe(decoded)}`, path)
  }
  if (!isParameterTree(decoded, text.length)) {
    throw new ManifestError(
      `${path} must decode to parameters (no value that refers to itself or repeats out of proportion, no invalid Date, no hole or named property in an array, no key __proto__, constructor or prototype)`,
      path,
    )
  }
  return decoded
}

/** Why `sql` cannot be replayed, or `undefined` when it is a single read-only statement. */
function sqlProblem(sql: string): string | undefined {
  if (hasInnerSemicolon(sql)) return 'a single statement (";" may only end it)'
  if (classifyRawStatement(sql) !== 'read') return 'a single read-only SELECT statement'
  return undefined
}

/**
 * Whether `sql` has a `;` anywhere but at its very end, outside string literals,
 * quoted identifiers, dollar quotes and comments (so `where note = 'a;b'` passes).
 */
function hasInnerSemicolon(sql: string): boolean {
  const length = sql.trimEnd().length
  let i = 0
  while (i < length) {
    const c = sql[i]!
    if (c === ';') {
      if (i !== length - 1) return true
      i++
    } else if (c === "'") {
      // E'…' strings take backslash escapes.
      const escapes = i > 0 && (sql[i - 1] === 'E' || sql[i - 1] === 'e') && !/[\w$]/.test(sql[i - 2] ?? '')
      i = skipQuoted(sql, i, "'", escapes)
    } else if (c === '"') {
      i = skipQuoted(sql, i, '"', false)
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i)
      i = end < 0 ? sql.length : end + 1
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2)
      i = end < 0 ? sql.length : end + 2
    } else if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64))
      if (tag !== null && !/[\w$]/.test(sql[i - 1] ?? '')) {
        const end = sql.indexOf(tag[0], i + tag[0].length)
        i = end < 0 ? sql.length : end + tag[0].length
      } else {
        i++
      }
    } else {
      i++
    }
  }
  return false
}

/** Index just past the literal opened at `start`; a doubled quote is an escaped quote. */
function skipQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1
  while (i < sql.length) {
    const c = sql[i]
    if (backslashEscapes && c === '\\') {
      i += 2
    } else if (c === quote) {
      if (sql[i + 1] !== quote) return i + 1
      i += 2
    } else {
      i++
    }
  }
  return i
}

function objectAt(value: unknown, path: string, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ManifestError(`${path === '' ? what : path} must be an object, got ${describe(value)}`, path)
  }
  return value as Record<string, unknown>
}

function field(object: Record<string, unknown>, name: string, path: string): unknown {
  const fieldPath = path === '' ? name : `${path}.${name}`
  if (!(name in object) || object[name] === undefined) {
    throw new ManifestError(`${fieldPath} is missing`, fieldPath)
  }
  return object[name]
}

function stringList(value: unknown, path: string): string[] {
  if (!Array.isArray(value)) {
    throw new ManifestError(`${path} must be an array of non-empty strings, got ${describe(value)}`, path)
  }
  value.forEach((item, index) => {
    if (typeof item !== 'string' || item === '') {
      throw new ManifestError(`${path}[${index}] must be a non-empty string, got ${describe(item)}`, `${path}[${index}]`)
    }
  })
  return [...(value as string[])]
}

function clip(value: unknown): unknown {
  return typeof value === 'string' && value.length > 200 ? `${value.slice(0, 200)}…` : value
}
