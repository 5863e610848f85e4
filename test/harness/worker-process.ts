import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { DATABASE_URL } from './database.js'

const WORKER = fileURLToPath(new URL('../fixtures/farm-worker.ts', import.meta.url))

export interface WorkerRequest {
  readonly ok: boolean
  readonly ms: number
  readonly execution?: string
  readonly firstName?: string
  readonly error?: string
}

export interface WorkerReport {
  readonly pid: number
  readonly mode: string
  readonly results: WorkerRequest[]
  readonly stats: Record<string, number>
}

/** A web process of the farm, as a real OS process (see test/fixtures/farm-worker.ts). */
export class WorkerProcess {
  readonly #child: ChildProcessWithoutNullStreams
  readonly #lines: AsyncIterator<string>
  readonly #stderr: string[] = []
  /** Resolves with the exit code (or signal). */
  readonly exited: Promise<number | NodeJS.Signals>

  constructor(env: Record<string, string>) {
    this.#child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      env: { ...process.env, DATABASE_URL, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.#child.stderr.on('data', (chunk: Buffer) => this.#stderr.push(chunk.toString()))
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]()
    this.exited = new Promise((resolve) => this.#child.once('exit', (code, signal) => resolve(code ?? signal!)))
  }

  get pid(): number {
    return this.#child.pid!
  }

  /** Waits for the worker to see the tier in the mode it waits for. */
  async ready(timeoutMs = 30_000): Promise<void> {
    const line = await this.#nextLine(timeoutMs)
    if (line !== 'READY') throw new Error(`worker ${this.pid} said ${JSON.stringify(line)} instead of READY`)
  }

  go(): void {
    this.#child.stdin.write('GO\n')
  }

  async report(timeoutMs = 30_000): Promise<WorkerReport> {
    return JSON.parse(await this.#nextLine(timeoutMs)) as WorkerReport
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.#child.kill(signal)
  }

  async #nextLine(timeoutMs: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`worker ${this.pid} silent for ${timeoutMs} ms; stderr: ${this.#stderr.join('')}`)), timeoutMs)
    })
    const exit = this.exited.then((code) => {
      throw new Error(`worker ${this.pid} exited (${code}); stderr: ${this.#stderr.join('')}`)
    })
    // Only this call's race cares; a later exit is not a failure.
    exit.catch(() => {})
    try {
      const next = await Promise.race([this.#lines.next(), timeout, exit])
      if (next.done) throw new Error(`worker ${this.pid} closed its output; stderr: ${this.#stderr.join('')}`)
      return next.value
    } finally {
      clearTimeout(timer)
    }
  }
}

/** p-th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
