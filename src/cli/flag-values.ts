import { validateNamespace } from '../keys.js'
import { parseServerList } from '../store/memcached/server-address.js'
import type { ServerAddress } from '../store/memcached/server-address.js'
import { parseDuration } from '../util/duration.js'
import { positiveInteger } from '../util/validate.js'
import { DEFAULT_NAMESPACE, DEFAULT_TIMEOUT_MS } from './cli-flags.js'
import type { Command } from './command-names.js'
import { UsageError, usageCheck } from './usage-error.js'

/**
 * A duration flag's value in milliseconds, read by `parseDuration` (250ms, 1s,
 * 1m30s, a plain number of ms); zero only with `allowZero`. Bad input is a
 * usage error of `command` naming `flag`.
 */
export function durationFlag(text: string, flag: string, command: Command, allowZero = false): number {
  return usageCheck(command, () => parseDuration(text, flag, { allowZero }))
}

/**
 * A count flag's value: digits only, at least 1, at most nine digits. Bad input
 * is a usage error of `command` naming `flag` and quoting the text as typed.
 */
export function integerFlag(text: string, flag: string, command: Command): number {
  const trimmed = text.trim()
  // Number() alone would take "1e3", "0x10" or "1.0"; what is not a count goes to the check as typed, so the error quotes it.
  const value = /^\d{1,9}$/.test(trimmed) && Number(trimmed) >= 1 ? Number(trimmed) : text
  return usageCheck(command, () => positiveInteger(value, flag))
}

/** The --timeout of `mode`, `status` and `export` in milliseconds, {@link DEFAULT_TIMEOUT_MS} when not given. */
export function timeoutFlag(text: string | undefined, command: Command): number {
  return text === undefined ? DEFAULT_TIMEOUT_MS : durationFlag(text, '--timeout', command)
}

/** A --namespace value, checked as the caches check theirs; bad input is a usage error of `command`. */
export function namespaceFlag(text: string, command: Command): string {
  // validateNamespace's message starts with the option's name, "namespace".
  return usageCheck(command, () => validateNamespace(text), (message) => `--${message}`)
}

/**
 * The nodes of --servers (required) and the namespace of --namespace
 * ({@link DEFAULT_NAMESPACE} when not given): what a command works on. Bad
 * input is a usage error of `command`.
 */
export function readTarget(command: Command, values: { readonly servers?: string; readonly namespace?: string }): { servers: ServerAddress[]; namespace: string } {
  const list = values.servers
  if (list === undefined) {
    throw new UsageError('--servers is required, e.g. --servers 10.0.0.1:11211,10.0.0.2:11211', command)
  }
  const servers = usageCheck(
    command,
    () => parseServerList(list.split(',').map((entry) => entry.trim()), '--servers'),
    (message) => `${message} (in --servers ${JSON.stringify(list)})`,
  )
  return { servers, namespace: namespaceFlag(values.namespace ?? DEFAULT_NAMESPACE, command) }
}
