/**
 * An abort signal for a long-running command: `signal` when the caller gives
 * one (tests, embedding), else one that aborts on SIGINT or SIGTERM. `dispose`
 * removes the process listeners, so a finished command no longer swallows
 * Ctrl-C.
 */
export function stopSignal(signal: AbortSignal | undefined): { signal: AbortSignal; dispose(): void } {
  if (signal !== undefined) return { signal, dispose: () => {} }
  const controller = new AbortController()
  const abort = (): void => controller.abort()
  process.once('SIGINT', abort)
  process.once('SIGTERM', abort)
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', abort)
      process.off('SIGTERM', abort)
    },
  }
}

/**
 * Resolves once `signal` aborts, or on SIGINT or SIGTERM when no signal is
 * given (see {@link stopSignal}), and holds the process open until then.
 */
export function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  const stop = stopSignal(signal)
  return new Promise<void>((resolve) => {
    // The monitor's timers are unref'd; this one holds the process open until told to stop.
    const keepAlive = setInterval(() => {}, 1 << 30)
    const done = (): void => {
      clearInterval(keepAlive)
      stop.dispose()
      resolve()
    }
    if (stop.signal.aborted) return done()
    stop.signal.addEventListener('abort', done, { once: true })
  })
}
