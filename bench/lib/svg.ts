/** A hand-written line chart: a few polylines, axes, markers. No chart library. */

export interface Series {
  readonly name: string
  readonly color: string
  /** [x, y] points; y ≤ 0 is drawn at the bottom of a log axis. */
  readonly points: ReadonlyArray<readonly [number, number]>
  readonly dashed?: boolean
}

export interface Marker {
  readonly x: number
  readonly label: string
}

export interface ChartOptions {
  readonly title: string
  readonly subtitle?: string
  readonly xLabel: string
  readonly yLabel: string
  readonly series: readonly Series[]
  readonly markers: readonly Marker[]
  /** Shaded x ranges with a label (phases). */
  readonly bands?: ReadonlyArray<{ from: number; to: number; label: string; fill?: string }>
  readonly logY?: boolean
  /** Bottom of a log axis (values below are drawn there). Default 0.5. */
  readonly yMin?: number
  readonly width?: number
  readonly height?: number
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export function lineChart(options: ChartOptions): string {
  const width = options.width ?? 900
  const height = options.height ?? 460
  const margin = { left: 70, right: 240, top: 56, bottom: 50 }
  const plotW = width - margin.left - margin.right
  const plotH = height - margin.top - margin.bottom
  const all = options.series.flatMap((s) => s.points)
  const xMax = Math.max(1, ...all.map(([x]) => x), ...options.markers.map((m) => m.x))
  const yMaxData = Math.max(1, ...all.map(([, y]) => y))
  const yMin = options.yMin ?? 0.5
  const logY = options.logY ?? false

  let yTicks: number[]
  let yOf: (y: number) => number
  if (logY) {
    const top = 10 ** Math.ceil(Math.log10(yMaxData))
    yTicks = []
    for (let decade = 10 ** Math.ceil(Math.log10(yMin)); decade <= top; decade *= 10) {
      yTicks.push(decade)
      if (decade * 3 <= top) yTicks.push(decade * 3)
    }
    yTicks.sort((a, b) => a - b)
    const lo = Math.log10(yMin)
    const hi = Math.log10(top)
    yOf = (y) => margin.top + plotH - ((Math.log10(Math.max(y, yMin)) - lo) / (hi - lo)) * plotH
  } else {
    const step = niceStep(yMaxData / 6)
    const top = Math.ceil(yMaxData / step) * step
    yTicks = []
    for (let y = 0; y <= top + 1e-9; y += step) yTicks.push(y)
    yOf = (y) => margin.top + plotH - (y / top) * plotH
  }
  const xOf = (x: number): number => margin.left + (x / xMax) * plotW
  const xStep = niceStep(xMax / 10)

  const parts: string[] = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${margin.left}" y="22" font-size="15" font-weight="bold">${escape(options.title)}</text>`,
  )
  if (options.subtitle !== undefined) {
    parts.push(`<text x="${margin.left}" y="40" fill="#555">${escape(options.subtitle)}</text>`)
  }
  for (const band of options.bands ?? []) {
    const x1 = xOf(band.from)
    const x2 = xOf(band.to)
    parts.push(
      `<rect x="${x1.toFixed(1)}" y="${margin.top}" width="${(x2 - x1).toFixed(1)}" height="${plotH}" fill="${band.fill ?? '#f3f3f3'}"/>`,
      `<text x="${((x1 + x2) / 2).toFixed(1)}" y="${margin.top + 14}" text-anchor="middle" fill="#888">${escape(band.label)}</text>`,
    )
  }
  // Grid and axes.
  for (const y of yTicks) {
    const py = yOf(y).toFixed(1)
    parts.push(
      `<line x1="${margin.left}" y1="${py}" x2="${margin.left + plotW}" y2="${py}" stroke="#e2e2e2"/>`,
      `<text x="${margin.left - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${y}</text>`,
    )
  }
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    const px = xOf(x).toFixed(1)
    parts.push(
      `<line x1="${px}" y1="${margin.top + plotH}" x2="${px}" y2="${margin.top + plotH + 5}" stroke="#333"/>`,
      `<text x="${px}" y="${margin.top + plotH + 18}" text-anchor="middle">${x}</text>`,
    )
  }
  parts.push(
    `<line x1="${margin.left}" y1="${margin.top + plotH}" x2="${margin.left + plotW}" y2="${margin.top + plotH}" stroke="#333"/>`,
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}" stroke="#333"/>`,
    `<text x="${margin.left + plotW / 2}" y="${height - 10}" text-anchor="middle">${escape(options.xLabel)}</text>`,
    `<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(options.yLabel)}${logY ? ' (log scale)' : ''}</text>`,
  )
  for (const marker of options.markers) {
    const px = xOf(marker.x).toFixed(1)
    parts.push(
      `<line x1="${px}" y1="${margin.top}" x2="${px}" y2="${margin.top + plotH}" stroke="#c00" stroke-dasharray="5 4"/>`,
      `<text x="${px}" y="${margin.top - 6}" text-anchor="middle" fill="#c00">${escape(marker.label)}</text>`,
    )
  }
  options.series.forEach((series, i) => {
    const points = series.points.map(([x, y]) => `${xOf(x).toFixed(1)},${yOf(y).toFixed(1)}`).join(' ')
    parts.push(
      `<polyline fill="none" stroke="${series.color}" stroke-width="2"${series.dashed === true ? ' stroke-dasharray="6 3"' : ''} points="${points}"/>`,
    )
    const ly = margin.top + 10 + i * 22
    const lx = margin.left + plotW + 16
    parts.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${series.color}" stroke-width="3"${series.dashed === true ? ' stroke-dasharray="6 3"' : ''}/>`,
      `<text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${escape(series.name)}</text>`,
    )
  })
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}

function niceStep(raw: number): number {
  if (raw <= 0) return 1
  const power = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 5, 10]) {
    if (m * power >= raw) return m * power
  }
  return 10 * power
}
