/**
 * A history run: real memcached nodes, PostgreSQL, a monitor process and
 * writer/reader processes, with faults on a schedule. Every operation is logged
 * and checked offline (check.ts) once the processes have stopped.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { DATABASE_URL } from '../../harness/database.js'
import { startMemcached, type MemcachedCluster } from '../../harness/memcached.js'
import { checkHistory, type HistoryReport } from './check.js'
import { now, type HistoryEvent, type PhaseEvent } from './events.js'
import type { WorkerConfig } from './worker.js'

const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))

export interface HistoryOptions {
  /** Length of the whole fault schedule. */
  readonly durationMs: number
  readonly writers?: number
  readonly readers?: number
  readonly nodes?: number
  /** Extra cache options for every worker. */
  readonly cacheOptions?: Record<string, unknown>
  /** Options of every reader's `.cached()`. */
  readonly cachedOptions?: { readonly ttl?: number; readonly swr?: number }
  /** Progress lines (phase changes). */
  readonly log?: (line: string) => void
}

export interface HistoryRun {
  readonly report: HistoryReport
  readonly events: HistoryEvent[]
}

/** The fault schedule: weights of the run's duration, a fault phase followed by a steady one. */
interface Step {
  readonly name: string
  readonly weight: number
  readonly fault: boolean
  /** Runs at the start of the phase; may return an action for the phase's middle (ending the fault). */
  readonly begin?: (farm: Farm) => Promise<((farm: Farm) => Promise<void>) | void>
}

const SCHEDULE: readonly Step[] = [
  { name: 'cold start', weight: 6, fault: true },
  { name: 'steady', weight: 8, fault: false },
  {
    name: 'kill -9 a node',
    weight: 10,
    fault: true,
    begin: async (farm) => {
      await farm.memcached.nodes[0]!.kill()
      return (f) => f.memcached.nodes[0]!.restart()
    },
  },
  { name: 'steady after kill', weight: 8, fault: false },
  {
    name: 'pause a node',
    weight: 10,
    fault: true,
    begin: async (farm) => {
      await farm.memcached.nodes[1]!.pause()
      return (f) => f.memcached.nodes[1]!.resume()
    },
  },
  { name: 'steady after pause', weight: 8, fault: false },
  {
    name: 'restart every node',
    weight: 10,
    fault: true,
    begin: async (farm) => {
      await Promise.all(farm.memcached.nodes.map((node) => node.restart()))
    },
  },
  { name: 'steady after restart', weight: 8, fault: false },
  {
    name: 'kill -9 the monitor',
    weight: 8,
    fault: true,
    begin: async (farm) => {
      await farm.stopMonitor('SIGKILL')
      return (f) => f.startMonitor()
    },
  },
  { name: 'steady after monitor', weight: 6, fault: false },
  {
    name: 'no monitor, kill a node',
    weight: 10,
    fault: true,
    begin: async (farm) => {
      await farm.stopMonitor('SIGTERM')
      await farm.memcached.nodes[2]!.kill()
      return (f) => f.memcached.nodes[2]!.restart()
    },
  },
  { name: 'steady without monitor', weight: 8, fault: false },
]

class Farm {
  monitor: ChildProcessWithoutNullStreams | undefined
  monitorOutput: string[] = []
  constructor(
    readonly memcached: MemcachedCluster,
    readonly namespace: string,
    readonly databaseUrl: string,
  ) {}

  async startMonitor(): Promise<void> {
    const servers = this.memcached.servers.join(',')
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'monitor', '--servers', servers, '--namespace', this.namespace, '--interval', '200ms', '--settle', '2s', '--database-url', this.databaseUrl],
      { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
    )
    child.stdout.on('data', (chunk: Buffer) => this.monitorOutput.push(chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => this.monitorOutput.push(chunk.toString()))
    this.monitor = child
  }

  async stopMonitor(signal: NodeJS.Signals): Promise<void> {
    const child = this.monitor
    this.monitor = undefined
    if (child === undefined || child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    await exited
  }
}

class Worker {
  readonly child: ChildProcessWithoutNullStreams
  readonly #lines: AsyncIterator<string>
  readonly stderr: string[] = []
  constructor(role: 'writer' | 'reader', name: string, config: WorkerConfig) {
    this.child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      cwd: ROOT,
      env: { ...process.env, HISTORY_ROLE: role, HISTORY_NAME: name, HISTORY_CONFIG: JSON.stringify(config) },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.child.stderr.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString()))
    this.#lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]()
  }

  async expect(line: string, timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`history worker silent for ${timeoutMs} ms; stderr: ${this.stderr.join('')}`)), timeoutMs)
    })
    try {
      const next = await Promise.race([this.#lines.next(), timeout])
      if (next.done || next.value !== line) {
        throw new Error(`history worker said ${JSON.stringify(next.value)} instead of ${line}; stderr: ${this.stderr.join('')}`)
      }
    } finally {
      clearTimeout(timer)
    }
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`)
  }
}

export async function runHistory(options: HistoryOptions): Promise<HistoryRun> {
  const log = options.log ?? (() => {})
  const writers = options.writers ?? 2
  const readers = options.readers ?? 4
  const directory = mkdtempSync(join(tmpdir(), 'kysely-memcache-history-'))
  const schema = `hist_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const admin = new pg.Client({ connectionString: DATABASE_URL })
  await admin.connect()
  const memcached = await startMemcached(options.nodes ?? 4)
  const namespace = `h${Date.now().toString(36)}`
  const databaseUrl = withSearchPath(DATABASE_URL, schema)
  const farm = new Farm(memcached, namespace, databaseUrl)
  const workers: Worker[] = []
  const phaseLog = join(directory, 'phases.jsonl')
  try {
    const rowsPerWriter = 2
    const allIds = Array.from({ length: writers * rowsPerWriter }, (_, i) => i + 1)
    await admin.query(`create schema ${schema}`)
    await admin.query(`create table ${schema}.register (id integer primary key, v integer not null)`)
    await admin.query(`create table ${schema}.label (id integer primary key, name text not null, grp integer not null)`)
    for (const id of allIds) {
      await admin.query(`insert into ${schema}.register (id, v) values ($1, 0)`, [id])
      await admin.query(`insert into ${schema}.label (id, name, grp) values ($1, $2, $3)`, [id, `row ${id}`, id % 2])
    }
    await farm.startMonitor()
    const base = {
      databaseUrl: DATABASE_URL,
      schema,
      servers: memcached.servers,
      namespace,
      allIds,
      ...(options.cacheOptions === undefined ? {} : { cacheOptions: options.cacheOptions }),
      ...(options.cachedOptions === undefined ? {} : { cachedOptions: options.cachedOptions }),
    }
    for (let w = 0; w < writers; w++) {
      const ids = allIds.slice(w * rowsPerWriter, (w + 1) * rowsPerWriter)
      workers.push(new Worker('writer', `writer-${w}`, { ...base, ids, loops: 1, pauseMs: 120, logFile: join(directory, `writer-${w}.jsonl`) }))
    }
    for (let r = 0; r < readers; r++) {
      workers.push(new Worker('reader', `reader-${r}`, { ...base, ids: [], loops: 4, pauseMs: 2, logFile: join(directory, `reader-${r}.jsonl`) }))
    }
    await Promise.all(workers.map((worker) => worker.expect('READY', 60_000)))
    for (const worker of workers) worker.send('GO')

    const phases: PhaseEvent[] = []
    const total = SCHEDULE.reduce((sum, step) => sum + step.weight, 0)
    for (const step of SCHEDULE) {
      const phaseMs = (options.durationMs * step.weight) / total
      const startedAt = Date.now()
      phases.push({ type: 'phase', name: step.name, fault: step.fault, at: now() })
      log(`phase: ${step.name}`)
      const end = await step.begin?.(farm)
      if (end !== undefined) {
        // The fault lasts 40% of the phase; the rest is recovery, still counted as the fault's phase.
        await sleep(Math.max(0, startedAt + phaseMs * 0.4 - Date.now()))
        await end(farm)
      }
      await sleep(Math.max(0, startedAt + phaseMs - Date.now()))
    }
    phases.push({ type: 'phase', name: 'end', fault: false, at: now() })
    writeFileSync(phaseLog, phases.map((phase) => JSON.stringify(phase)).join('\n') + '\n')
    for (const worker of workers) worker.send('STOP')
    await Promise.all(workers.map((worker) => worker.expect('DONE', 30_000)))

    const events: HistoryEvent[] = [...phases]
    for (const name of [...Array.from({ length: writers }, (_, w) => `writer-${w}`), ...Array.from({ length: readers }, (_, r) => `reader-${r}`)]) {
      const text = readFileSync(join(directory, `${name}.jsonl`), 'utf8')
      for (const line of text.split('\n')) if (line !== '') events.push(JSON.parse(line) as HistoryEvent)
    }
    return { report: checkHistory(events), events }
  } finally {
    for (const worker of workers) if (worker.child.exitCode === null) worker.child.kill('SIGKILL')
    await farm.stopMonitor('SIGTERM').catch(() => {})
    await memcached.stopAll()
    await admin.query(`drop schema if exists ${schema} cascade`).catch(() => {})
    await admin.end()
    rmSync(directory, { recursive: true, force: true })
  }
}

/** The database URL with `search_path` set, for processes that take only a URL (the monitor's replay). */
function withSearchPath(url: string, schema: string): string {
  const parsed = new URL(url)
  parsed.searchParams.set('options', `-c search_path=${schema}`)
  return parsed.toString()
}
