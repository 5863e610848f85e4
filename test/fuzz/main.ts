/**
 * npm run fuzz: the fuzz properties of test/fuzz (properties.ts), run long.
 *
 *   npm run fuzz                          200 000 runs per property (fewer for the costly ones: see longShare)
 *   npm run fuzz -- --runs 20000          another count
 *   npm run fuzz -- --seed 1234567        replay a seed a failure reported
 *   npm run fuzz -- --only manifest       the properties whose name contains "manifest"
 *
 * Prints each property's runs, time and failure (with its seed and counterexample);
 * exits 1 when any property failed.
 */
import { parseArgs } from 'node:util'
import { properties } from './properties.js'
import { closeReadPathFixture } from './read-path.js'
import { runProperty, type PropertyRun } from './run-property.js'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '200000' },
    seed: { type: 'string' },
    only: { type: 'string' },
  },
})

function wholeNumber(text: string | undefined, flag: string, least: number): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < least) {
    console.error(`--${flag} must be an integer >= ${least}, got ${text}`)
    process.exit(2)
  }
  return value
}

const runs = wholeNumber(values.runs, 'runs', 1)!
const seed = wholeNumber(values.seed, 'seed', -(2 ** 31))
const chosen = properties.filter((property) => values.only === undefined || property.name.includes(values.only))
if (chosen.length === 0) {
  console.error(`no property name contains ${JSON.stringify(values.only)}`)
  process.exit(2)
}

console.log(`fuzz: ${chosen.length} properties, --runs ${runs}${seed === undefined ? '' : `, --seed ${seed}`}`)
const results: PropertyRun[] = []
const started = performance.now()
for (const property of chosen) {
  const count = Math.max(1, Math.round(runs * property.longShare))
  const result = await runProperty(property, count, seed)
  results.push(result)
  const status = result.failure === undefined ? 'ok    ' : 'FAILED'
  console.log(`${status} ${String(result.runs).padStart(7)} runs ${(result.ms / 1000).toFixed(1).padStart(7)} s  [${property.family}] ${property.name}`)
  if (result.failure !== undefined) console.log(result.failure.replace(/^/gm, '         '))
}
await closeReadPathFixture()

const failed = results.filter((result) => result.failure !== undefined)
const total = results.reduce((sum, result) => sum + result.runs, 0)
console.log(`\n${total} runs in ${((performance.now() - started) / 1000).toFixed(1)} s: ${failed.length === 0 ? 'no failure' : `${failed.length} properties FAILED`}`)
process.exit(failed.length === 0 ? 0 : 1)
