import { SuperJSON } from 'superjson'

/**
 * Our own SuperJSON instance, so registering the Buffer type does not change the
 * behaviour of a SuperJSON the application uses elsewhere.
 */
const serializer = new SuperJSON()
// pg returns bytea as Buffer; stock superjson would revive it as a plain Uint8Array.
serializer.registerCustom<Buffer, string>(
  {
    isApplicable: (value): value is Buffer => Buffer.isBuffer(value),
    serialize: (value) => value.toString('base64'),
    deserialize: (value) => Buffer.from(value, 'base64'),
  },
  'Buffer',
)

/** Rows as text: Date, bigint, Buffer, Uint8Array, undefined, Map, Set survive the trip. */
export function encodeRows(rows: readonly unknown[]): string {
  return serializer.stringify(rows)
}

export function decodeRows(text: string): unknown[] {
  const rows = serializer.parse<unknown>(text)
  if (!Array.isArray(rows)) {
    throw new TypeError('cached entry does not hold a row array')
  }
  return rows
}

/** Any JSON-able value with types preserved; used for query parameters in manifests and keys. */
export function encodeValue(value: unknown): string {
  return serializer.stringify(value)
}

export function decodeValue(text: string): unknown {
  return serializer.parse(text)
}

/*
 * A stored entry is `k1\n<generation>,<generation>,…\n<rows>`. The generations are
 * those the rows were computed under (namespace, tables read, tags), in the order
 * the reader derives them, so a hit is checked without parsing the rows first.
 */
const ENTRY_VERSION = 'k1'

export function encodeEntry(generations: readonly string[], rowsText: string): Buffer {
  return Buffer.from(`${ENTRY_VERSION}\n${generations.join(',')}\n${rowsText}`, 'utf8')
}

export interface DecodedEntry {
  readonly generations: readonly string[]
  readonly rowsText: string
}

/** `undefined` for anything that is not an entry of this version (garbage, other writers). */
export function decodeEntry(value: Buffer): DecodedEntry | undefined {
  const text = value.toString('utf8')
  const first = text.indexOf('\n')
  if (first !== ENTRY_VERSION.length || !text.startsWith(ENTRY_VERSION)) {
    return undefined
  }
  const second = text.indexOf('\n', first + 1)
  if (second < 0) {
    return undefined
  }
  const list = text.slice(first + 1, second)
  return {
    generations: list === '' ? [] : list.split(','),
    rowsText: text.slice(second + 1),
  }
}
