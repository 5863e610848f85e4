/**
 * Load for the web farm: virtual users that each request a page, think, and
 * request the next, for a fixed time. Article pages follow Zipf popularity
 * (the newest article is the most read), mixed with front page, top-authors
 * and comment posts. Only sends to loopback addresses.
 *
 *   npx tsx examples/web-farm/load.ts --url http://127.0.0.1:8080 --seconds 30
 *
 * As a function: `await runLoad({ url, seconds: 5 })` resolves with what the
 * command prints (requests/s, latency percentiles per page, errors). Its parts,
 * `requestPlanner()` and `virtualUser()`, are what `npm run bench:drill` runs
 * as its users (bench/drill-worker.ts), timing each answer its own way.
 */
import { realpathSync } from 'node:fs'
import { Agent, request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

export const LOAD_PAGES = ['front', 'topAuthors', 'article', 'comment'] as const
export type LoadPage = (typeof LOAD_PAGES)[number]
type ReadPage = Exclude<LoadPage, 'comment'>
const READ_PAGES: readonly ReadPage[] = ['front', 'topAuthors', 'article']

export interface LoadOptions {
  /** The farm, e.g. `http://127.0.0.1:8080`; loopback only. */
  url: string
  /** How long the users keep requesting. Default 10. */
  seconds?: number
  /** Virtual users, each with one request in flight at most. Default 20. */
  vus?: number
  /** Mean pause between a user's requests, ms (each pause 0.5–1.5 × this). Default 20. */
  thinkMs?: number
  /** Article ids are 1..articles, as seeded. Default 5000. */
  articles?: number
  /** Zipf exponent of article popularity. Default 1. */
  zipf?: number
  /** Weights of the pages read (normalised). Default front 0.15, topAuthors 0.05, article 0.8. */
  readMix?: Partial<Record<ReadPage, number>>
  /** Fraction of requests that post a comment, 0 to 1. Default 0.002. */
  writeShare?: number
  /** Seed of the users' random choices. Default 1. */
  seed?: number
  /** A request without an answer by then is an error. Default 5000 ms. */
  timeoutMs?: number
}

export interface PageResult {
  requests: number
  errors: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  maxMs: number
}

export interface LoadReport {
  /** Measured duration, s. */
  seconds: number
  vus: number
  requests: number
  errors: number
  requestsPerSecond: number
  pages: Record<LoadPage, PageResult>
  all: PageResult
  /** The first few errors, as `page: what`. */
  errorSamples: string[]
}

export interface HttpReply {
  status: number
  /** The parsed JSON body. */
  body: unknown
  /** The pid of the worker that answered (app.ts sets `x-served-by`). */
  servedBy: number
  /** What the cache did for the page, from app.ts's `x-cache` header (`hit`, `stale`, `miss`, `none`). */
  cache: string | undefined
}

const DEFAULT_READ_MIX: Record<ReadPage, number> = { front: 0.15, topAuthors: 0.05, article: 0.8 }
const DEFAULT_WRITE_SHARE = 0.002

/** `url` parsed, or an error when it is not plain http to a loopback address. */
export function loopbackUrl(url: string): URL {
  const parsed = new URL(url)
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1')
  if (parsed.protocol !== 'http:' || !(host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host))) {
    throw new RangeError(`the load generator only sends to http://127.0.0.0/8, [::1] or localhost, not ${url}`)
  }
  return parsed
}

/**
 * One request to the farm; rejects on a network error, a timeout or a body
 * that is not JSON. `agent: false` opens a fresh connection, which the cluster
 * hands to the next worker in turn.
 */
export function request(
  url: URL | string,
  options: { method?: 'GET' | 'POST'; json?: unknown; agent?: Agent | false; timeoutMs?: number } = {},
): Promise<HttpReply> {
  const body = options.json === undefined ? undefined : JSON.stringify(options.json)
  const timeoutMs = options.timeoutMs ?? 5000
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      url,
      {
        method: options.method ?? 'GET',
        agent: options.agent ?? false,
        headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (incoming) => {
        let text = ''
        incoming.setEncoding('utf8')
        incoming.on('data', (chunk: string) => (text += chunk))
        incoming.on('error', reject)
        incoming.on('end', () => {
          try {
            const cache = incoming.headers['x-cache']
            resolve({
              status: incoming.statusCode ?? 0,
              body: JSON.parse(text),
              servedBy: Number(incoming.headers['x-served-by']),
              cache: typeof cache === 'string' ? cache : undefined,
            })
          } catch {
            reject(new Error(`HTTP ${incoming.statusCode}, not JSON: ${text.slice(0, 80)}`))
          }
        })
      },
    )
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

/**
 * The users' connection pool: kept alive, at most `maxSockets` connections. Node 20's
 * agent closes an idle connection before the server's announced `Keep-Alive: timeout`
 * only when it has a timeout of its own; without one, a connection idle for exactly the
 * server's 5 s is sometimes reused as the server closes it ("socket hang up").
 */
export function keepAliveAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets, timeout: 60_000 })
}

/** One request of a virtual user. */
export interface PlannedRequest {
  page: LoadPage
  method: 'GET' | 'POST'
  path: string
  json?: unknown
}

/** What shapes the users' requests: the page mix and the articles' popularity. */
export type PlanOptions = Pick<LoadOptions, 'articles' | 'zipf' | 'readMix' | 'writeShare'>

/**
 * The next request of a user, from its random numbers (two per request): a page by the
 * mix, and an article by Zipf popularity, the newest (id = articles) the most read.
 */
export function requestPlanner(options: PlanOptions = {}): (random: () => number, user: number, n: number) => PlannedRequest {
  const articles = options.articles ?? 5000
  const choosePage = chooser({ ...DEFAULT_READ_MIX, ...options.readMix }, options.writeShare ?? DEFAULT_WRITE_SHARE)
  const articleRank = zipfRanks(articles, options.zipf ?? 1)
  return (random, user, n) => {
    const page = choosePage(random())
    const article = articles - articleRank(random())
    return page === 'front' ? { page, method: 'GET', path: '/' }
      : page === 'topAuthors' ? { page, method: 'GET', path: '/authors/top' }
      : page === 'article' ? { page, method: 'GET', path: `/articles/${article}` }
      : { page, method: 'POST', path: `/articles/${article}/comments`, json: { body: `load comment ${user}.${n}` } }
  }
}

/** One answered (or failed) request of a user. */
export interface UserAnswer {
  request: PlannedRequest
  /** From sending to the whole body read, ms. */
  ms: number
  /** Set when the request failed: network, timeout, not JSON, or an HTTP status of 400 or more. */
  error?: Error
  /** The reply, when one came (with an error status too). */
  reply?: HttpReply
}

export interface UserOptions {
  /** The farm's base URL (checked by {@link loopbackUrl}). */
  base: URL
  agent: Agent | false
  /** The user's number: its random sequence (with `seed`) and its comments' text. */
  user: number
  seed: number
  /** Mean pause between requests, ms; each is 0.5–1.5 × this. */
  thinkMs: number
  timeoutMs: number
  plan: ReturnType<typeof requestPlanner>
  /** `performance.now()` after which the user sends nothing more. */
  until: number
  /** Pause before the first request, as a fraction of one mean think time drawn from the user's own sequence. Default: none. */
  spreadStart?: boolean
  onAnswer(answer: UserAnswer): void
}

/** A user: request, wait for the answer, think, until `until`. Resolves after its last answer. */
export async function virtualUser(options: UserOptions): Promise<void> {
  const { base, agent, thinkMs, timeoutMs, plan, until } = options
  const random = seededRandom(options.seed * 7919 + options.user)
  if (options.spreadStart === true) await sleep(Math.min(random() * thinkMs, Math.max(0, until - performance.now())))
  for (let n = 0; performance.now() < until; n++) {
    const planned = plan(random, options.user, n)
    const sent = performance.now()
    let reply: HttpReply | undefined
    let error: Error | undefined
    try {
      reply = await request(new URL(planned.path, base), { method: planned.method, json: planned.json, agent, timeoutMs })
      if (reply.status >= 400) throw new Error(`HTTP ${reply.status} ${JSON.stringify(reply.body).slice(0, 120)}`)
    } catch (caught) {
      error = caught as Error
    }
    options.onAnswer({ request: planned, ms: performance.now() - sent, ...(error === undefined ? {} : { error }), ...(reply === undefined ? {} : { reply }) })
    const pause = Math.min(thinkMs * (0.5 + random()), until - performance.now())
    if (pause > 0) await sleep(pause)
  }
}

/** Runs the load for `seconds` and resolves once every user's last request has answered. */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const base = loopbackUrl(options.url)
  const seconds = options.seconds ?? 10
  const vus = options.vus ?? 20
  const plan = requestPlanner(options)
  const agent = keepAliveAgent(vus)
  const latencies = Object.fromEntries(LOAD_PAGES.map((page) => [page, [] as number[]])) as Record<LoadPage, number[]>
  const errors = Object.fromEntries(LOAD_PAGES.map((page) => [page, 0])) as Record<LoadPage, number>
  const errorSamples: string[] = []

  const start = performance.now()
  const onAnswer = ({ request: { page, path }, ms, error }: UserAnswer) => {
    if (error === undefined) {
      latencies[page].push(ms)
      return
    }
    errors[page]++
    if (errorSamples.length < 10) errorSamples.push(`${page} ${path}: ${error.message}`)
  }
  const user = (index: number) =>
    virtualUser({
      base,
      agent,
      user: index,
      seed: options.seed ?? 1,
      thinkMs: options.thinkMs ?? 20,
      timeoutMs: options.timeoutMs ?? 5000,
      plan,
      until: start + seconds * 1000,
      onAnswer,
    })
  await Promise.all(Array.from({ length: vus }, (_, index) => user(index)))
  const elapsed = (performance.now() - start) / 1000
  agent.destroy()

  const pages = Object.fromEntries(LOAD_PAGES.map((page) => [page, summarize(latencies[page], errors[page])])) as Record<LoadPage, PageResult>
  const all = summarize(LOAD_PAGES.flatMap((page) => latencies[page]), LOAD_PAGES.reduce((sum, page) => sum + errors[page], 0))
  return {
    seconds: round(elapsed, 2),
    vus,
    requests: all.requests,
    errors: all.errors,
    requestsPerSecond: round(all.requests / elapsed, 1),
    pages,
    all,
    errorSamples,
  }
}

/** The report as a small table. */
export function formatReport(report: LoadReport): string {
  const header = ['page', 'requests', 'errors', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms']
  const row = (name: string, r: PageResult) => [name, r.requests, r.errors, r.p50Ms, r.p95Ms, r.p99Ms, r.maxMs].map(String)
  const rows = [header, ...LOAD_PAGES.map((page) => row(page, report.pages[page])), row('all', report.all)]
  const widths = header.map((_, column) => Math.max(...rows.map((cells) => cells[column]!.length)))
  const lines = rows.map((cells) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '))
  return [
    `${report.seconds} s, ${report.vus} virtual users: ${report.requests} requests (${report.requestsPerSecond}/s), ${report.errors} errors`,
    ...lines,
    ...report.errorSamples.map((sample) => `error: ${sample}`),
  ].join('\n')
}

/** Nearest-rank percentiles of the answered requests; errors are counted, not timed. */
function summarize(latencies: number[], errors: number): PageResult {
  const sorted = Float64Array.from(latencies).sort()
  const at = (p: number) => (sorted.length === 0 ? 0 : round(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!, 1))
  return { requests: sorted.length + errors, errors, p50Ms: at(50), p95Ms: at(95), p99Ms: at(99), maxMs: at(100) }
}

/** A page for a uniform number in [0, 1): a comment post with `writeShare`, else a read by the mix's weights. */
function chooser(readMix: Record<ReadPage, number>, writeShare: number): (u: number) => LoadPage {
  const total = READ_PAGES.reduce((sum, page) => sum + Math.max(0, readMix[page]), 0)
  if (!(total > 0)) throw new RangeError('the read mix must give some page a positive weight')
  if (!(writeShare >= 0 && writeShare <= 1)) throw new RangeError(`writeShare must be from 0 to 1, got ${writeShare}`)
  return (u) => {
    if (u < writeShare) return 'comment'
    let left = ((u - writeShare) / (1 - writeShare)) * total
    for (const page of READ_PAGES) {
      left -= Math.max(0, readMix[page])
      if (left < 0) return page
    }
    return 'article'
  }
}

/** A rank 0..n-1 for a uniform number in [0, 1): rank k with weight 1 / (k + 1)^s. */
function zipfRanks(n: number, s: number): (u: number) => number {
  const cumulative: number[] = []
  let total = 0
  for (let k = 1; k <= n; k++) cumulative.push((total += k ** -s))
  return (u) => {
    const target = u * total
    let [low, high] = [0, n - 1]
    while (low < high) {
      const middle = (low + high) >> 1
      if (cumulative[middle]! <= target) low = middle + 1
      else high = middle
    }
    return low
  }
}

/** xorshift32: a small PRNG, so a run with the same seed makes the same choices. */
export function seededRandom(seed: number): () => number {
  // murmur3's finaliser first: nearby seeds start far apart, distinct seeds stay distinct.
  let x = Math.imul(seed ^ (seed >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  x = x ^ (x >>> 16) || 1
  return () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 4294967296)
}

function round(value: number, places: number): number {
  const factor = 10 ** places
  return Math.round(value * factor) / factor
}

const HELP = `npx tsx examples/web-farm/load.ts [flags]
  --url http://127.0.0.1:8080  the farm (loopback only)
  --seconds 10        duration
  --vus 20            virtual users
  --think-ms 20       mean pause between a user's requests
  --articles 5000     article ids 1..N, as seeded
  --zipf 1            Zipf exponent of article popularity
  --write-share 0.002 fraction of requests that post a comment
  --seed 1
  --json              print the report as JSON`

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8080' },
      seconds: { type: 'string', default: '10' },
      vus: { type: 'string', default: '20' },
      'think-ms': { type: 'string', default: '20' },
      articles: { type: 'string', default: '5000' },
      zipf: { type: 'string', default: '1' },
      'write-share': { type: 'string', default: String(DEFAULT_WRITE_SHARE) },
      seed: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) return console.log(HELP)
  const number = (flag: keyof typeof values, min: number) => {
    const value = Number(values[flag])
    if (!Number.isFinite(value) || value < min) throw new RangeError(`--${flag} must be a number of at least ${min}, got ${values[flag]}`)
    return value
  }
  const report = await runLoad({
    url: values.url,
    seconds: number('seconds', 0.1),
    vus: Math.round(number('vus', 1)),
    thinkMs: number('think-ms', 0),
    articles: Math.round(number('articles', 1)),
    zipf: number('zipf', 0),
    writeShare: number('write-share', 0),
    seed: Math.round(number('seed', 0)),
  })
  console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report))
}

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error((error as Error).message)
    process.exitCode = 1
  })
}
