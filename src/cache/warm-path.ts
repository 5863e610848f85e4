import { CompiledQuery, type QueryResult } from 'kysely'
import type { WarmMark } from '../kysely/cached.js'
import type { KeyScope } from '../kysely/scope.js'
import { queryKey } from '../keys.js'
import { StoreUnavailableError } from '../store/store.js'
import type { Generations } from './generations.js'
import type { QueryRunner } from './query-runner.js'
import { entryLifetime, type ResultWriter } from './result-writer.js'
import { currentTokens } from './tokens.js'

/**
 * Replays one warm-up entry: reads (or creates) its generations first, runs it
 * in a read-only transaction on this connection, and stores the rows under
 * those generations, as a miss would. Reports the outcome on the mark.
 *
 * ```ts
 * await replayEntry({ namespace, generations, writer, failed }, runner, warm, scope)
 * warm.stored // whether the rows are in the cache now
 * ```
 * @throws {StoreUnavailableError} When the generations cannot be read or created: nothing could be stored.
 */
export async function replayEntry(
  path: {
    readonly namespace: string
    readonly generations: Generations
    readonly writer: ResultWriter
    readonly ttlJitter: number
    readonly failed: (error: unknown) => void
  },
  runner: QueryRunner,
  warm: WarmMark,
  scope: KeyScope,
): Promise<void> {
  const { entry } = warm
  // `entry.tables` were recorded resolved in the scope of the read, as the key was.
  const key = queryKey(path.namespace, entry.sql, entry.parameters, entry.tags, scope.id)
  const generationKeys = path.generations.keysFor(entry.tables, entry.tags)
  // Read before the replay's query, as a miss does: a write after this read replaces them.
  const read = await Promise.all(generationKeys.map((k) => path.generations.read(k)))
  if (read.some((generation) => generation.kind === 'unknown')) {
    throw new StoreUnavailableError(`cannot read the generations of ${JSON.stringify(key)}`)
  }
  const current = await currentTokens(path.generations, generationKeys, read, path.failed)
  if (current.kind === 'unproven') {
    throw new StoreUnavailableError(`cannot create the generations of ${JSON.stringify(key)}`)
  }
  await runner.run(CompiledQuery.raw('begin transaction read only'))
  let result: QueryResult<unknown>
  let computeMs: number
  try {
    const started = performance.now()
    result = await runner.run(CompiledQuery.raw(entry.sql, [...entry.parameters]))
    computeMs = performance.now() - started
    await runner.run(CompiledQuery.raw('commit'))
  } catch (error) {
    await runner.run(CompiledQuery.raw('rollback')).catch(() => {})
    throw error
  }
  const encoded = path.writer.encode(result.rows)
  warm.stored =
    encoded !== undefined &&
    (await runner.storable()) &&
    (await path.writer.putResult(key, current.tokens, encoded, entryLifetime(entry.ttl, 0, computeMs, path.ttlJitter)))
}
