/**
 * The counters behind the space-saving algorithm: one mutable record per
 * tracked shape, and a binary min-heap on their request count in which every
 * counter knows its own index. Eviction needs the minimum (O(1) at the root);
 * a request only ever raises a count, so it sifts down, toward the leaves
 * where busy counters already sit (usually O(1), O(log K) at worst).
 *
 * @module
 */
import { scaleCounts, sumCounts } from './decayed-counts.js'
import type { DecayedCounts } from './decayed-counts.js'
import type { QueryShape } from './query-shape.js'

/**
 * One tracked shape. Its counts are in the scaled units of the statistics that
 * own it; fields are mutable and flat because `record` updates them per request.
 */
export class Counter implements DecayedCounts {
  hits = 0
  misses = 0
  executions = 0
  databaseMs = 0
  /** Position in its {@link CounterHeap}; -1 while in none. */
  index = -1
  /** Superjson text of the parameters, encoded once for all snapshots. */
  parametersText: string | undefined

  constructor(
    readonly key: string,
    readonly shape: QueryShape,
    public requests: number,
    public error: number,
    public lastSeen: number,
  ) {}

  /** Adds `counts` (already in this counter's units); `lastSeen` becomes the later one. */
  add(counts: DecayedCounts): void {
    Object.assign(this, sumCounts(this, counts))
  }

  /** Multiplies every count by `factor`; scaling all counters alike keeps heap order. */
  scale(factor: number): void {
    Object.assign(this, scaleCounts(this, factor))
  }
}

/** A min-heap of {@link Counter} on `requests`, with positions kept in `counter.index`. */
export class CounterHeap {
  readonly #heap: Counter[] = []

  /** Counters held. */
  get size(): number {
    return this.#heap.length
  }

  /** The counter with the fewest requests: the next one space-saving evicts. */
  peek(): Counter | undefined {
    return this.#heap[0]
  }

  /** Adds `counter`; it may weigh less than older ones, so it sifts up. */
  push(counter: Counter): void {
    counter.index = this.#heap.length
    this.#heap.push(counter)
    this.#siftUp(counter.index)
  }

  /** Puts `counter` where the minimum was; the minimum leaves the heap. */
  replaceMin(counter: Counter): void {
    const evicted = this.#heap[0]
    if (evicted === undefined) throw new RangeError('replaceMin on an empty heap')
    evicted.index = -1
    this.#heap[0] = counter
    counter.index = 0
    this.#siftDown(0)
  }

  /** Restores order after `counter.requests` grew. */
  increased(counter: Counter): void {
    this.#siftDown(counter.index)
  }

  /** Holds exactly `counters` from now on, heapified in O(n). */
  reset(counters: readonly Counter[]): void {
    this.#heap.length = 0
    for (const counter of counters) {
      counter.index = this.#heap.length
      this.#heap.push(counter)
    }
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#siftDown(i)
  }

  #siftDown(index: number): void {
    const heap = this.#heap
    const length = heap.length
    const counter = heap[index]!
    const requests = counter.requests
    for (;;) {
      const left = 2 * index + 1
      if (left >= length) break
      let child = left
      let childCounter = heap[left]!
      const right = left + 1
      if (right < length && heap[right]!.requests < childCounter.requests) {
        child = right
        childCounter = heap[right]!
      }
      if (childCounter.requests >= requests) break
      heap[index] = childCounter
      childCounter.index = index
      index = child
    }
    heap[index] = counter
    counter.index = index
  }

  #siftUp(index: number): void {
    const heap = this.#heap
    const counter = heap[index]!
    while (index > 0) {
      const parent = (index - 1) >> 1
      const parentCounter = heap[parent]!
      if (parentCounter.requests <= counter.requests) break
      heap[index] = parentCounter
      parentCounter.index = index
      index = parent
    }
    heap[index] = counter
    counter.index = index
  }
}
