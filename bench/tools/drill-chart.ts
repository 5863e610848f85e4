/**
 * Redraws a drill's charts from its result file, next to it:
 *   npx tsx bench/tools/drill-chart.ts bench/results/drill-2026-11-25.json
 * writes drill-2026-11-25.svg and drill-2026-11-25-latency.svg.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { executionsChart, latencyChart, type DrillChartInput } from '../lib/drill-charts.js'

for (const file of process.argv.slice(2)) {
  const input = JSON.parse(readFileSync(file, 'utf8')) as DrillChartInput
  const base = file.replace(/\.json$/, '')
  writeFileSync(`${base}.svg`, executionsChart(input))
  writeFileSync(`${base}-latency.svg`, latencyChart(input))
  console.log(`wrote ${base}.svg and ${base}-latency.svg`)
}
