/**
 * Property-based fuzzing of the documents processes share through memcached (tier
 * state, mode override, farm statistics and their query parameters) and of warm-up
 * manifests. A few hundred runs per property here; `npm run fuzz` runs the same
 * properties (properties.ts) many more times.
 */
import { describe, it } from 'vitest'
import { properties } from './properties.js'
import { runProperty } from './run-property.js'

describe('fuzz: shared documents and manifests from a hostile tier', () => {
  for (const property of properties.filter((candidate) => candidate.family === 'documents')) {
    it(property.name, async () => {
      const run = await runProperty(property, property.quickRuns)
      if (run.failure !== undefined) throw new Error(run.failure)
    })
  }
})
