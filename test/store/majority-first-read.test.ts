/**
 * The read plan of majority-first-read.ts, with scripted homes: which homes are
 * asked and when is the behaviour under test, and real nodes cannot be made to
 * answer in a chosen order. The memcached store's own tests run it on real nodes.
 */
import { describe, expect, it } from 'vitest'
import { HomeNotAsked, readMajorityFirst } from '../../src/store/memcached/majority-first-read.js'

interface Home {
  readonly id: string
  readonly up: boolean
  /** `undefined`: absent; `'hang'`: never answers; `'fail'`: rejects. */
  readonly holds: string | undefined | 'hang' | 'fail'
}

function plan(homes: Home[], rank: (home: Home) => number = (home) => homes.indexOf(home), hedgeAfterMs = 1000) {
  const asked: string[] = []
  const answers = readMajorityFirst(
    homes,
    (home) => {
      asked.push(home.id)
      if (home.holds === 'hang') return new Promise<never>(() => {})
      if (home.holds === 'fail') return Promise.reject(new Error(`${home.id} failed`))
      return Promise.resolve(home.holds === undefined ? undefined : Buffer.from(home.holds))
    },
    rank,
    hedgeAfterMs,
  )
  return { asked, answers }
}

const settled = async (answers: Array<Promise<Buffer | undefined>>, count: number) =>
  (await Promise.allSettled(answers.slice(0, count))).map((o) => (o.status === 'fulfilled' ? o.value?.toString() : o.reason))

describe('reading a majority of homes first', () => {
  it('asks only a majority when they agree, and the others settle as not asked', async () => {
    const { asked, answers } = plan([
      { id: 'a', up: true, holds: 'g1' },
      { id: 'b', up: true, holds: 'g1' },
      { id: 'c', up: true, holds: 'g1' },
    ])
    expect((await settled(answers, 3)).map(String)).toEqual(['g1', 'g1', 'HomeNotAsked: not read: the homes read first agreed'])
    await expect(answers[2]).rejects.toBeInstanceOf(HomeNotAsked)
    expect(asked).toEqual(['a', 'b'])
  })

  it('prefers homes on the ring, then its own rank', async () => {
    const { asked } = plan(
      [
        { id: 'a', up: false, holds: 'g1' },
        { id: 'b', up: true, holds: 'g1' },
        { id: 'c', up: true, holds: 'g1' },
      ],
      (home) => ({ a: 0, b: 2, c: 1 })[home.id]!,
    )
    expect(asked).toEqual(['c', 'b'])
  })

  it.each([
    ['disagree', [{ holds: 'g1' }, { holds: 'g2' }]],
    ['hold nothing', [{ holds: undefined }, { holds: undefined }]],
    ['fail', [{ holds: 'g1' }, { holds: 'fail' }]],
  ] as const)('asks the rest at once when the first %s', async (_, first) => {
    const homes: Home[] = [...first.map((home, i) => ({ id: `h${i}`, up: true, ...home })), { id: 'last', up: true, holds: 'g1' }]
    const { asked, answers } = plan(homes)
    const started = performance.now()
    expect(await answers[2]).toEqual(Buffer.from('g1'))
    expect(performance.now() - started).toBeLessThan(500) // long before the 1 s hedge
    expect(asked).toContain('last')
  })

  it('asks the rest after the hedge delay when one of the first hangs', async () => {
    const { asked, answers } = plan(
      [
        { id: 'a', up: true, holds: 'g1' },
        { id: 'b', up: true, holds: 'hang' },
        { id: 'c', up: true, holds: 'g1' },
      ],
      undefined,
      20,
    )
    const started = performance.now()
    expect(await answers[2]).toEqual(Buffer.from('g1'))
    expect(performance.now() - started).toBeGreaterThanOrEqual(15)
    expect(asked).toEqual(['a', 'b', 'c'])
  })
})
