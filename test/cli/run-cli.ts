/** Runs the CLI in-process through `main`, or as the real bin through tsx. */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { main } from '../../src/cli/main.js'
import type { CliIo } from '../../src/cli/main.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs `main(argv)` with captured output; `tty` makes stdout look like a terminal; `env` stands in for process.env. */
export async function run(argv: string[], signal?: AbortSignal, tty = false, env?: Record<string, string | undefined>): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = {
    // A terminal as cli-progress sees one: readline writes its cursor moves through write().
    stdout: tty ? ({ write: (text: string) => (stdout += text), isTTY: true, columns: 120 } as CliIo['stdout']) : { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    ...(signal === undefined ? {} : { signal }),
    ...(env === undefined ? {} : { env }),
  }
  const code = await main(argv, io)
  return { code, stdout, stderr }
}

/** Runs the real bin the way a shell would, through tsx; `env` is added to this process's environment. */
export function spawnCli(
  argv: string[],
  whileRunning?: (child: ReturnType<typeof spawn>, output: () => string) => Promise<void>,
  env: Record<string, string> = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve({ code: code ?? (signal === null ? -1 : 128), stdout, stderr }))
    whileRunning?.(child, () => stdout).catch((error: unknown) => {
      child.kill('SIGKILL')
      reject(error)
    })
  })
}
