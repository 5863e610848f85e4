import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { Budget } from '../../src/cache/budget.js'

describe('Budget', () => {
  it('gives the work its result when it settles in time', async () => {
    expect(await new Budget(1000).bound(Promise.resolve('done'), 'late')).toBe('done')
  })

  it('gives up at what is left, and charges each step what it waited', async () => {
    const budget = new Budget(1000)
    expect(await budget.bound(sleep(600).then(() => 'first'), 'late')).toBe('first')
    // At most 400 ms left: a step of 600 ms no longer fits.
    expect(await budget.bound(sleep(600).then(() => 'second'), 'late')).toBe('late')
    // Spent: nothing is waited for any more.
    expect(await budget.bound(sleep(50).then(() => 'third'), 'late')).toBe('late')
  })
})
