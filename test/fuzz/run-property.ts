/**
 * Runs one fuzz property: the vitest files with its quick run count, main.ts with
 * many more. Both report a failure with its seed and path, so `npm run fuzz --
 * --seed S` (or fast-check's `path`) replays it.
 */
import fc from 'fast-check'
import type { FuzzProperty } from './properties.js'

export interface PropertyRun {
  readonly name: string
  readonly runs: number
  readonly ms: number
  readonly failure?: string
}

/** Runs `property` `runs` times (from `seed`, if given); never throws: a failure is reported. */
export async function runProperty(property: FuzzProperty, runs: number, seed?: number): Promise<PropertyRun> {
  const started = performance.now()
  const details = await fc.check(property.property(), {
    numRuns: runs,
    ...(seed === undefined ? {} : { seed }),
    // Shrinking huge inputs can take long: enough to get a readable counterexample.
    endOnFailure: false,
    markInterruptAsFailure: true,
  })
  const ms = performance.now() - started
  const failure = details.failed ? `${fc.defaultReportMessage(details)}\n${describeError(details.errorInstance)}` : undefined
  return { name: property.name, runs: details.numRuns, ms, ...(failure === undefined ? {} : { failure }) }
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return `Got ${String(error)}`
  const lines = [`Got ${error.stack ?? error.message}`]
  for (let cause = error.cause; cause !== undefined; cause = cause instanceof Error ? cause.cause : undefined) {
    lines.push(`Caused by ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`)
  }
  return lines.join('\n')
}
