import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Failure drills kill and pause real processes; a flaky run must show, not hide behind retries.
    retry: 0,
  },
})
