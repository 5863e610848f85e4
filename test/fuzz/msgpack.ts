/**
 * Hand-made MessagePack for the decoder's property tests: tokens with any claimed
 * length, msgpackr's extensions and records, and the crafted inputs a hostile
 * writer of the cache tier would try (huge length headers, deep nesting, string
 * bundle bombs, bigint record keys, prototype keys, registered names with garbage).
 *
 * Everything here is bytes, built from the specification, not from msgpackr: the
 * tests must not share the decoder's idea of what the bytes mean.
 */
import fc from 'fast-check'

/** Extension types: the row encoding's (row-msgpack.ts) and msgpackr's own. */
export const EXT = {
  undefined: 0x00,
  bigint: 0x42,
  bundle: 0x62,
  date: 0x64,
  error: 0x65,
  cloneId: 0x69,
  special: 0x6b,
  buffer: 0x6e,
  clonePointer: 0x70,
  record: 0x72,
  set: 0x73,
  typedArray: 0x74,
  url: 0x75,
  regexp: 0x78,
  timestamp: 0xff,
} as const

/** First items of the row encoding's Special parts (row-msgpack.ts). */
export const SPECIAL = { negativeZero: 0, illFormedString: 1, oddObject: 2, custom: 3 } as const

/** Keys that change prototypes when a decoder assigns them carelessly. */
export const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype', '__defineGetter__', '__lookupGetter__', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf'] as const

export function cat(...parts: ReadonlyArray<ArrayLike<number>>): Buffer {
  return Buffer.concat(parts.map((part) => (Buffer.isBuffer(part) ? part : Buffer.from(Array.from(part)))))
}

export function u16(value: number): number[] {
  return [(value >>> 8) & 0xff, value & 0xff]
}

export function u32(value: number): number[] {
  return [(value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]
}

export function i32(value: number): number[] {
  return u32(value >>> 0)
}

/** An array header claiming `count` items, in the smallest form or the one asked for. */
export function arrayHeader(count: number, form: 'fit' | 16 | 32 = 'fit'): number[] {
  if (form === 'fit' && count < 16) return [0x90 | count]
  if (form === 16 || (form === 'fit' && count < 0x10000)) return [0xdc, ...u16(count)]
  return [0xdd, ...u32(count)]
}

export function mapHeader(count: number, form: 'fit' | 16 | 32 = 'fit'): number[] {
  if (form === 'fit' && count < 16) return [0x80 | count]
  if (form === 16 || (form === 'fit' && count < 0x10000)) return [0xde, ...u16(count)]
  return [0xdf, ...u32(count)]
}

/** A string token over `bytes` (any bytes: invalid UTF-8 too), claiming `claimed` bytes. */
export function str(bytes: ArrayLike<number>, form: 'fit' | 8 | 16 | 32 = 'fit', claimed = bytes.length): Buffer {
  let head: number[]
  if (form === 'fit' && claimed < 32) head = [0xa0 | claimed]
  else if (form === 8 || (form === 'fit' && claimed < 0x100)) head = [0xd9, claimed & 0xff]
  else if (form === 16 || (form === 'fit' && claimed < 0x10000)) head = [0xda, ...u16(claimed)]
  else head = [0xdb, ...u32(claimed)]
  return cat(head, bytes)
}

export function text(value: string): Buffer {
  return str(Buffer.from(value, 'utf8'))
}

export function bin(bytes: ArrayLike<number>, form: 8 | 16 | 32 = 8, claimed = bytes.length): Buffer {
  const head = form === 8 ? [0xc4, claimed & 0xff] : form === 16 ? [0xc5, ...u16(claimed)] : [0xc6, ...u32(claimed)]
  return cat(head, bytes)
}

const FIXEXT: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 }

/** An extension of `type` whose data is `data`, as fixext when it fits (or the form asked for). */
export function ext(type: number, data: ArrayLike<number>, form: 'fit' | 8 | 16 | 32 = 'fit', claimed = data.length): Buffer {
  const fixed = FIXEXT[claimed]
  if (form === 'fit' && fixed !== undefined) return cat([fixed, type], data)
  if (form === 8 || (form === 'fit' && claimed < 0x100)) return cat([0xc7, claimed & 0xff, type], data)
  if (form === 16 || (form === 'fit' && claimed < 0x10000)) return cat([0xc8, ...u16(claimed), type], data)
  return cat([0xc9, ...u32(claimed), type], data)
}

/** msgpackr's form for extensions that read the next value (`read`/`write` extensions, Set, RegExp): fixext 1, a filler, the value. */
export function readExt(type: number, value: ArrayLike<number>): Buffer {
  return cat([0xd4, type, 0x00], value)
}

export function int(value: number): Buffer {
  if (Number.isInteger(value) && value >= 0 && value < 0x80) return Buffer.from([value])
  if (Number.isInteger(value) && value < 0 && value >= -32) return Buffer.from([value & 0xff])
  if (Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff) return cat([0xd2], i32(value))
  const bytes = Buffer.alloc(9)
  bytes[0] = 0xcb
  bytes.writeDoubleBE(value, 1)
  return bytes
}

export const NIL = Buffer.from([0xc0])

/**
 * `body` as the value after the row encoding's opening string: the header packRows
 * writes (`0x92 0xd6 0x62`, a bundle whose strings are `''` and `'rows'` at the end,
 * the reference to `'rows'`), so the decoder gets past its header check and reads `body`
 * as the rows.
 */
export function framed(body: ArrayLike<number>): Buffer {
  return cat([0x92, 0xd6, EXT.bundle, ...i32(body.length + 6), 0xc1, 0x04], body, [0xa0, 0xa4, 0x72, 0x6f, 0x77, 0x73])
}

/** Where {@link framed} puts the body. */
export const FRAMED_BODY_AT = 9

/** A Special (row-msgpack.ts) whose parts are the given tokens. */
export function special(parts: ReadonlyArray<ArrayLike<number>>): Buffer {
  return readExt(EXT.special, cat(arrayHeader(parts.length), ...parts))
}

/** A record definition (msgpackr's extension 0x72) with these key tokens, then the values of its first object. */
export function recordDefinition(id: number, keys: ReadonlyArray<ArrayLike<number>>, values: ReadonlyArray<ArrayLike<number>>, highByte?: number): Buffer {
  const head = highByte === undefined ? [0xd4, EXT.record, 0x40 | (id & 0x3f)] : [0xd5, EXT.record, 0x40 | (id & 0x3f), highByte & 0xff]
  return cat(head, arrayHeader(keys.length), ...keys, ...values)
}

/** Big-endian two's complement, as msgpackr's bigint extension holds it. */
export function bigintBytes(value: bigint, length: number): Buffer {
  const bytes = Buffer.alloc(length)
  let rest = BigInt.asUintN(length * 8, value)
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(rest & 0xffn)
    rest >>= 8n
  }
  return bytes
}

// ---------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------

const byte = fc.integer({ min: 0, max: 255 })
const smallBytes = fc.uint8Array({ maxLength: 40 })
/** Lengths a header may claim: honest, off by a little, or huge. */
const claim = (honest: number) =>
  fc.oneof(
    { arbitrary: fc.constant(honest), weight: 6 },
    fc.integer({ min: 0, max: honest + 8 }),
    fc.constantFrom(0xff, 0xffff, 0x7fffffff, 0xffffffff, 0xfffffff0),
  )

function stringToken(): fc.Arbitrary<Buffer> {
  return fc
    .tuple(
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 20 }).map((value) => Buffer.from(value, 'utf8')),
        smallBytes.map((bytes) => Buffer.from(bytes)),
        fc.constantFrom(...PROTOTYPE_KEYS).map((key) => Buffer.from(key)),
      ),
      fc.constantFrom<'fit' | 8 | 16 | 32>('fit', 8, 16, 32),
    )
    .chain(([bytes, form]) => claim(bytes.length).map((claimed) => str(bytes, form, fitting(form, claimed))))
}

/** `claimed`, cut to what a header of `form` can say. */
function fitting(form: 'fit' | 8 | 16 | 32, claimed: number): number {
  return form === 8 ? Math.min(claimed, 0xff) : form === 16 ? Math.min(claimed, 0xffff) : claimed
}

function scalarToken(): fc.Arbitrary<Buffer> {
  return fc.oneof(
    fc.constantFrom(NIL, Buffer.from([0xc2]), Buffer.from([0xc3])),
    fc.integer({ min: -32, max: 127 }).map(int),
    fc.tuple(fc.constantFrom(0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xca, 0xcb), fc.uint8Array({ minLength: 8, maxLength: 8 })).map(
      ([token, bytes]) => {
        const width: Record<number, number> = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8, 0xca: 4, 0xcb: 8 }
        return cat([token], bytes.subarray(0, width[token]))
      },
    ),
    fc.double().map(int),
    stringToken(),
    fc.tuple(smallBytes, fc.constantFrom<8 | 16 | 32>(8, 16, 32)).chain(([bytes, form]) => claim(bytes.length).map((claimed) => bin(bytes, form, fitting(form, claimed)))),
    // A C1: a reference into the string bundle in force (the opening one), followed by its length.
    fc.oneof(fc.integer({ min: -40, max: 40 }), fc.double()).map((length) => cat([0xc1], int(length))),
    // A record reference (0x40–0x7f) to a record that may not exist.
    fc.integer({ min: 0x40, max: 0x7f }).map((token) => Buffer.from([token])),
    // Any byte at all: the tokens msgpack leaves unused (0xc1 outside a bundle) included.
    byte.map((value) => Buffer.from([value])),
  )
}

/** Tokens whose data is garbage for their extension type. */
function extensionToken(value: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  const anyType = fc.oneof(fc.constantFrom(...Object.values(EXT)), byte)
  const form = fc.constantFrom<'fit' | 8 | 16 | 32>('fit', 'fit', 8, 16, 32)
  return fc.oneof(
    // Any type, any data, any form.
    fc.tuple(anyType, smallBytes, form).map(([type, data, f]) => ext(type, data, f)),
    // A claimed data length beyond the bytes.
    fc.tuple(anyType, smallBytes, fc.constantFrom<8 | 16 | 32>(8, 16, 32), fc.constantFrom(0xff, 0xffff, 0xffffffff)).map(([type, data, f, claimed]) =>
      ext(type, data, f, fitting(f, claimed)),
    ),
    // The "read" form (next value is the payload) with any value, for every type.
    fc.tuple(anyType, value).map(([type, payload]) => readExt(type, payload)),
    // Typed arrays: every code (16 and 17 were ArrayBuffer and DataView), any length.
    fc.tuple(fc.integer({ min: 0, max: 24 }), smallBytes).map(([code, data]) => ext(EXT.typedArray, cat([code], data))),
    // Bigints around the cap (1024 bytes), and empty.
    fc.tuple(fc.integer({ min: 0, max: 1100 }), byte).map(([length, fill]) => ext(EXT.bigint, Buffer.alloc(length, fill))),
    // Timestamps (msgpack's -1), 4, 8, 12 bytes and others.
    fc.tuple(fc.constantFrom(1, 2, 4, 8, 12, 16), byte).map(([length, fill]) => ext(EXT.timestamp, Buffer.alloc(length, fill))),
    // Dates from anything: NaN, huge, strings, bigints.
    fc
      .oneof(value, fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, 8.64e15 + 1, -8.64e15 - 1, 1e300).map(int))
      .map((payload) => readExt(EXT.date, payload)),
    value.map((payload) => readExt(EXT.url, payload)),
    value.map((payload) => readExt(EXT.set, payload)),
    value.map((payload) => readExt(EXT.regexp, payload)),
    fc.tuple(stringToken(), stringToken()).map(([source, flags]) => readExt(EXT.regexp, cat([0x92], source, flags))),
    // Structured clone ids and pointers (disabled), Errors (refused).
    fc.tuple(fc.constantFrom(EXT.cloneId, EXT.clonePointer), fc.uint8Array({ minLength: 4, maxLength: 4 }), value).map(([type, id, payload]) => cat(ext(type, id), payload)),
    value.map((payload) => readExt(EXT.error, payload)),
    // A string bundle pointing anywhere (the opening one stays in force before it).
    fc.tuple(fc.integer({ min: -200_000, max: 200_000 }), value).map(([offset, payload]) => cat(ext(EXT.bundle, i32(offset)), payload)),
  )
}

/** Specials (row-msgpack.ts) with every tag, and registered-class names over garbage payloads. */
function specialToken(value: fc.Arbitrary<Buffer>, names: readonly string[]): fc.Arbitrary<Buffer> {
  const key = fc.oneof(fc.constantFrom(...PROTOTYPE_KEYS).map(text), stringToken(), value)
  return fc.oneof(
    fc.array(value, { maxLength: 5 }).map((parts) => special(parts)),
    fc.array(value, { maxLength: 3 }).map((extra) => special([int(SPECIAL.negativeZero), ...extra])),
    fc
      .oneof(
        fc.string({ unit: 'binary', maxLength: 10 }).map((s) => JSON.stringify(s)),
        fc.jsonValue({ maxDepth: 2 }).map((json) => JSON.stringify(json)),
        fc.string({ maxLength: 12 }),
        fc.constant('['.repeat(5000)),
      )
      .map((json) => special([int(SPECIAL.illFormedString), text(json)])),
    fc.tuple(fc.constantFrom(NIL, Buffer.from([0xc2]), Buffer.from([0xc3])), fc.array(fc.tuple(key, value), { maxLength: 5 }), fc.boolean()).map(
      ([bare, pairs, odd]) => special([int(SPECIAL.oddObject), bare, ...pairs.flat(), ...(odd ? [NIL] : [])]),
    ),
    fc.tuple(fc.oneof(fc.constantFrom(...names, 'Buffer', 'kysely-memcache:unfaithful', '').map(text), value), value).map(([name, payload]) =>
      special([int(SPECIAL.custom), name, payload]),
    ),
  )
}

/** Record definitions and references: non-string keys, prototype keys, huge claims, ids that do not exist. */
function recordToken(value: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  const key = fc.oneof(
    { arbitrary: fc.constantFrom(...PROTOTYPE_KEYS).map(text), weight: 2 },
    { arbitrary: fc.string({ maxLength: 8 }).map(text), weight: 3 },
    value,
    fc.integer({ min: 8, max: 1024 }).map((length) => ext(EXT.bigint, Buffer.alloc(length, 0x7f))),
  )
  return fc.oneof(
    fc
      .tuple(fc.integer({ min: 0, max: 63 }), fc.array(key, { maxLength: 6 }), fc.array(value, { maxLength: 6 }), fc.option(byte, { nil: undefined }))
      .map(([id, keys, values, high]) => recordDefinition(id, keys, values, high)),
    // The structure is not an array of keys.
    fc.tuple(fc.integer({ min: 0, max: 63 }), value).map(([id, structure]) => cat([0xd4, EXT.record, 0x40 | id], structure)),
    // A structure claiming more keys than there are bytes.
    fc.tuple(fc.integer({ min: 0, max: 63 }), fc.constantFrom<16 | 32>(16, 32)).map(([id, form]) => cat([0xd4, EXT.record, 0x40 | id], arrayHeader(0xffff, form), text('a'))),
    // A definition, then references to it and to others.
    fc.tuple(fc.integer({ min: 0, max: 63 }), fc.array(key, { minLength: 1, maxLength: 3 }), fc.array(value, { minLength: 3, maxLength: 3 }), fc.integer({ min: 0x40, max: 0x7f })).map(
      ([id, keys, values, other]) => cat(arrayHeader(3), recordDefinition(id, keys, keys.map(() => NIL)), [0x40 | id], ...keys.map((_, i) => values[i % values.length]!), [other]),
    ),
  )
}

/**
 * One MessagePack value as a hostile writer might make it: any token, nested arrays
 * and maps with honest or lying counts, every extension with garbage, records, Specials.
 * `names`: registered type names the decoder knows.
 */
export function hostileValue(names: readonly string[] = []): fc.Arbitrary<Buffer> {
  const { value } = fc.letrec<{ value: Buffer }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { arbitrary: scalarToken(), weight: 6 },
      {
        arbitrary: fc.array(tie('value'), { maxLength: 5 }).chain((items) => claim(items.length).map((count) => cat(arrayHeader(Math.min(count, 0xffffffff)), ...items))),
        weight: 3,
      },
      {
        arbitrary: fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 4 }).chain((pairs) =>
          claim(pairs.length).map((count) => cat(mapHeader(Math.min(count, 0xffffffff)), ...pairs.flat())),
        ),
        weight: 2,
      },
      { arbitrary: extensionToken(tie('value')), weight: 2 },
      { arbitrary: specialToken(tie('value'), names), weight: 2 },
      { arbitrary: recordToken(tie('value')), weight: 2 },
    ),
  }))
  return value
}

/** Rows as a hostile writer might make them: usually an array of hostile values (the decoder wants one), else anything. */
export function hostileBody(names: readonly string[] = []): fc.Arbitrary<Buffer> {
  const value = hostileValue(names)
  return fc.oneof(
    { arbitrary: fc.array(value, { maxLength: 6 }).map((items) => cat(arrayHeader(items.length), ...items)), weight: 4 },
    value,
    // Trailing bytes after the rows.
    fc.tuple(fc.array(value, { maxLength: 3 }), smallBytes).map(([items, tail]) => cat(arrayHeader(items.length), ...items, tail)),
  )
}

/** How each kind of container nests one level (a few bytes each). */
export const NESTING_LEVELS: Readonly<Record<string, Buffer>> = {
  array: Buffer.from([0x91]),
  map: Buffer.from([0x81, 0xa0]),
  Set: cat(readExt(EXT.set, []), [0x91]),
  'odd object': cat([0xd4, EXT.special, 0x00, 0x94, SPECIAL.oddObject, 0xc2, 0xa1, 0x6b]),
  record: recordDefinition(0, [text('k')], []),
  array16: Buffer.from([0xdc, 0x00, 0x01]),
}

/** `depth` levels of `kind`, then nil: a value `depth` containers deep. */
export function nestedValue(kind: keyof typeof NESTING_LEVELS, depth: number): Buffer {
  const level = NESTING_LEVELS[kind]!
  return cat(Buffer.alloc(level.length * depth).fill(level), NIL)
}

/** Nesting thousands of levels deep: arrays, maps, Sets, Specials, records, each level a few bytes. */
export function deepNesting(): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.constantFrom(...Object.keys(NESTING_LEVELS)), fc.oneof(fc.integer({ min: 990, max: 1010 }), fc.integer({ min: 1000, max: 60_000 })), fc.boolean())
    .map(([kind, depth, wrap]) => (wrap ? cat([0x91], nestedValue(kind, depth)) : nestedValue(kind, depth)))
}

/**
 * String bundle bombs (a whole buffer, header included): `copies` bundles each pointing
 * back (or forward) at one long string, each followed by a reference that keeps a slice
 * of it alive. Before the decoder counted bundle bytes, 440 kB of these exhausted a 1.5 GB heap.
 */
export function bundleBomb(): fc.Arbitrary<Buffer> {
  return fc
    .record({
      length: fc.integer({ min: 100, max: 60_000 }),
      copies: fc.integer({ min: 1, max: 4000 }),
      backwards: fc.boolean(),
      form: fc.constantFrom<'fixext4' | 'fixext8' | 'ext8' | 'ext16' | 'ext32'>('fixext4', 'fixext8', 'ext8', 'ext16', 'ext32'),
      long: fc.constantFrom<16 | 32>(16, 32),
      // The first string: empty, or a byte below 0xa0 (a "fixstr" of negative length, after which
      // msgpackr reads the second string at the very next byte, since that one is not ASCII).
      first: fc.constantFrom(0xa0, 0x05, 0x9f),
    })
    .map(({ length, copies, backwards, form, long, first }) => {
      const header = (offset: number): Buffer => {
        const data = [...i32(offset), ...(form === 'fixext8' ? [0, 0, 0, 0] : [])]
        if (form === 'fixext4' || form === 'fixext8') return ext(EXT.bundle, data)
        return ext(EXT.bundle, data, form === 'ext8' ? 8 : form === 'ext16' ? 16 : 32)
      }
      const strings = cat([first], str(Buffer.alloc(length, 0x78), long))
      const headerSize = header(0).length
      // msgpackr reads the strings at the start of the data plus the offset the data holds.
      const dataAt = headerSize - (form === 'fixext8' ? 8 : 4)
      const element = (at: number, target: number) => cat(header(target - (at + dataAt)), [0xc1, 0x0d])
      const parts: Buffer[] = []
      // In framed coordinates: the body starts at FRAMED_BODY_AT.
      let at = FRAMED_BODY_AT + 5
      if (backwards) {
        const target = at
        parts.push(strings)
        at += strings.length
        for (let i = 0; i < copies; i++) {
          const piece = element(at, target)
          parts.push(piece)
          at += piece.length
        }
        return framed(cat(arrayHeader(copies + 2, 32), ...parts))
      }
      const elementSize = headerSize + 2
      const target = at + copies * elementSize
      for (let i = 0; i < copies; i++) {
        const piece = element(at, target)
        parts.push(piece)
        at += piece.length
      }
      parts.push(strings)
      return framed(cat(arrayHeader(copies + 2, 32), ...parts))
    })
}

/** Many record definitions keyed by the largest bigints the decoder accepts (msgpackr turns keys into text). */
export function bigintKeyBomb(): fc.Arbitrary<Buffer> {
  return fc.tuple(fc.integer({ min: 1, max: 120 }), fc.integer({ min: 512, max: 1100 })).map(([count, length]) => {
    const key = ext(EXT.bigint, cat([0x7f], Buffer.alloc(length - 1, 0xff)))
    const items = Array.from({ length: count }, (_, i) => recordDefinition(i % 64, [key], [NIL]))
    return framed(cat(arrayHeader(count, 32), ...items))
  })
}

/** Length headers claiming far more than the bytes hold, in a few bytes: each must be refused before anything is allocated. */
export function hugeClaims(): fc.Arbitrary<Buffer> {
  const huge = fc.constantFrom(0xffffffff, 0x7fffffff, 0x10000000, 0xffff)
  return fc
    .tuple(
      fc.constantFrom('array', 'map', 'str', 'bin', 'ext', 'nested arrays', 'record'),
      huge,
      fc.boolean(),
    )
    .map(([kind, count, inRows]) => {
      let token: Buffer
      switch (kind) {
        case 'array':
          token = Buffer.from(arrayHeader(count, count > 0xffff ? 32 : 16))
          break
        case 'map':
          token = Buffer.from(mapHeader(count, count > 0xffff ? 32 : 16))
          break
        case 'str':
          token = str([], count > 0xffff ? 32 : 16, count)
          break
        case 'bin':
          token = bin([], count > 0xffff ? 32 : 16, count)
          break
        case 'ext':
          token = ext(EXT.buffer, [], count > 0xffff ? 32 : 16, count)
          break
        case 'nested arrays':
          // Each array fits what is left; together they claim the square of it.
          token = cat(...Array.from({ length: 200 }, () => arrayHeader(0xffff, 16)))
          break
        default:
          token = cat([0xd4, EXT.record, 0x40], arrayHeader(count, 32))
      }
      return inRows ? framed(cat([0x91], token)) : framed(token)
    })
}
