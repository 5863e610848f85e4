import { describe, expect, it } from 'vitest'
import { SingleFlight } from '../src/single-flight.js'

/** A flight whose start and end the test controls. */
function controlled() {
  let start!: () => void
  let finish!: (value: string) => void
  let runs = 0
  const work = (started: () => void) => {
    runs++
    start = started
    return new Promise<string>((resolve) => {
      finish = resolve
    })
  }
  return { work, start: () => start(), finish: (value: string) => finish(value), runs: () => runs }
}

describe('SingleFlight', () => {
  it('shares one execution among callers that read the same version', async () => {
    const flights = new SingleFlight<string>()
    const c = controlled()
    let joined = 0
    const first = flights.run('k', 'v1', c.work)
    c.start()
    const second = flights.run('k', 'v1', c.work, () => joined++)
    c.finish('rows')
    expect(await Promise.all([first, second])).toEqual(['rows', 'rows'])
    expect(c.runs()).toBe(1)
    expect(joined).toBe(1)
  })

  it('lets a caller with another version join until the query starts, and not after', async () => {
    const flights = new SingleFlight<string>()
    const c = controlled()
    const first = flights.run('k', 'v1', c.work)
    const early = flights.run('k', 'v2', c.work)
    c.start()
    const late = controlled()
    const afterStart = flights.run('k', 'v3', late.work)
    c.finish('old')
    late.finish('new')
    expect(await Promise.all([first, early, afterStart])).toEqual(['old', 'old', 'new'])
    expect(c.runs()).toBe(1)
    expect(late.runs()).toBe(1)
  })

  it('forgets a flight once it settles, rejected or not', async () => {
    const flights = new SingleFlight<string>()
    await expect(flights.run('k', 'v', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(await flights.run('k', 'v', async () => 'again')).toBe('again')
  })
})
