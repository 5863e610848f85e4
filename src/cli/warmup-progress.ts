import cliProgress from 'cli-progress'
import type { CliIo } from './cli-io.js'

/** Entries replayed so far, by outcome. */
export interface WarmupCounts {
  warmed: number
  skipped: number
  failed: number
}

/** How `warmup` shows how far it is. */
export interface WarmupProgress {
  update(done: number, counts: WarmupCounts): void
  stop(): void
}

/**
 * A progress display for replaying `total` entries: a bar on a terminal
 * (`io.stdout.isTTY`), else plain lines, one at each tenth of the way and at
 * the end, that read well in logs and pipes.
 */
export function warmupProgress(io: CliIo, total: number): WarmupProgress {
  return io.stdout.isTTY === true ? barProgress(io, total) : lineProgress(io, total, performance.now())
}

function barProgress(io: CliIo, total: number): WarmupProgress {
  const bar = new cliProgress.SingleBar(
    {
      stream: io.stdout as unknown as NodeJS.WritableStream,
      format: 'warming [{bar}] {value}/{total} | {warmed} warmed, {skipped} skipped, {failed} failed | {duration_formatted} | eta {eta_formatted}',
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  )
  bar.start(total, 0, { warmed: 0, skipped: 0, failed: 0 })
  return {
    update: (done, counts) => bar.update(done, { ...counts }),
    stop: () => bar.stop(),
  }
}

function lineProgress(io: CliIo, total: number, started: number): WarmupProgress {
  const step = Math.max(1, Math.ceil(total / 10))
  let next = step
  return {
    update: (done, counts) => {
      if (done < next && done !== total) return
      next = done + step - (done % step)
      io.stdout.write(
        `${done}/${total} done: ${counts.warmed} warmed, ${counts.skipped} skipped, ${counts.failed} failed (${((performance.now() - started) / 1000).toFixed(1)}s)\n`,
      )
    },
    stop: () => {},
  }
}
