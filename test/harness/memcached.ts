/**
 * Real memcached processes for tests: each node listens on its own free
 * loopback port, so parallel vitest workers never share one.
 */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { flushNode, probeNode, readNodeStats } from '../../src/store/memcached/node-probe.js'
import type { SaslCredentials } from '../../src/util/validate.js'

/** Options of {@link startMemcached}. */
export interface StartMemcachedOptions {
  /** `-m`: memory limit in MiB. Default 64. */
  memoryMb?: number
  /** `-I`: largest item, e.g. `'1m'` (memcached's default) or `'2m'`. */
  maxItemSize?: string
  /** Extra command-line arguments for every node. */
  extraArgs?: readonly string[]
  /** How long a node may take to answer after spawning. Default 10 000 ms. */
  readyTimeoutMs?: number
  /**
   * Starts the nodes with `-S` (SASL on, text protocol off), accepting only this
   * user and password (SASL PLAIN, from a sasldb made with saslpasswd2).
   */
  sasl?: SaslCredentials
}

/** One memcached process of a {@link MemcachedCluster}. */
export interface MemcachedNode {
  /** Its TCP port on 127.0.0.1; kept across {@link restart}. */
  readonly port: number
  /** `'127.0.0.1:PORT'`, as given to the store. */
  readonly address: string
  /** The process id while running. */
  readonly pid: number | undefined
  /** Whether the process is alive (paused counts as alive). */
  readonly running: boolean
  /** SIGKILL; resolves once the process has exited. */
  kill(): Promise<void>
  /** SIGSTOP: the port still accepts connections, nothing answers. */
  pause(): Promise<void>
  /** SIGCONT. */
  resume(): Promise<void>
  /** Starts a fresh (empty) process on the same port (killing the old one if alive); resolves when it answers. */
  restart(): Promise<void>
  /** `stats` (over the binary protocol, authenticated, on a SASL node), as `name → value`. */
  stats(): Promise<Record<string, string>>
  /** `flush_all` (authenticated on a SASL node). */
  flush(): Promise<void>
  /** Remaining TTL of `key` in seconds via `mg key t`: `-1` for no expiry, `undefined` when absent. Not on SASL nodes. */
  ttl(key: string): Promise<number | undefined>
  /** Sends raw text-protocol `text` and resolves the reply once it ends with `terminator`. Not on SASL nodes. */
  command(text: string, terminator: RegExp): Promise<string>
}

/** What {@link startMemcached} returns. */
export interface MemcachedCluster {
  /** `'127.0.0.1:PORT'` of every node, in order. */
  readonly servers: string[]
  readonly nodes: MemcachedNode[]
  /** Kills every node and waits for the processes to exit. */
  stopAll(): Promise<void>
}

const SASLPASSWD_NOT_FOUND_MESSAGE =
  'saslpasswd2 not found (SASLPASSWD2_BIN, else PATH, /usr/sbin and /sbin); SASL tests need it: install sasl2-bin (Debian/Ubuntu: apt-get install sasl2-bin)'
const NOT_FOUND_MESSAGE =
  'memcached binary not found on PATH; install it (Debian/Ubuntu: apt-get install memcached, macOS: brew install memcached)'
const HOST = '127.0.0.1'
const START_ATTEMPTS = 8
// Shared by every worker: a port stays reserved while its cluster lives, so a
// node killed for a test can come back on its port without another worker
// having started a memcached there meanwhile.
const PORT_LOCK_DIR = join(tmpdir(), 'kysely-memcache-test-ports')

// Every process this module started and that has not exited yet.
const liveProcesses = new Set<ChildProcess>()
// SASL configuration directories of clusters not stopped yet.
const saslDirectories = new Set<string>()
const reservedPorts = new Set<number>()
let exitHookInstalled = false

/**
 * Starts `count` memcached processes on free loopback ports and waits until each
 * answers. Also makes sure none outlives the test process.
 * @throws {Error} When `memcached` is not on PATH (or `MEMCACHED_BIN` is wrong).
 */
export async function startMemcached(count: number, options: StartMemcachedOptions = {}): Promise<MemcachedCluster> {
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new RangeError(`count must be a positive integer, got ${String(count)}`)
  }
  const binary = findMemcached()
  installExitHook()
  const saslDirectory = options.sasl === undefined ? undefined : writeSaslConfig(options.sasl)
  const launchConfig: LaunchConfig = { binary, options, saslDirectory }
  const settled = await Promise.allSettled(
    Array.from({ length: count }, () => startNode(launchConfig)),
  )
  const nodes = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
  const failure = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected')
  if (failure !== undefined) {
    await Promise.all(nodes.map((node) => node.kill()))
    removeSaslConfig(saslDirectory)
    throw failure.reason
  }
  return {
    servers: nodes.map((node) => node.address),
    nodes,
    stopAll: async () => {
      await Promise.all(nodes.map((node) => node.kill()))
      for (const node of nodes) {
        releasePort(node.port)
      }
      removeSaslConfig(saslDirectory)
    },
  }
}

/** How every node of a cluster is started. */
interface LaunchConfig {
  readonly binary: string
  readonly options: StartMemcachedOptions
  /** SASL_CONF_PATH for `-S` nodes. */
  readonly saslDirectory: string | undefined
}

/**
 * A directory with memcached.conf (PLAIN only, users from a sasldb) and that
 * sasldb holding the one user, for SASL_CONF_PATH. Debian's memcached ignores
 * MEMCACHED_SASL_PWDB, hence the sasldb.
 */
function writeSaslConfig(credentials: SaslCredentials): string {
  const override = process.env['SASLPASSWD2_BIN']
  const saslpasswd2 = override !== undefined && override !== '' ? executable(override) : findExecutable('saslpasswd2', ['/usr/sbin', '/sbin'])
  if (saslpasswd2 === undefined) throw new Error(SASLPASSWD_NOT_FOUND_MESSAGE)
  const directory = mkdtempSync(join(tmpdir(), 'kysely-memcache-sasl-'))
  saslDirectories.add(directory)
  const database = join(directory, 'sasldb2')
  writeFileSync(join(directory, 'memcached.conf'), `mech_list: plain\nsasldb_path: ${database}\n`)
  // -p reads the password from stdin (no trailing newline): it never shows in ps.
  const made = spawnSync(saslpasswd2, ['-p', '-a', 'memcached', '-c', '-f', database, credentials.username], {
    input: credentials.password,
    encoding: 'utf8',
  })
  if (made.status !== 0) {
    removeSaslConfig(directory)
    throw new Error(`saslpasswd2 could not create the sasldb for user ${JSON.stringify(credentials.username)}: ${made.error?.message ?? made.stderr.trim()}`)
  }
  return directory
}

function removeSaslConfig(directory: string | undefined): void {
  if (directory === undefined) return
  saslDirectories.delete(directory)
  rmSync(directory, { recursive: true, force: true })
}

function findMemcached(): string {
  const override = process.env['MEMCACHED_BIN']
  const found = override !== undefined && override !== '' ? executable(override) : findExecutable('memcached', [])
  if (found === undefined) throw new Error(NOT_FOUND_MESSAGE)
  return found
}

/** `name` in a directory of PATH, then of `alsoIn`; `undefined` when in none. */
function findExecutable(name: string, alsoIn: readonly string[]): string | undefined {
  const directories = [...(process.env['PATH'] ?? '').split(delimiter).filter((dir) => dir !== ''), ...alsoIn]
  for (const directory of directories) {
    const found = executable(join(directory, name))
    if (found !== undefined) return found
  }
  return undefined
}

function executable(path: string): string | undefined {
  try {
    accessSync(path, constants.X_OK)
    return path
  } catch {
    return undefined
  }
}

function installExitHook(): void {
  if (exitHookInstalled) {
    return
  }
  exitHookInstalled = true
  // 'exit' handlers must be synchronous: a plain SIGKILL is all there is time for.
  process.on('exit', () => {
    for (const child of liveProcesses) {
      child.kill('SIGKILL')
    }
    for (const port of reservedPorts) {
      releasePort(port)
    }
    for (const directory of saslDirectories) {
      rmSync(directory, { recursive: true, force: true })
    }
  })
}

async function startNode(config: LaunchConfig): Promise<MemcachedNode> {
  let lastError: unknown
  // The port is free when we look, but another worker may bind it before memcached does.
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort()
    if (!reservePort(port)) {
      continue
    }
    try {
      const child = await launch(config, port)
      return new Node(config, port, child)
    } catch (error) {
      releasePort(port)
      lastError = error
      if (!(error instanceof PortTakenError)) {
        throw error
      }
    }
  }
  throw new Error(`could not start memcached after ${START_ATTEMPTS} attempts`, { cause: lastError })
}

class Node implements MemcachedNode {
  readonly address: string
  #child: ChildProcess | undefined

  constructor(
    readonly config: LaunchConfig,
    readonly port: number,
    child: ChildProcess,
  ) {
    this.address = `${HOST}:${port}`
    this.#child = child
  }

  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null
  }

  async kill(): Promise<void> {
    const child = this.#child
    if (child === undefined || !this.running) {
      return
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGKILL')
    await exited
  }

  async pause(): Promise<void> {
    this.#signal('SIGSTOP')
    await this.#waitForState((state) => state === 'T' || state === 't')
  }

  async resume(): Promise<void> {
    this.#signal('SIGCONT')
    await this.#waitForState((state) => state !== 'T' && state !== 't')
  }

  async restart(): Promise<void> {
    await this.kill()
    const deadline = Date.now() + 5000
    for (;;) {
      try {
        this.#child = await launch(this.config, this.port)
        return
      } catch (error) {
        // Same port on purpose: only wait for it to be released, never move.
        if (!(error instanceof PortTakenError) || Date.now() > deadline) {
          throw error
        }
        await sleep(100)
      }
    }
  }

  async stats(): Promise<Record<string, string>> {
    const sasl = this.config.options.sasl
    if (sasl !== undefined) return readNodeStats(this.address, 2000, sasl)
    return parseStats(await this.command('stats\r\n', /^END\r\n|\r\nEND\r\n$/))
  }

  async flush(): Promise<void> {
    const sasl = this.config.options.sasl
    if (sasl !== undefined) return flushNode(this.address, 2000, sasl)
    const reply = await this.command('flush_all\r\n', /\r\n$/)
    if (reply !== 'OK\r\n') {
      throw new Error(`flush_all on ${this.address} answered ${JSON.stringify(reply)}`)
    }
  }

  async ttl(key: string): Promise<number | undefined> {
    const reply = await this.command(`mg ${key} t\r\n`, /\r\n$/)
    if (reply === 'EN\r\n') {
      return undefined
    }
    const match = /^HD(?: .*)? t(-?\d+)/.exec(reply)
    if (!match) {
      throw new Error(`mg on ${this.address} answered ${JSON.stringify(reply)}`)
    }
    return Number(match[1])
  }

  command(text: string, terminator: RegExp): Promise<string> {
    if (this.config.options.sasl !== undefined) {
      return Promise.reject(new Error(`memcached on ${this.address} runs with -S (SASL): it has no text protocol for ${JSON.stringify(text.trim())}`))
    }
    return rawCommand(this.port, text, terminator)
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.#child === undefined || !this.running) {
      throw new Error(`memcached on ${this.address} is not running`)
    }
    this.#child.kill(signal)
  }

  /** Waits for the process state letter in /proc (Linux) so a pause is in force on return. */
  async #waitForState(done: (state: string) => boolean): Promise<void> {
    const pid = this.#child?.pid
    if (pid === undefined) {
      return
    }
    const deadline = Date.now() + 2000
    while (Date.now() < deadline) {
      let stat: string
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      } catch {
        return // No /proc (macOS): signals to a local child take effect at once anyway.
      }
      // The state follows the parenthesised command name, which may hold spaces.
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
      if (done(state)) {
        return
      }
      await sleep(5)
    }
    throw new Error(`memcached on ${this.address} did not change state in time`)
  }
}

class PortTakenError extends Error {}

/** Spawns memcached on `port`; resolves once this very process (checked by pid) answers. */
async function launch(config: LaunchConfig, port: number): Promise<ChildProcess> {
  const { binary, options, saslDirectory } = config
  const args = ['-l', HOST, '-p', String(port), '-U', '0', '-m', String(options.memoryMb ?? 64), '-t', '1']
  if (options.maxItemSize !== undefined) {
    args.push('-I', options.maxItemSize)
  }
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    args.push('-u', 'root') // memcached refuses to run as root without -u.
  }
  if (saslDirectory !== undefined) {
    args.push('-S')
  }
  args.push(...(options.extraArgs ?? []))

  const env = saslDirectory === undefined ? process.env : { ...process.env, SASL_CONF_PATH: saslDirectory }
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], env })
  liveProcesses.add(child)
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => {
    if (stderr.length < 4096) {
      stderr += chunk
    }
  })
  let spawnError: Error | undefined
  child.once('error', (error) => {
    spawnError = error
  })
  child.once('exit', () => {
    liveProcesses.delete(child)
  })

  const deadline = Date.now() + (options.readyTimeoutMs ?? 10_000)
  for (;;) {
    if (spawnError !== undefined) {
      throw new Error(`could not spawn ${binary}: ${spawnError.message}`, { cause: spawnError })
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      if (/address already in use|failed to listen/i.test(stderr)) {
        throw new PortTakenError(`port ${port} is taken: ${stderr.trim()}`)
      }
      throw new Error(`memcached on port ${port} exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`)
    }
    if (await isOurs(port, child.pid, options.sasl)) {
      return child
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`memcached on port ${port} did not answer within ${options.readyTimeoutMs ?? 10_000} ms: ${stderr.trim()}`)
    }
    await sleep(20)
  }
}

/** `version` answers, and `stats` says the pid is ours (not another worker's memcached on a recycled port). */
async function isOurs(port: number, pid: number | undefined, sasl: SaslCredentials | undefined): Promise<boolean> {
  if (sasl !== undefined) {
    // No text protocol with -S: the binary probes, authenticated.
    const address = `${HOST}:${port}`
    if (!(await probeNode(address, 500, sasl)).ok) return false
    return (await readNodeStats(address, 500, sasl).catch(() => ({}) as Record<string, string>))['pid'] === String(pid)
  }
  try {
    const version = await rawCommand(port, 'version\r\n', /\r\n$/, 500)
    if (!version.startsWith('VERSION ')) {
      return false
    }
    const stats = parseStats(await rawCommand(port, 'stats\r\n', /END\r\n$/, 500))
    return stats['pid'] === String(pid)
  } catch {
    return false
  }
}

/** Claims `port` across processes with an exclusive lock file; steals locks of dead processes. */
function reservePort(port: number): boolean {
  mkdirSync(PORT_LOCK_DIR, { recursive: true })
  const file = join(PORT_LOCK_DIR, String(port))
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' })
      reservedPorts.add(port)
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw error
      }
    }
    const owner = Number(readFileSafely(file))
    if (Number.isSafeInteger(owner) && owner > 0 && isAlive(owner)) {
      return false
    }
    try {
      unlinkSync(file)
    } catch {
      // Someone else cleaned it first; try again.
    }
  }
  return false
}

function releasePort(port: number): void {
  if (!reservedPorts.delete(port)) {
    return
  }
  try {
    unlinkSync(join(PORT_LOCK_DIR, String(port)))
  } catch {
    // Already gone.
  }
}

function readFileSafely(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, HOST, () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

function rawCommand(port: number, text: string, terminator: RegExp, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = ''
    const socket = connect(port, HOST)
    socket.setEncoding('latin1')
    const timer = setTimeout(() => finish(new Error(`no complete reply to ${JSON.stringify(text.trim())} on port ${port} within ${timeoutMs} ms`)), timeoutMs)
    const finish = (error?: Error): void => {
      clearTimeout(timer)
      socket.destroy()
      if (error) {
        reject(error)
      } else {
        resolve(reply)
      }
    }
    socket.once('connect', () => socket.write(text))
    socket.on('data', (chunk: string) => {
      reply += chunk
      if (terminator.test(reply)) {
        finish()
      }
    })
    socket.once('error', (error) => finish(error))
    socket.once('close', () => finish(new Error(`connection to port ${port} closed before a complete reply`)))
  })
}

function parseStats(reply: string): Record<string, string> {
  const stats: Record<string, string> = {}
  for (const line of reply.split('\r\n')) {
    const match = /^STAT (\S+) (.*)$/.exec(line)
    if (match?.[1] !== undefined && match[2] !== undefined) {
      stats[match[1]] = match[2]
    }
  }
  return stats
}
