/**
 * The one place option values are checked. Public entry points call these
 * once, passing the option's name as the caller wrote it; internal
 * constructors trust their typed config.
 */

/** Longest delay a Node.js timer takes; longer ones fire after 1 ms. */
export const MAX_TIMER_MS: number = 2 ** 31 - 1

/** memcached reads a relative expiry above 30 days as a Unix timestamp. */
export const THIRTY_DAYS_SECONDS: number = 60 * 60 * 24 * 30

/**
 * A short, quoted rendering of a bad value for error messages: strings are
 * JSON-quoted, long ones cut, objects shown as JSON when they can be.
 *
 * ```ts
 * describe('big') // '"big"'
 * describe(NaN)   // 'NaN'
 * ```
 */
export function describe(value: unknown): string {
  let text: string
  if (typeof value === 'string') {
    text = JSON.stringify(value)
  } else if (typeof value === 'number') {
    // JSON.stringify would print NaN and Infinity as "null".
    text = Object.is(value, -0) ? '-0' : String(value)
  } else if (typeof value === 'bigint') {
    text = `${value}n`
  } else if (typeof value === 'function') {
    text = `function ${value.name || '(anonymous)'}`
  } else if (typeof value === 'symbol' || value === undefined) {
    text = String(value)
  } else {
    try {
      text = JSON.stringify(value) ?? String(value)
    } catch {
      text = Object.prototype.toString.call(value)
    }
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

/**
 * Returns `value` as a plain record, or throws a TypeError saying whose
 * options it should have been.
 *
 * ```ts
 * const options = requireOptionsObject(input, 'MemoryStore')
 * ```
 */
export function requireOptionsObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${what} options must be an object, got ${describe(value)}`)
  }
  return value as Record<string, unknown>
}

/**
 * Throws a TypeError naming the first own property of `options` that is not
 * in `known`, so a typo fails loudly instead of being ignored.
 *
 * ```ts
 * rejectUnknown({ maxSize: 10 }, ['maxEntries', 'maxBytes'], 'MemoryStore')
 * // TypeError: unknown option "maxSize" for MemoryStore; known options: maxEntries, maxBytes
 * ```
 */
export function rejectUnknown(options: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(`unknown option ${JSON.stringify(key)} for ${what}; known options: ${known.join(', ')}`)
    }
  }
}

/**
 * A positive safe integer.
 *
 * ```ts
 * positiveInteger(0, 'capacity') // RangeError: capacity must be a positive integer, got 0
 * ```
 */
export function positiveInteger(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${describe(value)}`)
  }
  return value
}

/**
 * A safe integer from `min` to `max` (no upper bound when `max` is omitted).
 *
 * ```ts
 * integerFrom(100, 'maxBytes', 1024) // RangeError: maxBytes must be an integer of at least 1024, got 100
 * integerFrom(0, 'maxValueBytes', 1, 2 ** 30)
 * // RangeError: maxValueBytes must be an integer from 1 to 1073741824, got 0
 * ```
 */
export function integerFrom(value: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`
    throw new RangeError(`${name} must be an integer ${range}, got ${describe(value)}`)
  }
  return value
}

/**
 * A finite number from `min` to `max`.
 *
 * ```ts
 * numberFrom(0.6, 'ttlJitter', 0, 0.5) // RangeError: ttlJitter must be a number from 0 to 0.5, got 0.6
 * ```
 */
export function numberFrom(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`${name} must be a number from ${min} to ${max}, got ${describe(value)}`)
  }
  return value
}

/**
 * A positive finite number of `unit`, for quantities that never reach a timer.
 *
 * ```ts
 * positiveNumber(-1, 'halfLifeMs', 'milliseconds')
 * // RangeError: halfLifeMs must be a positive finite number of milliseconds, got -1
 * ```
 */
export function positiveNumber(value: unknown, name: string, unit: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive finite number of ${unit}, got ${describe(value)}`)
  }
  return value
}

/**
 * A delay a timer can wait: above 0 and at most {@link MAX_TIMER_MS} (about 24.8 days).
 *
 * ```ts
 * delayMs(2 ** 31, 'modeRefreshMs')
 * // RangeError: modeRefreshMs must be a positive number of milliseconds, at most 2147483647, got 2147483648
 * ```
 */
export function delayMs(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw new RangeError(`${name} must be a positive number of milliseconds, at most ${MAX_TIMER_MS}, got ${describe(value)}`)
  }
  return value
}

/**
 * A memcached TTL in whole seconds (fractions round up); `0` means no expiry.
 *
 * ```ts
 * ttlSeconds(1.5, 'ttl') // 2
 * ttlSeconds(-5, 'ttl')
 * // RangeError: ttl must be a finite number of seconds between 0 and 2592000 (30 days), got -5
 * ```
 */
export function ttlSeconds(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > THIRTY_DAYS_SECONDS) {
    throw new RangeError(
      `${name} must be a finite number of seconds between 0 and ${THIRTY_DAYS_SECONDS} (30 days), got ${describe(value)}`,
    )
  }
  return Math.ceil(value)
}

/**
 * A whole number of seconds from `min` to {@link THIRTY_DAYS_SECONDS}, for
 * expiries that must never be "none" (0) or fractional.
 *
 * ```ts
 * wholeSeconds(3_000_000, 'fallbackTtl')
 * // RangeError: fallbackTtl must be a whole number of seconds from 1 to 2592000, got 3000000
 * ```
 */
export function wholeSeconds(value: unknown, name: string, min = 1): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > THIRTY_DAYS_SECONDS) {
    throw new RangeError(`${name} must be a whole number of seconds from ${min} to ${THIRTY_DAYS_SECONDS}, got ${describe(value)}`)
  }
  return value
}

/**
 * A list of non-empty tag strings.
 *
 * ```ts
 * tagList(['users', ''], 'tags') // TypeError: tags[1] must be a non-empty string, got ""
 * ```
 */
export function tagList(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`${name} must be an array of non-empty strings, got ${describe(value)}`)
  }
  value.forEach((tag, index) => {
    if (typeof tag !== 'string' || tag === '') {
      throw new TypeError(`${name}[${index}] must be a non-empty string, got ${describe(tag)}`)
    }
  })
  return value as string[]
}

/** SASL PLAIN credentials for every memcached node. */
export interface SaslCredentials {
  readonly username: string
  readonly password: string
}

/**
 * `{ username, password }` for SASL PLAIN. Errors name the field and never show
 * the password (nor, for a bad password, anything of its value).
 *
 * ```ts
 * saslCredentials({ username: 'app' }, 'sasl')
 * // TypeError: sasl.password must be a non-empty string without NUL characters (value not shown)
 * ```
 */
export function saslCredentials(value: unknown, name: string): SaslCredentials {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${name} must be an object { username, password }, got ${typeof value === 'string' ? 'a string (value not shown)' : describe(value === null ? null : typeof value)}`)
  }
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (key !== 'username' && key !== 'password') {
      throw new TypeError(`unknown option ${JSON.stringify(key)} for ${name}; known options: username, password`)
    }
  }
  const { username, password } = record
  // PLAIN separates the fields with NUL bytes, so neither may hold one.
  if (typeof username !== 'string' || username === '' || username.includes('\u0000')) {
    throw new TypeError(`${name}.username must be a non-empty string without NUL characters, got ${describe(username)}`)
  }
  if (typeof password !== 'string' || password === '' || password.includes('\u0000')) {
    throw new TypeError(`${name}.password must be a non-empty string without NUL characters (value not shown)`)
  }
  return Object.freeze({ username, password })
}

/** Shortest secret accepted: below 16 bytes an HMAC key is guessable. */
export const MIN_SECRET_BYTES = 16

/**
 * The signing secrets, current first: `secret` alone, or `secrets` as
 * `[current, ...previous]` for rotation. Strings count in UTF-8 bytes. Errors
 * never show a secret.
 *
 * ```ts
 * signingSecrets('short', undefined)
 * // RangeError: secret must be at least 16 bytes (got 5; value not shown)
 * ```
 */
export function signingSecrets(secret: unknown, secrets: unknown): Buffer[] {
  if (secret !== undefined && secrets !== undefined) {
    throw new TypeError('give either secret or secrets ([current, ...previous]), not both')
  }
  const list: Array<[unknown, string]> =
    secret !== undefined
      ? [[secret, 'secret']]
      : secrets === undefined
        ? []
        : Array.isArray(secrets) && secrets.length > 0
          ? secrets.map((item, index) => [item, `secrets[${index}]`])
          : (() => {
              throw new TypeError(`secrets must be a non-empty array [current, ...previous], got ${Array.isArray(secrets) ? 'an empty array' : describe(typeof secrets)}`)
            })()
  return list.map(([item, name]) => {
    const bytes = typeof item === 'string' ? Buffer.from(item, 'utf8') : Buffer.isBuffer(item) ? Buffer.from(item) : undefined
    if (bytes === undefined) {
      throw new TypeError(`${name} must be a string or a Buffer, got ${describe(typeof item)} (value not shown)`)
    }
    if (bytes.length < MIN_SECRET_BYTES) {
      throw new RangeError(`${name} must be at least ${MIN_SECRET_BYTES} bytes (got ${bytes.length}; value not shown)`)
    }
    return bytes
  })
}
