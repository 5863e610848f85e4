import { readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { FarmStatistics } from '../statistics/farm-statistics.js'
import { QueryStatistics } from '../statistics/query-statistics.js'
import type { Store } from '../store/store.js'
import { createManifest, parseManifest, serializeManifest } from '../warmup/manifest.js'
import type { WarmupManifest } from '../warmup/manifest.js'
import { errorMessage, plural } from './log-text.js'

/** Options of {@link ManifestKeeper}. */
export interface ManifestKeeperOptions {
  /** Where the farm-wide statistics document is read. */
  readonly store: Store
  readonly namespace: string
  /** Absolute; `undefined`: the manifest lives in memory only. */
  readonly file: string | undefined
  readonly saveEveryMs: number
  /** Receives one line per event worth an operator's eye. */
  readonly log: (message: string) => void
}

/**
 * Keeps the warm-up manifest returning nodes are warmed from: the file's at
 * start, then rebuilt from the farm-wide statistics and saved to the file.
 *
 * ```ts
 * const keeper = new ManifestKeeper({ store, namespace: 'shop', file: '/var/lib/app/hot.json', saveEveryMs: 60_000, log })
 * await keeper.load()
 * keeper.manifest?.entries.length
 * ```
 */
export class ManifestKeeper {
  readonly #options: ManifestKeeperOptions
  readonly #farm: FarmStatistics
  #manifest: WarmupManifest | undefined
  #lastSaveAt: number | undefined
  #saving: Promise<void> | undefined
  #saveFailing = false
  #savedOnce = false

  constructor(options: ManifestKeeperOptions) {
    this.#options = options
    this.#farm = new FarmStatistics({ store: options.store, namespace: options.namespace, local: new QueryStatistics() })
  }

  /** The manifest returning nodes are warmed from: the file's, then the farm's latest. */
  get manifest(): WarmupManifest | undefined {
    return this.#manifest
  }

  /**
   * Resolves once no rebuild is running.
   *
   * ```ts
   * await keeper.idle()
   * ```
   */
  async idle(): Promise<void> {
    await this.#saving
  }

  /**
   * Loads the manifest file if there is one: a missing, unreadable or invalid file is logged, never fatal.
   *
   * ```ts
   * await keeper.load()
   * ```
   */
  async load(): Promise<void> {
    const file = this.#options.file
    if (file === undefined) return
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#options.log(`no warm-up manifest at ${file} yet; it is written once the farm-wide statistics have entries`)
      } else {
        this.#options.log(`cannot read the warm-up manifest ${file}: ${errorMessage(error)}`)
      }
      return
    }
    let manifest: WarmupManifest
    try {
      manifest = parseManifest(text)
    } catch (error) {
      const path = (error as { path?: unknown }).path
      this.#options.log(
        `ignoring the warm-up manifest ${file}: ${errorMessage(error)}${typeof path === 'string' && path !== '' ? ` (at ${path})` : ''}; it is rewritten from the farm-wide statistics`,
      )
      return
    }
    if (manifest.namespace !== this.#options.namespace) {
      this.#options.log(
        `ignoring the warm-up manifest ${file}: it is for namespace ${JSON.stringify(manifest.namespace)}, the monitor's is ${JSON.stringify(this.#options.namespace)}`,
      )
      return
    }
    this.#manifest = manifest
    this.#options.log(`loaded the warm-up manifest ${file}: ${plural(manifest.entries.length, 'entry', 'entries')} from ${manifest.createdAt}`)
  }

  /**
   * Starts a manifest rebuild in the background when one is due (never two at once).
   *
   * ```ts
   * if (noNodeDown) keeper.refreshIfDue(Date.now())
   * ```
   */
  refreshIfDue(now: number): void {
    if (this.#saving !== undefined) return
    if (this.#lastSaveAt !== undefined && now - this.#lastSaveAt < this.#options.saveEveryMs) return
    this.#lastSaveAt = now
    this.#saving = this.#save()
      .catch((error: unknown) => this.#options.log(`saving the warm-up manifest failed: ${errorMessage(error)}`))
      .finally(() => {
        this.#saving = undefined
      })
  }

  /**
   * Rebuilds the manifest from the farm-wide statistics document and writes it
   * to `manifestFile` (temporary file, then rename: a reader never sees half a
   * file). An empty or missing document (say, every node restarted) changes
   * nothing: the manifest and the file keep the last known entries.
   */
  async #save(): Promise<void> {
    let manifest: WarmupManifest
    try {
      manifest = createManifest(this.#options.namespace, await this.#farm.read())
    } catch (error) {
      this.#saveFailed(`cannot read the farm-wide statistics: ${errorMessage(error)}`)
      return
    }
    if (manifest.entries.length === 0) return
    this.#manifest = manifest
    const file = this.#options.file
    if (file !== undefined) {
      const temporary = `${file}.${process.pid}.tmp`
      try {
        await writeFile(temporary, serializeManifest(manifest), 'utf8')
        await rename(temporary, file)
      } catch (error) {
        await unlink(temporary).catch(() => {})
        this.#saveFailed(`cannot write the warm-up manifest ${file}: ${errorMessage(error)}`)
        return
      }
    }
    if (this.#saveFailing || !this.#savedOnce) {
      this.#options.log(
        `${this.#saveFailing ? 'saving the warm-up manifest again: ' : 'warm-up manifest '}${plural(manifest.entries.length, 'entry', 'entries')} from the farm-wide statistics${file === undefined ? '' : `, saved to ${file}`}`,
      )
    }
    this.#saveFailing = false
    this.#savedOnce = true
  }

  #saveFailed(message: string): void {
    if (this.#saveFailing) return
    this.#saveFailing = true
    this.#options.log(`${message}; keeping the manifest of ${plural(this.#manifest?.entries.length ?? 0, 'entry', 'entries')} known so far`)
  }
}
