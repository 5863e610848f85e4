import { describe, expect, it } from 'vitest'
import { downReason, flushDue, heldDownFor, needsReprobe, observeNode, probesStalled, warmed, warming } from '../../src/monitor/node-tracker.js'
import type { DownNode } from '../../src/monitor/node-tracker.js'
import type { ProbeResult } from '../../src/store/memcached/node-probe.js'

const ok: ProbeResult = { ok: true, latencyMs: 1, version: '1.6.21' }
const refused: ProbeResult = { ok: false, reason: 'refused', message: 'connect ECONNREFUSED' }
const timeout: ProbeResult = { ok: false, reason: 'timeout', message: 'no answer in 250 ms' }
const down: DownNode = { reason: 'refused', message: 'connect ECONNREFUSED', flushFailureLogged: false }
const noEntries = (): number => 0

describe('observeNode', () => {
  it('takes a node down on its first failed probe', () => {
    expect(observeNode(undefined, refused, null, noEntries)).toEqual({
      down: { reason: 'refused', message: 'connect ECONNREFUSED', flushFailureLogged: false },
      event: { type: 'down', reason: 'refused', message: 'connect ECONNREFUSED' },
    })
  })

  it('keeps a down node down with its latest failure, without a new event', () => {
    expect(observeNode(down, timeout, null, noEntries)).toEqual({
      down: { reason: 'timeout', message: 'no answer in 250 ms', flushFailureLogged: false },
      event: undefined,
    })
  })

  it('leaves a node that is up and answers alone', () => {
    expect(observeNode(undefined, ok, null, noEntries)).toEqual({ down: undefined, event: undefined })
  })

  it('lists a node up once it answered and was flushed, when it owns nothing to warm', () => {
    expect(observeNode(down, ok, undefined, noEntries)).toEqual({ down: undefined, event: { type: 'back', warmed: false } })
  })

  it('queues a flushed node that owns manifest entries for its warm-up, instead of listing it up', () => {
    const { down: next, event } = observeNode(down, ok, undefined, () => 7)
    expect(next).toMatchObject({ warm: 'waiting', reason: 'waiting to warm', message: '7 manifest entries to replay' })
    expect(event).toEqual({ type: 'warm-due', entries: 7 })
  })

  it('keeps a node that answers but cannot be flushed down, reporting it once per outage', () => {
    const first = observeNode(down, ok, 'flush_all refused', noEntries)
    expect(first.down).toMatchObject({ reason: 'flush failed', message: 'flush_all refused', flushFailureLogged: true })
    expect(first.event).toEqual({ type: 'flush-failed', message: 'flush_all refused' })
    const second = observeNode(first.down, ok, 'flush_all refused', noEntries)
    expect(second.down).toMatchObject({ reason: 'flush failed' })
    expect(second.event).toBeUndefined()
  })

  it('goes from warming to warmed to up, with the warm-up summary and flush count', () => {
    const waiting = observeNode(down, ok, undefined, () => 3).down!
    const running = warming(waiting, 3)
    expect(running).toMatchObject({ warm: 'running', reason: 'warming', message: 'replaying 3 manifest entries' })
    // While it warms, a round neither flushes it nor lists it up.
    expect(flushDue(ok, running)).toBe(false)
    expect(observeNode(running, ok, null, noEntries)).toEqual({ down: running, event: undefined })
    const done = warmed(running, '3 of 3 entries warmed', 12)
    expect(observeNode(done, ok, null, noEntries)).toEqual({
      down: undefined,
      event: { type: 'back', warmed: true, summary: '3 of 3 entries warmed', flushes: 12 },
    })
  })

  it('forgets the warm-up of a node lost again before it was listed up, so it is flushed anew', () => {
    const running = warming(observeNode(down, ok, undefined, () => 3).down!, 3)
    const { down: lost, event } = observeNode(running, refused, null, noEntries)
    expect(lost?.warm).toBeUndefined()
    expect(event).toEqual({ type: 'down-again', after: 'running', reason: 'refused', message: 'connect ECONNREFUSED' })
    expect(flushDue(ok, lost)).toBe(true)
  })
})

describe('the stall re-probe rule', () => {
  it('calls a round stalled only past one and a half probe timeouts', () => {
    expect(probesStalled(375, 250)).toBe(false)
    expect(probesStalled(376, 250)).toBe(true)
  })

  it('asks a failed probe again only in a stalled round and only for a node listed up', () => {
    expect(needsReprobe(true, timeout, undefined)).toBe(true)
    expect(needsReprobe(false, timeout, undefined)).toBe(false)
    expect(needsReprobe(true, timeout, down)).toBe(false)
    expect(needsReprobe(true, ok, undefined)).toBe(false)
  })
})

describe('flushDue', () => {
  it('flushes a down node that answers, never one that is up or silent', () => {
    expect(flushDue(ok, down)).toBe(true)
    expect(flushDue(ok, undefined)).toBe(false)
    expect(flushDue(refused, down)).toBe(false)
  })
})

describe('downReason and heldDownFor', () => {
  it('names one node or counts several', () => {
    expect(downReason(new Map([['a:1', down]]))).toBe('node a:1 down (refused)')
    expect(downReason(new Map([['a:1', down], ['b:2', { ...down, reason: 'timeout' }]]))).toBe('2 nodes down: a:1 (refused), b:2 (timeout)')
  })

  it('routes a warm-up around the other down nodes but not the warmed ones', () => {
    const tracked = new Map<string, DownNode>([
      ['a:1', down],
      ['b:2', warming(down, 1)],
      ['c:3', warmed(down, 'done', undefined)],
    ])
    expect([...heldDownFor(tracked, 'b:2')]).toEqual(['a:1'])
  })
})
