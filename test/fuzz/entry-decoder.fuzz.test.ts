/**
 * Property-based fuzzing of what the cache reads back from memcached as entries:
 * the entry framing (Codec.decodeEntry), the row decoding (RowEncoding, msgpackr with
 * the row encoding's extensions), and the read path around them. A few hundred runs
 * per property here; `npm run fuzz` runs the same properties (properties.ts) many more
 * times.
 */
import { afterAll, describe, it } from 'vitest'
import { properties } from './properties.js'
import { closeReadPathFixture } from './read-path.js'
import { runProperty } from './run-property.js'

afterAll(() => closeReadPathFixture())

describe('fuzz: cache entries from a hostile tier', () => {
  for (const property of properties.filter((candidate) => candidate.family === 'entry')) {
    it(property.name, async () => {
      const run = await runProperty(property, property.quickRuns)
      if (run.failure !== undefined) throw new Error(run.failure)
    })
  }
})
