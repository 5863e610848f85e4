/**
 * Shared helpers of the benchmark scripts: statistics, the machine description
 * every result file carries, result files, and table printing.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { dirname, isAbsolute, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { isAlive } from '../../test/harness/memcached.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const RESULTS_DIR = join(ROOT, 'bench', 'results')
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** p-th percentile (0–100), nearest rank, of values already sorted ascending. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!
}

export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort()
}

export function median(values: ArrayLike<number>): number {
  return percentileSorted(sortedCopy(values), 50)
}

export function mean(values: ArrayLike<number>): number {
  let sum = 0
  for (let i = 0; i < values.length; i++) sum += values[i]!
  return values.length === 0 ? Number.NaN : sum / values.length
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

/** `2026-11-25`, for result file names. */
export function today(): string {
  return new Date().toISOString().slice(0, 10)
}

function tryRun(file: string, args: string[]): string | undefined {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
  } catch {
    return undefined
  }
}

function packageVersion(name: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return undefined
  }
}

export interface Machine {
  cpus: number
  cpuModel: string
  memoryGiB: number
  node: string
  platform: string
  kernel: string | undefined
  postgres: string | undefined
  memcached: string | undefined
  packages: Record<string, string | undefined>
  git: { commit: string | undefined; dirtySrc: string[] }
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine shows here. */
  loadAverageAtStart: number[]
}

/** Everything a reader needs to judge a figure: hardware, versions, and which source tree was measured. */
export async function describeMachine(): Promise<Machine> {
  let postgres: string | undefined
  const client = new pg.Client({ connectionString: DATABASE_URL })
  try {
    await client.connect()
    postgres = (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v
  } catch {
    postgres = undefined
  } finally {
    await client.end().catch(() => {})
  }
  const memcachedBin = process.env.MEMCACHED_BIN ?? 'memcached'
  const dirty = tryRun('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'])
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    kernel: tryRun('uname', ['-r']),
    postgres,
    memcached: tryRun(memcachedBin, ['-V']),
    packages: Object.fromEntries(
      ['kysely', 'pg', 'memjs', 'hashring', 'superjson', 'lru-cache'].map((name) => [name, packageVersion(name)]),
    ),
    git: {
      commit: tryRun('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
      // The benchmarks measure the working tree: say when src/ differs from the commit.
      dirtySrc: dirty === undefined || dirty === '' ? [] : dirty.split('\n').map((line) => line.trim()),
    },
    loadAverageAtStart: loadavg().map((value) => round(value, 2)),
  }
}

export function machineLine(machine: Machine): string {
  return `${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres ?? '?'}, ${machine.memcached ?? 'memcached ?'}, load ${machine.loadAverageAtStart.join(' ')}`
}

export function loadAverageNow(): number[] {
  return loadavg().map((value) => round(value, 2))
}

/** Writes `bench/results/<name>` (JSON pretty-printed, or text); returns the path relative to the repository. */
export function writeResult(name: string, content: unknown): string {
  const path = isAbsolute(name) ? name : join(RESULTS_DIR, name)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`)
  return relative(ROOT, path)
}

/** A plain-text table with right-aligned numeric columns. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cells = [header.map(String), ...rows.map((row) => row.map((cell) => (typeof cell === 'number' ? formatNumber(cell) : cell)))]
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)))
  const line = (row: readonly string[]): string =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n')
}

/** The same table as Markdown, for pasting into docs. */
export function markdownTable(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const fmt = (cell: string | number): string => (typeof cell === 'number' ? formatNumber(cell) : cell)
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(fmt).join(' | ')} |`),
  ].join('\n')
}

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value)
  if (Number.isInteger(value)) return Math.abs(value) >= 10000 ? value.toLocaleString('en-US') : String(value)
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US')
  if (Math.abs(value) >= 100) return value.toFixed(0)
  if (Math.abs(value) >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

/** A deterministic PRNG (mulberry32), so workloads are reproducible from a seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Exits non-zero with the reason: for when a benchmark could not run at all. */
export function couldNotRun(error: unknown): never {
  process.stderr.write(`benchmark could not run: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
}

/**
 * Drops `<prefix><pid>` schemas left by runs of this benchmark that were killed before
 * their cleanup (Ctrl-C, a closed pipe), when that process is gone.
 */
export async function dropStaleSchemas(client: pg.Client, prefix: string): Promise<void> {
  const { rows } = await client.query<{ name: string }>(
    `select nspname as name from pg_namespace where nspname like $1`,
    [`${prefix.replace(/_/g, '\\_')}%`],
  )
  for (const { name } of rows) {
    const pid = Number(name.slice(prefix.length))
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || isAlive(pid)) continue
    await client.query(`drop schema if exists ${name} cascade`)
  }
}

