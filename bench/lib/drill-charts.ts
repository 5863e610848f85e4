/** The drill's two charts, drawn from its result (so they can be redrawn from a result file). */
import { round } from './common.js'
import type { DrillConfigurationName } from './drill-shapes.js'
import { lineChart, type Marker } from './svg.js'

export const CONFIG_INFO: Record<DrillConfigurationName, { label: string; color: string }> = {
  nocache: { label: 'no cache', color: '#7f7f7f' },
  off: { label: 'cache, safe mode off', color: '#d62728' },
  original: { label: 'safe mode, original 5 s × 6', color: '#ff7f0e' },
  default: { label: 'safe mode, library defaults', color: '#1f77b4' },
  far: { label: 'library defaults, near cache off', color: '#9467bd' },
  unflat: { label: 'defaults without early refresh and jitter', color: '#8c564b' },
  swr: { label: 'library defaults, swr = ttl', color: '#17becf' },
  bare: { label: 'cache without protection (0.1 without safe mode)', color: '#e377c2' },
}

/** A configuration's name in tables and legends; the web farm's `swr` runs the pages' own swr windows. */
export function configLabel(name: DrillConfigurationName, workload?: string): string {
  return name === 'swr' && workload === 'web-farm' ? "library defaults, the pages' swr windows" : CONFIG_INFO[name].label
}

/** The parts of a drill result the charts need. */
export interface DrillChartInput {
  readonly settings: {
    readonly workers: number
    readonly vus: number
    readonly shapes: number
    readonly zipf: number
    readonly sleepMs: number
    readonly warmup: number
    readonly killSecond: number
    readonly restartSecond: number
    readonly workload?: string
    /** Web farm. */
    readonly thinkMs?: number
    readonly articles?: number
    readonly writeShare?: number
    readonly queryCostMs?: number
    readonly ttlScale?: number
  }
  readonly placement: { readonly lostShapes: readonly number[]; readonly killed: { readonly requestShare: number | null } }
  readonly configurations: ReadonlyArray<{
    readonly name: DrillConfigurationName
    readonly events: { readonly kill?: number; readonly restart?: number }
    readonly perSecond: ReadonlyArray<{ readonly t: number; readonly dbExecutions: number; readonly p99Ms: number | null }>
  }>
}

/** The web-farm workload in a line short enough for the charts. */
function webFarmLine(s: DrillChartInput['settings']): string | undefined {
  if (s.workload !== 'web-farm') return undefined
  return `web farm: ${s.workers} processes × ${s.vus} users (think ${s.thinkMs} ms), ${s.articles} articles (Zipf ${s.zipf}), writes ${s.writeShare}, +${s.queryCostMs} ms per query, TTLs × ${s.ttlScale}`
}

function markers(input: DrillChartInput): Marker[] {
  // When they really happened (the first configuration with a kill), else the planned seconds.
  const events = input.configurations.find((c) => c.events.kill !== undefined)?.events
  return [
    { x: events?.kill ?? input.settings.killSecond, label: 'kill -9' },
    { x: events?.restart ?? input.settings.restartSecond, label: 'restart' },
  ]
}

function bands(input: DrillChartInput) {
  return [
    { from: 0, to: input.settings.warmup, label: 'warm-up', fill: '#ececec' },
    { from: input.settings.warmup, to: input.settings.killSecond, label: 'steady', fill: '#f7f7f7' },
  ]
}

export function executionsChart(input: DrillChartInput): string {
  const s = input.settings
  return lineChart({
    title: 'Database executions per second when one of 4 memcached nodes is killed',
    subtitle:
      webFarmLine(s) ??
      `${s.workers} processes × ${s.vus} users, ${s.shapes} shapes (Zipf ${s.zipf}), ${s.sleepMs} ms query; node lost ${input.placement.lostShapes.length} shapes (${round(100 * (input.placement.killed.requestShare ?? 0), 0)} % of requests)`,
    xLabel: 'seconds since start',
    yLabel: 'database executions / s',
    logY: true,
    series: input.configurations.map((r) => ({
      name: configLabel(r.name, s.workload),
      color: CONFIG_INFO[r.name].color,
      dashed: r.name === 'nocache',
      points: r.perSecond.map((p) => [p.t + 0.5, p.dbExecutions] as const),
    })),
    markers: markers(input),
    bands: bands(input),
  })
}

export function latencyChart(input: DrillChartInput): string {
  const s = input.settings
  return lineChart({
    title: 'p99 request latency per second (all requests, hits included)',
    subtitle:
      s.workload === 'web-farm'
        ? `as the web farm's load generator saw it (HTTP on loopback); ${s.queryCostMs} ms of database time per query`
        : `query ${s.sleepMs} ms; target for the library defaults after the kill: ≤ ${s.sleepMs + 100} ms`,
    xLabel: 'seconds since start',
    yLabel: 'p99 latency, ms',
    logY: true,
    yMin: 1,
    series: input.configurations.map((r) => ({
      name: configLabel(r.name, s.workload),
      color: CONFIG_INFO[r.name].color,
      dashed: r.name === 'nocache',
      points: r.perSecond.filter((p) => p.p99Ms !== null).map((p) => [p.t + 0.5, p.p99Ms!] as const),
    })),
    markers: markers(input),
    bands: bands(input),
  })
}
