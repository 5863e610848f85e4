/**
 * `npm run check:history -- --duration 300 [--runs 3] [--json out.json] [--near on|off] [--near-trust-ms N] [--ttl 2] [--swr 5]`:
 * the long form of the history check. Prints the report of each run; exits 1 on
 * any violation or failed query. The near cache is on (the default with
 * memcached); `--near-trust-ms` relaxes it as documented, to show the checker
 * catching the staleness that allows. Every value is signed with the workers'
 * secret, and half of the reads go through a `cacheAll` dialect (worker.ts).
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { formatReport } from './check.js'
import { runHistory } from './run.js'

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '300' },
    runs: { type: 'string', default: '1' },
    json: { type: 'string' },
    near: { type: 'string', default: 'on' },
    ttl: { type: 'string', default: '2' },
    swr: { type: 'string', default: '5' },
    'near-trust-ms': { type: 'string', default: '0' },
  },
})
const trustMs = Number(values['near-trust-ms'])
if (values.near !== 'on' && values.near !== 'off') throw new RangeError(`--near must be on or off, got ${values.near}`)
if (!Number.isFinite(trustMs) || trustMs < 0) throw new RangeError(`--near-trust-ms must be a number of milliseconds ≥ 0, got ${values['near-trust-ms']}`)
const cacheOptions = { nearCache: values.near === 'off' ? false : { trustMs } }
const cachedOptions = { ttl: Number(values.ttl), swr: Number(values.swr) }
if (!Number.isFinite(cachedOptions.ttl) || !Number.isFinite(cachedOptions.swr)) throw new RangeError('--ttl and --swr must be numbers of seconds')
const seconds = Number(values.duration)
const runs = Number(values.runs)
if (!Number.isFinite(seconds) || seconds < 10) throw new RangeError(`--duration must be a number of seconds ≥ 10, got ${values.duration}`)
if (!Number.isSafeInteger(runs) || runs < 1) throw new RangeError(`--runs must be a positive integer, got ${values.runs}`)

let bad = 0
const reports = []
for (let run = 1; run <= runs; run++) {
  console.log(`history run ${run} of ${runs}: ${seconds} s, near cache ${JSON.stringify(cacheOptions.nearCache)}, .cached(${JSON.stringify(cachedOptions)})`)
  const { report } = await runHistory({ durationMs: seconds * 1000, cacheOptions, cachedOptions, log: (line) => console.log(`  ${line}`) })
  console.log(formatReport(report))
  reports.push(report)
  if (report.violations.length > 0 || report.failedQueries > 0) bad++
}
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(reports, null, 2))
console.log(bad === 0 ? `all ${runs} runs: 0 violations, 0 failed queries` : `${bad} of ${runs} runs had violations or failed queries`)
process.exit(bad === 0 ? 0 : 1)
