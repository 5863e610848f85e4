/** memcached reads a relative expiry above 30 days as a Unix timestamp. */
export const MAX_TTL_SECONDS = 60 * 60 * 24 * 30

/** A TTL in whole seconds (fractions round up); `0` means no expiry. */
export function validateTtl(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_TTL_SECONDS) {
    throw new RangeError(
      `${name} must be a finite number of seconds between 0 and ${MAX_TTL_SECONDS} (30 days), got ${describe(value)}`,
    )
  }
  return Math.ceil(value)
}

export function validateTags(value: unknown, name: string): string[] {
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

export function validatePositive(value: unknown, name: string, unit: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive finite number of ${unit}, got ${describe(value)}`)
  }
  return value
}

export function validatePositiveInteger(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${describe(value)}`)
  }
  return value
}

/** A value as it should appear in an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  if (Array.isArray(value)) return 'an array'
  return `a ${typeof value}`
}
