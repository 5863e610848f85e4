/** A home as this reader sees it. */
export interface ReadableHome {
  readonly up: boolean
}

/** A home read not sent because the ones sent first already agreed. */
export class HomeNotAsked extends Error {
  override readonly name = 'HomeNotAsked'
  constructor() {
    super('not read: the homes read first agreed')
  }
}

// One instance for every home not asked: an error's stack costs microseconds, and a hit has two.
const NOT_ASKED = new HomeNotAsked()

/**
 * Reads started in one synchronous stretch (the generations of one hit) share one
 * hedge timer: a timer per read would cost more than the reads' own bookkeeping.
 */
let hedgeBatch: Array<() => void> | undefined

function onHedge(hedgeAfterMs: number, hedge: () => void): void {
  if (hedgeBatch === undefined) {
    const batch: Array<() => void> = []
    hedgeBatch = batch
    queueMicrotask(() => {
      hedgeBatch = undefined
    })
    setTimeout(() => {
      for (const fire of batch) fire()
    }, hedgeAfterMs).unref()
  }
  hedgeBatch.push(hedge)
}

/**
 * One answer per home, reading only as many homes as a majority first: when they
 * all hold the same value, that value is what any majority read could find (a
 * majority of them is a majority of all), and the other homes are never asked.
 * The rest are read as soon as one of the first fails, they disagree or hold
 * nothing, or one has not answered within `hedgeAfterMs` (a hung node not yet
 * taken out must not cost every read a timeout). Homes not asked settle with
 * {@link HomeNotAsked}, which counts as no answer.
 *
 * `rank` orders the homes: those this process has on its ring first, then by a
 * preference of its own, so the reads of one process go to the same few nodes
 * (fewer round trips per hit) while different processes spread over all of them.
 */
export function readMajorityFirst<T extends ReadableHome>(
  homes: readonly T[],
  read: (home: T) => Promise<Buffer | undefined>,
  rank: (home: T) => number,
  hedgeAfterMs: number,
): Array<Promise<Buffer | undefined>> {
  const needed = Math.floor(homes.length / 2) + 1
  const order = homes.map((home, index) => ({ home, index })).sort((a, b) => score(a.home) - score(b.home))
  const answers = new Array<Promise<Buffer | undefined>>(homes.length)
  const later: Array<(start: boolean) => void> = []
  for (const [position, { home, index }] of order.entries()) {
    if (position < needed) {
      answers[index] = read(home)
    } else {
      const answer = new Promise<Buffer | undefined>((resolve, reject) => {
        later.push((start) => (start ? read(home).then(resolve, reject) : reject(NOT_ASKED)))
      })
      // A caller done once a majority agreed need not wait for it: never an unhandled rejection.
      answer.catch(() => {})
      answers[index] = answer
    }
  }
  if (later.length === 0) return answers

  let decided = false
  const decide = (start: boolean): void => {
    if (decided) return
    decided = true
    for (const go of later) go(start)
  }
  onHedge(hedgeAfterMs, () => decide(true))
  const first = order.slice(0, needed).map(({ index }) => answers[index]!)
  Promise.all(first).then(
    (values) => decide(!allHoldSame(values)),
    () => decide(true),
  )
  return answers

  function score(home: T): number {
    return (home.up ? 0 : 1_000_000) + rank(home)
  }
}

function allHoldSame(values: ReadonlyArray<Buffer | undefined>): boolean {
  const [first] = values
  if (first === undefined) return false
  return values.every((value) => value !== undefined && value.equals(first))
}
