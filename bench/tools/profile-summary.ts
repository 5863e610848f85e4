/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive time per
 * function and self time per file/package, for finding hot spots in the hit path.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/hit.ts --only D --rounds 10
 *   npx tsx bench/tools/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top 40] [--match src/] [--ops N]
 *
 * --ops N adds µs per operation (time / N) for a profile of N operations.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '35' }, match: { type: 'string' }, ops: { type: 'string' } },
})
const top = Number(values.top)

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length)
  const main = url.indexOf('/work/main/')
  if (main >= 0) return url.slice(main + '/work/main/'.length)
  return url.replace(/^file:\/\//, '')
}

function fileGroup(url: string): string {
  if (url === '') return '(native / vm)'
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`
  }
  if (url.startsWith('node:')) return url
  return shortUrl(url)
}

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const selfUs = new Map<number, number>()
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const totalUs = profile.endTime - profile.startTime
  const key = (frame: CallFrame): string => `${frame.functionName || '(anonymous)'}  ${shortUrl(frame.url)}:${frame.lineNumber + 1}`

  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const files = new Map<string, number>()
  let idle = 0
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!
    const k = key(node.callFrame)
    self.set(k, (self.get(k) ?? 0) + us)
    if (node.callFrame.functionName === '(idle)') idle += us
    const group = ['(garbage collector)', '(idle)', '(program)'].includes(node.callFrame.functionName)
      ? node.callFrame.functionName
      : fileGroup(node.callFrame.url)
    files.set(group, (files.get(group) ?? 0) + us)
    // Each function on the stack once, however often it recurs.
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frameKey = key(byId.get(at)!.callFrame)
      if (seen.has(frameKey)) continue
      seen.add(frameKey)
      inclusive.set(frameKey, (inclusive.get(frameKey) ?? 0) + us)
    }
  }
  const busy = totalUs - idle
  const ops = values.ops === undefined ? undefined : Number(values.ops)
  const pct = (us: number): string =>
    `${((100 * us) / busy).toFixed(1).padStart(5)} %${ops === undefined ? '' : ` ${(us / ops).toFixed(1).padStart(7)} µs/op`}`
  const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(7)} ms`
  const filter = (k: string): boolean => values.match === undefined || k.includes(values.match)
  console.log(`\n${file}\n  wall ${(totalUs / 1e6).toFixed(1)} s, busy (not idle) ${(busy / 1e6).toFixed(1)} s; percentages of busy time\n`)
  console.log('self time by file / package:')
  for (const [k, us] of [...files].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${ms(us)} ${pct(us)}  ${k}`)
  console.log('\nself time by function:')
  for (const [k, us] of [...self].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${ms(us)} ${pct(us)}  ${k}`)
  console.log('\ninclusive time by function:')
  for (const [k, us] of [...inclusive].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${ms(us)} ${pct(us)}  ${k}`)
}
