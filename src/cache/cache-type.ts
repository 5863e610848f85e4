/** What a registered type's `serialize` returns. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

/**
 * A class of the application's (typically what a custom pg type parser returns)
 * and how to write it as JSON and bring it back, with its name.
 */
// `any` by default: one list mixes types, and `deserialize: (s) => new Decimal(s)` must type-check.
export interface CacheType<T = any, S extends JsonValue = any> {
  /** Stored with each value; the sorted names version the cache's entries. */
  readonly name: string
  isApplicable(value: unknown): value is T
  serialize(value: T): S
  deserialize(value: S): T
}

/** Why a result is not stored: a value of `column` could not be written or brought back as itself. */
export interface Uncacheable {
  /** The row key holding the value (`"?"` if it cannot be told). */
  readonly column: string
  /** The class of the value (of the outermost one when it is nested in JSON, arrays, maps or sets). */
  readonly className: string
  /** `class`: it would come back as another class; `encode`: it could not be written at all. */
  readonly reason: 'class' | 'encode'
  /** The encoder's message, for `encode`. */
  readonly detail?: string
}
