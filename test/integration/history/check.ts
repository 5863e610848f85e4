import type { HistoryEvent, PhaseEvent, ReadEvent, WriteEvent } from './events.js'

/** A read that returned a row older than a write that had returned before the read started. */
export interface Violation {
  readonly read: ReadEvent
  readonly phase: string
  readonly id: number
  readonly got: number
  /** The newest value whose write returned before the read started. */
  readonly expectedAtLeast: number
  /** That write. */
  readonly write: WriteEvent | undefined
  readonly reason: 'stale' | 'never committed'
}

export interface PhaseReport {
  readonly name: string
  readonly fault: boolean
  readonly seconds: number
  readonly reads: number
  readonly writes: number
  readonly failedReads: number
  readonly failedWrites: number
  /** 1 − database executions of cached reads ÷ reads, counted below the cache. */
  readonly hitRatio: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly violations: number
}

export interface HistoryReport {
  readonly reads: number
  readonly writes: number
  readonly failedQueries: number
  /** Writes whose invalidation the writer was told failed (the stated exception). */
  readonly unrecordedWrites: number
  readonly hitRatio: number
  /** Hit ratio over the phases without a fault. */
  readonly steadyHitRatio: number
  readonly phases: PhaseReport[]
  readonly violations: Violation[]
  /** The failed queries' messages, at most 20. */
  readonly failures: string[]
}

/**
 * Checks a history offline: every row a read returned must be at least as new as
 * the newest write of that row that had returned before the read started, and
 * never a value that was rolled back. Writes that failed (commit unknown) or whose
 * invalidation the writer was told failed are not required to be seen.
 */
export function checkHistory(events: readonly HistoryEvent[]): HistoryReport {
  const phases = events.filter((event): event is PhaseEvent => event.type === 'phase').sort((a, b) => a.at - b.at)
  const writes = events.filter((event): event is WriteEvent => event.type === 'write')
  const reads = events.filter((event): event is ReadEvent => event.type === 'read')
  const executions = events.filter((event) => event.type === 'execution').map((event) => event.at)

  const required = new Map<number, WriteEvent[]>()
  const rolledBack = new Set<string>()
  for (const write of writes) {
    if (write.rolledBack) {
      rolledBack.add(`${write.id}:${write.value}`)
      continue
    }
    if (!write.ok || write.unrecorded) continue
    const list = required.get(write.id) ?? []
    list.push(write)
    required.set(write.id, list)
  }
  const newest = new Map<number, { ends: number[]; best: WriteEvent[] }>()
  for (const [id, list] of required) {
    list.sort((a, b) => a.end - b.end)
    const best: WriteEvent[] = []
    for (const write of list) {
      const previous = best[best.length - 1]
      best.push(previous === undefined || write.value > previous.value ? write : previous)
    }
    newest.set(id, { ends: list.map((write) => write.end), best })
  }

  const phaseOf = (at: number): PhaseEvent | undefined => {
    let found: PhaseEvent | undefined
    for (const phase of phases) {
      if (phase.at > at) break
      found = phase
    }
    return found
  }

  const violations: Violation[] = []
  for (const read of reads) {
    if (!read.ok) continue
    for (const [id, got] of read.rows) {
      const phase = phaseOf(read.start)?.name ?? 'start'
      if (rolledBack.has(`${id}:${got}`)) {
        violations.push({ read, phase, id, got, expectedAtLeast: got, write: undefined, reason: 'never committed' })
        continue
      }
      const history = newest.get(id)
      if (history === undefined) continue
      const before = lastBelow(history.ends, read.start)
      if (before < 0) continue
      const write = history.best[before]!
      if (got < write.value) {
        violations.push({ read, phase, id, got, expectedAtLeast: write.value, write, reason: 'stale' })
      }
    }
  }

  const failed = [...reads, ...writes].filter((event) => !event.ok)
  const phaseReports: PhaseReport[] = []
  const bounds = phases.map((phase, i) => ({ phase, from: phase.at, to: phases[i + 1]?.at ?? Number.POSITIVE_INFINITY }))
  for (const { phase, from, to } of bounds) {
    if (phase.name === 'end') continue
    const within = (at: number): boolean => at >= from && at < to
    const phaseReads = reads.filter((read) => within(read.start))
    const phaseExecutions = executions.filter(within).length
    const latencies = phaseReads.filter((read) => read.ok).map((read) => (read.end - read.start) / 1000)
    const last = Math.max(from, ...reads.map((read) => read.end).filter(within))
    phaseReports.push({
      name: phase.name,
      fault: phase.fault,
      seconds: (Math.min(to, last) - from) / 1e6,
      reads: phaseReads.length,
      writes: writes.filter((write) => within(write.start)).length,
      failedReads: phaseReads.filter((read) => !read.ok).length,
      failedWrites: writes.filter((write) => within(write.start) && !write.ok).length,
      hitRatio: ratio(phaseReads.length, phaseExecutions),
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      violations: violations.filter((violation) => within(violation.read.start)).length,
    })
  }
  const steady = phaseReports.filter((phase) => !phase.fault)
  const steadyReads = steady.reduce((sum, phase) => sum + phase.reads, 0)
  const steadyExecutions = steady.reduce((sum, phase) => sum + Math.round(phase.reads * (1 - phase.hitRatio)), 0)
  return {
    reads: reads.length,
    writes: writes.length,
    failedQueries: failed.length,
    unrecordedWrites: writes.filter((write) => write.unrecorded).length,
    hitRatio: ratio(reads.length, executions.length),
    steadyHitRatio: ratio(steadyReads, steadyExecutions),
    phases: phaseReports,
    violations,
    failures: failed.slice(0, 20).map((event) => `${event.type} by ${event.process}: ${event.error ?? 'unknown error'}`),
  }
}

/** Index of the last value below `at` in ascending `values`, or −1. */
function lastBelow(values: readonly number[], at: number): number {
  let low = 0
  let high = values.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (values[middle]! < at) low = middle + 1
    else high = middle
  }
  return low - 1
}

function ratio(reads: number, executions: number): number {
  return reads === 0 ? 0 : Math.max(0, 1 - executions / reads)
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

/** The report as text: a table per phase, then each violation with its detail. */
export function formatReport(report: HistoryReport): string {
  const lines: string[] = []
  const row = (cells: readonly (string | number)[]): string => cells.map((cell, i) => String(cell).padEnd(i === 0 ? 22 : 10)).join(' ')
  lines.push(row(['phase', 'seconds', 'reads', 'writes', 'failed', 'hit ratio', 'p50 ms', 'p99 ms', 'violations']))
  for (const phase of report.phases) {
    lines.push(
      row([
        `${phase.name}${phase.fault ? ' *' : ''}`,
        phase.seconds.toFixed(1),
        phase.reads,
        phase.writes,
        phase.failedReads + phase.failedWrites,
        phase.hitRatio.toFixed(3),
        phase.p50Ms.toFixed(2),
        phase.p99Ms.toFixed(2),
        phase.violations,
      ]),
    )
  }
  lines.push('(* a fault phase)')
  lines.push(
    `reads ${report.reads}, writes ${report.writes} (${report.unrecordedWrites} told unrecorded), failed queries ${report.failedQueries}, ` +
      `hit ratio ${report.hitRatio.toFixed(3)} (${report.steadyHitRatio.toFixed(3)} outside faults), violations ${report.violations.length}`,
  )
  for (const violation of report.violations.slice(0, 50)) {
    const { read, write } = violation
    lines.push(
      `VIOLATION (${violation.reason}) in phase ${violation.phase}: ${read.process} ${read.query} read row ${violation.id} = ${violation.got} ` +
        `[${read.start}..${read.end}µs]` +
        (write === undefined
          ? ''
          : `, but ${write.process} had written ${write.value} (${write.how}) [${write.start}..${write.end}µs], ${read.start - write.end}µs before the read started`),
    )
  }
  if (report.violations.length > 50) lines.push(`… and ${report.violations.length - 50} more violations`)
  for (const failure of report.failures) lines.push(`FAILED ${failure}`)
  return lines.join('\n')
}
