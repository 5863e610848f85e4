import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DATABASE_URL } from '../harness/database.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const TSC = join(ROOT, 'node_modules/.bin/tsc')
const exec = promisify(execFile)

/** Runs a command, failing with its output (not just its exit code). */
async function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  try {
    const { stdout } = await exec(command, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 })
    return stdout
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string }
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}${stderr ?? ''}`)
  }
}

/** The version installed here, so that the consumer's install is served from the npm cache. */
async function installed(name: string): Promise<string> {
  const manifest = JSON.parse(await readFile(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }
  return `${name}@${manifest.version}`
}

const QUICK_START = `import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { createQueryCache } from 'kysely-memcache'
import { startMonitor } from 'kysely-memcache/monitor'
METRICS_IMPORT
interface DB { item: { id: number; name: string } }

async function main(): Promise<void> {
  METRICS_REGISTRY
  // Possibly undefined, as configuration often is (the consumer has exactOptionalPropertyTypes on).
  const servers = process.env['MEMCACHED_SERVERS']?.split(',')
  const cache = createQueryCache({ servers, namespace: 'consumer'METRICS_OPTION })
  // One connection, so that the temporary table is there for every query.
  const pool = new pg.Pool({ connectionString: process.env['DATABASE_URL'], max: 1 })
  const db = new Kysely<DB>({ dialect: cache.wrapDialect(new PostgresDialect({ pool })) })
  await sql\`create temporary table item (id int primary key, name text not null)\`.execute(db)
  await db.insertInto('item').values({ id: 1, name: 'ada' }).execute()
  const read = () => db.selectFrom('item').select(['id', 'name']).where('id', '=', 1).cached({ ttl: 30 }).executeTakeFirst()
  await read()
  const row: { id: number; name: string } | undefined = await read()
  const { hits, misses } = cache.stats()
  console.log(JSON.stringify({ row, hits, misses, monitor: typeof startMonitor, metrics: METRICS_TEXT }))
  await db.destroy()
  await cache.close()
}
void main()
`

function quickStart(metrics: boolean): string {
  const parts: Record<string, string> = metrics
    ? {
        METRICS_IMPORT: "import { Registry } from 'prom-client'\n",
        METRICS_REGISTRY: 'const registry = new Registry()',
        METRICS_OPTION: ', metrics: { registry }',
        METRICS_TEXT: "(await registry.metrics()).split('\\n').filter((line) => line.startsWith('kysely_memcache_hits_total'))",
      }
    : { METRICS_IMPORT: '', METRICS_REGISTRY: '', METRICS_OPTION: '', METRICS_TEXT: 'null' }
  return QUICK_START.replace(/METRICS_[A-Z]+/g, (name) => parts[name] ?? name)
}

const TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    strict: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: false,
    types: ['node'],
    outDir: 'out',
    // The second check (with prom-client) reuses the first's results for the unchanged declarations.
    incremental: true,
  },
}

let work: string
let tarball: string

beforeAll(async () => {
  await run('npm', ['run', 'build'], ROOT)
  work = await mkdtemp(join(tmpdir(), 'kysely-memcache-consumer-'))
  const packed = JSON.parse(await run('npm', ['pack', '--json', '--pack-destination', work], ROOT)) as Array<{ filename: string }>
  tarball = join(work, packed[0]!.filename)
}, 180_000)

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

describe('the packed package', () => {
  it.concurrent.each(['module', 'commonjs'])(
    'type-checks and runs a quick start in a %s project, with and without prom-client',
    async (type) => {
      const project = join(work, type)
      await mkdir(project)
      await writeFile(join(project, 'package.json'), JSON.stringify({ name: `consumer-${type}`, private: true, type }))
      await writeFile(join(project, 'tsconfig.json'), JSON.stringify({ ...TSCONFIG, files: ['main.ts'] }))
      const npmInstall = ['install', '--prefer-offline', '--no-audit', '--no-fund']
      const peers = await Promise.all(['kysely', 'pg', '@types/pg', '@types/node'].map(installed))
      await run('npm', [...npmInstall, tarball, ...peers], project)
      /** Type-checks and compiles the quick start, then runs it and returns what it printed. */
      const check = async (metrics: boolean): Promise<unknown> => {
        await writeFile(join(project, 'main.ts'), quickStart(metrics))
        await run(TSC, ['-p', '.'], project)
        return JSON.parse(await run('node', ['out/main.js'], project, { DATABASE_URL }))
      }
      const twice = { row: { id: 1, name: 'ada' }, hits: 1, misses: 1, monitor: 'function' }

      expect(await check(false)).toEqual({ ...twice, metrics: null })
      await run('npm', [...npmInstall, await installed('prom-client')], project)
      expect(await check(true)).toEqual({ ...twice, metrics: ['kysely_memcache_hits_total{namespace="consumer"} 1'] })
    },
    // Mostly tsc over kysely's declarations (skipLibCheck: false), on a shared machine.
    360_000,
  )

  it('does not load the monitor or the progress bar from the main entry', async () => {
    const dist = join(ROOT, 'dist')
    const seen = new Set<string>()
    const bare = new Set<string>()
    const visit = async (file: string): Promise<void> => {
      if (seen.has(file)) return
      seen.add(file)
      const source = await readFile(file, 'utf8')
      for (const [, specifier] of source.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
        if (specifier!.startsWith('.')) await visit(resolve(dirname(file), specifier!))
        else bare.add(specifier!)
      }
    }
    await visit(join(dist, 'index.js'))
    const loaded = [...seen].map((file) => file.slice(dist.length + 1))
    expect(loaded).toContain('cache/create-query-cache.js')
    expect(loaded.filter((file) => file.startsWith('monitor') || file.startsWith('cli/'))).toEqual([])
    expect([...bare].filter((name) => name === 'cli-progress' || name === 'prom-client')).toEqual([])
  })
})
