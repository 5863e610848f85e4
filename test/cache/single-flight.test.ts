import { describe, expect, it } from 'vitest'
import { SingleFlight } from '../../src/cache/single-flight.js'

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
  it('shares one execution among callers that read the same proven version', async () => {
    const flights = new SingleFlight<string>()
    const c = controlled()
    const first = flights.run('k', flights.ticket(), 'v1', c.work)
    c.start()
    const second = flights.run('k', flights.ticket(), 'v1', c.work)
    c.finish('rows')
    expect(await Promise.all([first.promise, second.promise])).toEqual(['rows', 'rows'])
    expect(c.runs()).toBe(1)
    expect([first.joined, second.joined]).toEqual([false, true])
  })

  it('lets a caller join a query that began after its read began, and not one that began before', async () => {
    const flights = new SingleFlight<string>()
    const c = controlled()
    const early = flights.ticket()
    const first = flights.run('k', flights.ticket(), 'v1', c.work)
    c.start()
    // Its read began before the query: the query sees every write it could know of.
    const joined = flights.run('k', early, 'v2', c.work)
    const late = controlled()
    const afterStart = flights.run('k', flights.ticket(), 'v3', late.work)
    c.finish('old')
    late.finish('new')
    expect(await Promise.all([first.promise, joined.promise, afterStart.promise])).toEqual(['old', 'old', 'new'])
    expect([joined.joined, afterStart.joined]).toEqual([true, false])
    expect(c.runs()).toBe(1)
    expect(late.runs()).toBe(1)
  })

  it('never joins a started query on an unproven version, even an equally unproven one', async () => {
    const flights = new SingleFlight<string>()
    const c = controlled()
    const first = flights.run('k', flights.ticket(), undefined, c.work)
    c.start()
    const late = controlled()
    const second = flights.run('k', flights.ticket(), undefined, late.work)
    c.finish('old')
    late.finish('new')
    expect(await Promise.all([first.promise, second.promise])).toEqual(['old', 'new'])
    expect(second.joined).toBe(false)
  })

  it('forgets a flight once it settles, rejected or not', async () => {
    const flights = new SingleFlight<string>()
    await expect(flights.run('k', flights.ticket(), 'v', async () => Promise.reject(new Error('boom'))).promise).rejects.toThrow('boom')
    expect(await flights.run('k', flights.ticket(), 'v', async () => 'again').promise).toBe('again')
  })
})

describe('SingleFlight with a retention window', () => {
  it('still gives a settled result to a caller whose read began before its query, and not to a later one', async () => {
    const flights = new SingleFlight<string>(1000)
    const early = flights.ticket()
    expect(await flights.run('k', flights.ticket(), undefined, async (started) => (started(), 'first')).promise).toBe('first')
    expect(await flights.run('k', early, undefined, async () => 'second').promise).toBe('first')
    expect(await flights.run('k', flights.ticket(), undefined, async () => 'third').promise).toBe('third')
  })
})

describe('a settled flight', () => {
  it('is not shared by version any more: that would make it a cache', async () => {
    const flights = new SingleFlight<string>(1000)
    expect(await flights.run('k', flights.ticket(), 'v', async (started) => (started('v'), 'first')).promise).toBe('first')
    expect(await flights.run('k', flights.ticket(), 'v', async () => 'second').promise).toBe('second')
  })
})
