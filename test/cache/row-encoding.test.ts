import { deepStrictEqual } from 'node:assert/strict'
import { Unpackr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import type { CacheType } from '../../src/cache/cache-type.js'
import { RowEncoding } from '../../src/cache/row-encoding.js'
import { Decimal, decimalType } from '../harness/decimal.js'

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

/** A registered type whose methods need `this` (a private field throws when called through anything else). */
class PointType implements CacheType<Point, number[]> {
  readonly name = 'Point'
  readonly #scale: number
  deserialized = 0
  constructor(scale: number) {
    this.#scale = scale
  }
  isApplicable(value: unknown): value is Point {
    return value instanceof Point
  }
  serialize(value: Point): number[] {
    return [value.x * this.#scale, value.y * this.#scale]
  }
  deserialize(value: number[]): Point {
    this.deserialized++
    return new Point(value[0]! / this.#scale, value[1]! / this.#scale)
  }
}

type Row = Record<string, unknown>

function roundTrip(rows: readonly unknown[], encoding = new RowEncoding([])): unknown[] {
  const bytes = encoding.encode(rows)
  if (!Buffer.isBuffer(bytes)) throw new Error(`refused: ${JSON.stringify(bytes)}`)
  return encoding.decode(bytes)
}

/** One value of each kind the encoding keeps, as a driver (or jsonb) returns them. */
function everyKind(): Row {
  return {
    nul: null,
    und: undefined,
    yes: true,
    no: false,
    int: 42,
    negative: -7,
    float: 1.5,
    negativeZero: -0,
    nan: Number.NaN,
    inf: Number.POSITIVE_INFINITY,
    negInf: Number.NEGATIVE_INFINITY,
    maxSafe: Number.MAX_SAFE_INTEGER,
    beyond32: 2 ** 40 + 1,
    empty: '',
    short: 'abc',
    text: 'Lorem ipsum dolor sit amet',
    unicode: 'ünïcödé 日本語 👍🏽 e\u0301',
    long: 'x'.repeat(5000),
    longUnicode: '日'.repeat(5000),
    big: 9007199254740993n,
    bigZero: 0n,
    bigNegative: -1n,
    bigMax64: 2n ** 63n - 1n,
    bigMin64: -(2n ** 63n),
    bigU64: 2n ** 64n - 1n,
    bigHuge: 2n ** 1000n + 7n,
    bigHugeNegative: -(2n ** 300n) + 1n,
    date: new Date('1990-05-17T08:30:00.123Z'),
    epoch: new Date(0),
    old: new Date('1066-10-14T12:00:00.001Z'),
    maxDate: new Date(8.64e15),
    minDate: new Date(-8.64e15),
    buffer: Buffer.from([0, 1, 254, 255]),
    emptyBuffer: Buffer.alloc(0),
    bigBuffer: Buffer.alloc(70_000, 7),
    u8: new Uint8Array([3, 4]),
    u8c: new Uint8ClampedArray([255]),
    i8: new Int8Array([-1]),
    i16: new Int16Array([-300]),
    u16: new Uint16Array(new ArrayBuffer(16), 4, 2).fill(9),
    i32: new Int32Array([-1 << 30]),
    u32: new Uint32Array([2 ** 32 - 1]),
    f32: new Float32Array([1.25, -0]),
    f64: new Float64Array([Number.NaN, -0, 1e300]),
    i64: new BigInt64Array([-(2n ** 63n), 1n]),
    u64: new BigUint64Array([2n ** 64n - 1n]),
    map: new Map<unknown, unknown>([
      ['k', 1],
      [{ a: 1 }, new Set([1n, 'x'])],
      [2n, new Date(5)],
    ]),
    set: new Set([1, 'two', null, undefined, { three: 3 }]),
    regexp: /a\/b[c-d]+$/giu,
    url: new URL('https://user:pw@example.com:8080/p/a?q=1&r=%20#frag'),
    array: [1, 'two', null, undefined, [3, [4]], { five: 5 }],
    jsonb: JSON.parse('{"tags":["a","b",null],"rank":1,"nested":{"ok":true,"none":null,"ratio":0.14285714285714285}}') as unknown,
    emptyObject: {},
    emptyArray: [],
    bare: Object.assign(Object.create(null) as object, { k: 1, nested: Object.create(null) as object }),
    oddKeys: JSON.parse('{"__proto__":{"polluted":true},"constructor":"c","prototype":1,"toJSON":"t","hasOwnProperty":2,"valueOf":3,"0":"zero"}') as unknown,
  }
}

describe('RowEncoding round trip', () => {
  it('brings back every kind of value as itself, class included', () => {
    const row = everyKind()
    const [back] = roundTrip([row]) as Row[]
    deepStrictEqual(back, row)
    for (const [column, value] of Object.entries(row)) {
      if (value === null || value === undefined) continue
      expect(Object.getPrototypeOf(back![column]), column).toBe(Object.getPrototypeOf(value))
    }
    expect(Object.is(back!.negativeZero, -0)).toBe(true)
    expect(Buffer.isBuffer(back!.buffer)).toBe(true)
    expect(Buffer.isBuffer(back!.u8)).toBe(false)
    expect(Object.getPrototypeOf((back!.bare as Row).nested)).toBeNull()
    expect((back!.url as URL).href).toBe((row.url as URL).href)
    expect((back!.regexp as RegExp).flags).toBe('giu')
    expect(Object.keys(back!)).toEqual(Object.keys(row))
    expect('und' in back!).toBe(true)
  })

  it('keeps the same values nested in arrays, objects, maps and sets', () => {
    const row = everyKind()
    const nested = { list: Object.values(row), object: { ...row }, map: new Map(Object.entries(row)), set: new Set(Object.values(row)) }
    const [back] = roundTrip([nested])
    deepStrictEqual(back, nested)
  })

  it('keeps lone surrogates, in values and keys, short and long', () => {
    const texts = ['\ud800', 'a\udc00b', '\udc00\ud800', `${'x'.repeat(100)}\ud83d`, '\ud83d'.repeat(5000), 'ok \ud83d\udc4d']
    const row: Row = Object.fromEntries(texts.map((text, i) => [`c${i}`, text]))
    for (const text of texts) row[text] = text
    const [back] = roundTrip([row]) as Row[]
    deepStrictEqual(back, row)
    expect(Object.keys(back!)).toEqual(Object.keys(row))
  })

  it('keeps keys like __proto__ and constructor as data: no prototype is touched', () => {
    const rows = [JSON.parse('{"__proto__":{"polluted":1},"a":{"__proto__":{"polluted":2}},"constructor":{"prototype":{"polluted":3}}}')]
    const [back] = roundTrip(rows) as Row[]
    deepStrictEqual(back, rows[0])
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
    expect(Object.getOwnPropertyNames(back)).toEqual(['__proto__', 'a', 'constructor'])
    expect(Object.getOwnPropertyDescriptor(back!.a, '__proto__')?.value).toEqual({ polluted: 2 })
    expect(({} as Row).polluted).toBeUndefined()
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false)
  })

  it('keeps rows of any value, an empty result, holes as undefined and null-prototype rows', () => {
    deepStrictEqual(roundTrip([]), [])
    deepStrictEqual(roundTrip([1, 'x', null, undefined, [2], -0]), [1, 'x', null, undefined, [2], -0])
    // eslint-disable-next-line no-sparse-arrays
    deepStrictEqual(roundTrip([{ holes: [1, , 3] }]), [{ holes: [1, undefined, 3] }])
    const bare = Object.assign(Object.create(null) as object, { id: 1 })
    const [back] = roundTrip([bare])
    expect(Object.getPrototypeOf(back)).toBeNull()
    deepStrictEqual(back, bare)
  })

  it('keeps many object shapes, more than msgpackr has record ids for one buffer', () => {
    const rows = Array.from({ length: 300 }, (_, i) => ({ id: i, meta: { [`k${i % 150}`]: i, [`x${i % 7}`]: [{ [`deep${i % 90}`]: i }] } }))
    deepStrictEqual(roundTrip(rows), rows)
  })

  it('keeps a large result, its strings in several bundles (Latin-1 and not, short and long)', () => {
    const rows = Array.from({ length: 3000 }, (_, i) => ({
      id: i,
      text: `row ${i} `.repeat(1 + (i % 40)),
      wide: `行 ${i} ü`.repeat(1 + (i % 7)),
      tiny: String(i % 10),
      at: new Date(1_700_000_000_000 + i),
    }))
    deepStrictEqual(roundTrip(rows), rows)
  })

  it('writes each buffer self-contained: read in any order, by a fresh instance, after other writes', () => {
    const writer = new RowEncoding([])
    const results = Array.from({ length: 20 }, (_, n) =>
      Array.from({ length: n + 1 }, (_, i) => ({ id: i, [`col${n}`]: `value ${n} ${i}`, meta: { [`m${(n + i) % 5}`]: { n, i } } })),
    )
    const encoded = results.map((rows) => writer.encode(rows) as Buffer)
    for (let i = 0; i < 50; i++) writer.encode([{ other: i, shape: { [`s${i}`]: 'x'.repeat(i) } }])
    for (let i = results.length - 1; i >= 0; i--) {
      deepStrictEqual(new RowEncoding([]).decode(encoded[i]!), results[i])
      // Plain data is plain MessagePack with msgpackr's records: another module instance reads it
      // (after the opening string that puts a string bundle in force: see row-msgpack.ts).
      deepStrictEqual(new Unpackr({ mapsAsObjects: false }).unpack(encoded[i]!), ['rows', results[i]])
    }
  })

  it('reads from a Uint8Array as from a Buffer, and does not share memory with it', () => {
    const rows = [{ buffer: Buffer.from([1, 2, 3]), f64: new Float64Array([1.5]) }]
    const bytes = new RowEncoding([]).encode(rows) as Buffer
    const copy = new Uint8Array(bytes)
    const [back] = new RowEncoding([]).decode(copy) as Row[]
    deepStrictEqual(back, rows[0])
    copy.fill(0)
    expect([...(back!.buffer as Buffer)]).toEqual([1, 2, 3])
  })
})

describe('RowEncoding registered types', () => {
  it('round-trips registered classes anywhere, through the user objects (`this` kept)', () => {
    const points = new PointType(10)
    const encoding = new RowEncoding([decimalType, points])
    const rows = [
      { p: new Point(1, 2), dec: new Decimal('1.10'), list: [new Decimal('2'), null], map: new Map([['p', new Point(3, 4)]]) },
      { p: null, dec: new Decimal('-0.5'), nested: { deep: [new Set([new Point(5, 6)])] } },
    ]
    const back = roundTrip(rows, encoding) as Row[]
    deepStrictEqual(back, rows)
    expect(back[0]!.p).toBeInstanceOf(Point)
    expect(back[0]!.dec).toBeInstanceOf(Decimal)
    expect(points.deserialized).toBe(3)
    // A row that is a registered class.
    deepStrictEqual(roundTrip([new Point(7, 8)], encoding), [new Point(7, 8)])
  })

  it('asks registered types first, about every value, and not about their own payloads', () => {
    const seen: unknown[] = []
    const upper: CacheType<string, string> = {
      name: 'Shout',
      isApplicable: (value): value is string => (seen.push(value), typeof value === 'string' && value.startsWith('!')),
      serialize: (value) => value.toUpperCase(),
      deserialize: (value) => `${value.toLowerCase()}`,
    }
    const encoding = new RowEncoding([upper])
    const [back] = roundTrip([{ a: '!hey', b: 'plain' }], encoding) as Row[]
    expect(back).toEqual({ a: '!hey', b: 'plain' })
    expect(seen).toContain('plain')
    expect(seen).not.toContain('!HEY')
  })

  it('runs no code of the application on decode but deserialize', () => {
    let asked = 0
    const counted: CacheType<Point, number[]> = {
      name: 'Point',
      isApplicable: (value): value is Point => (asked++, value instanceof Point),
      serialize: (value) => (asked++, [value.x, value.y]),
      deserialize: ([x, y]) => new Point(x!, y!),
    }
    const encoding = new RowEncoding([counted])
    const bytes = encoding.encode([{ p: new Point(1, 2), n: 1 }]) as Buffer
    asked = 0
    deepStrictEqual(encoding.decode(bytes), [{ p: new Point(1, 2), n: 1 }])
    expect(asked).toBe(0)
  })

  it('does not read values of a type it does not have', () => {
    const bytes = new RowEncoding([new PointType(1)]).encode([{ p: new Point(1, 2) }]) as Buffer
    expect(() => new RowEncoding([decimalType]).decode(bytes)).toThrow(/"Point"/)
  })
})

describe('RowEncoding refusals', () => {
  class Stamp extends Date {}
  class Registry extends Map<string, number> {}
  class Rows extends Array<number> {}

  it('refuses values that would come back as another class, naming the column and the class', () => {
    const encoding = new RowEncoding([decimalType])
    const cases: Array<[unknown, string]> = [
      [new Point(1, 2), 'Point'],
      [[{ inner: [new Point(1, 2)] }], 'Point'],
      [new Map([['p', new Point(0, 0)]]), 'Point'],
      [new Set([() => 1]), 'Function'],
      [new Stamp(0), 'Stamp'],
      [new Registry([['a', 1]]), 'Registry'],
      [Rows.from([1]), 'Rows'],
      [new Error('boom'), 'Error'],
      [new TypeError('boom'), 'TypeError'],
      [new Date(Number.NaN), 'Date'],
      [() => 1, 'Function'],
      [Symbol('s'), 'symbol'],
      [{ s: Symbol('s') }, 'symbol'],
      [Object(1), 'Number'],
      [new WeakMap(), 'WeakMap'],
      [Promise.resolve(1), 'Promise'],
      [new ArrayBuffer(1), 'ArrayBuffer'],
      [new DataView(new ArrayBuffer(1)), 'DataView'],
      [Object.create({ inherited: 1 }), 'anonymous class'],
    ]
    for (const [value, className] of cases) {
      expect(encoding.encode([{ ok: 1 }, { ok: 2, col: value }]), className).toEqual({ column: 'col', className, reason: 'class' })
    }
    // A registered class is fine, and so is plain JSON.
    expect(Buffer.isBuffer(encoding.encode([{ col: new Decimal('1'), j: { a: [1] } }]))).toBe(true)
    // A row that is itself of another class: no column to name.
    expect(encoding.encode([new Point(1, 2)])).toEqual({ column: '?', className: 'Point', reason: 'class' })
  })

  it('refuses what cannot be written, naming the column and the class of its value', () => {
    const circular: Row = { a: 1 }
    circular.self = circular
    expect(new RowEncoding([]).encode([{ ok: 1, c: circular }])).toMatchObject({ column: 'c', className: 'Object', reason: 'encode' })
    const failing: CacheType<Point, never> = {
      name: 'Point',
      isApplicable: (value): value is Point => value instanceof Point,
      serialize: () => {
        throw new Error('no way')
      },
      deserialize: () => new Point(0, 0),
    }
    expect(new RowEncoding([failing]).encode([{ a: 1, p: [new Point(1, 2)] }])).toEqual({
      column: 'p',
      className: 'Array',
      reason: 'encode',
      detail: 'Point.serialize failed: no way',
    })
    const getter = { a: 1, get broken(): never { throw new Error('getter') } }
    expect(new RowEncoding([]).encode([getter])).toMatchObject({ column: 'broken', reason: 'encode', detail: 'getter' })
  })
})

describe('RowEncoding reading bytes it did not write', () => {
  const encoding = new RowEncoding([decimalType, new PointType(2)])
  const valid = encoding.encode([
    { ...everyKind(), long: 'x'.repeat(50), longUnicode: '日本', bigBuffer: Buffer.alloc(3), p: new Point(1, 2), dec: new Decimal('3.50') },
    { id: 2, meta: { tags: ['a'], odd: JSON.parse('{"__proto__":1}') as unknown }, lone: '\ud800' },
  ]) as Buffer

  it('throws on garbage, truncation and trailing bytes', () => {
    expect(() => encoding.decode(new Uint8Array(0))).toThrow()
    expect(() => encoding.decode(Buffer.from('k2.abcdefgh\n1,2\n{"json":[]}'))).toThrow()
    for (let end = 0; end < valid.length; end++) {
      expect(() => encoding.decode(valid.subarray(0, end)), `first ${end} bytes`).toThrow()
    }
    expect(() => encoding.decode(Buffer.concat([valid, Buffer.from([0xc0])]))).toThrow()
  })

  it('throws when the bytes hold something other than rows', () => {
    // Plain MessagePack without the opening string.
    expect(() => encoding.decode(Buffer.from([0x2a]))).toThrow(/malformed header/)
    expect(() => encoding.decode(Buffer.from([0x91, 0x80]))).toThrow(/malformed header/)
    // The opening string, then a value that is not an array (0x2a), or a wrong opening string.
    const opened = (value: number) => Buffer.from([0x92, 0xd6, 0x62, 0, 0, 0, 7, 0xc1, 0x04, value, 0xa0, 0xa4, 0x72, 0x6f, 0x77, 0x73])
    expect(encoding.decode(opened(0x90))).toEqual([])
    expect(() => encoding.decode(opened(0x2a))).toThrow(/row array/)
    const wrongOpener = Buffer.from(opened(0x90))
    wrongOpener[15] = 0x78
    expect(() => encoding.decode(wrongOpener)).toThrow(/malformed header/)
  })

  it('treats data shaped like its extensions as data', () => {
    const rows = [{ parts: [2, true, '__proto__', { polluted: 1 }] }, [0], [3, 'Point', [1, 2]], { d4: '\u00d4k\u0000', type: 0x6b, 'Point': [1, 2] }]
    deepStrictEqual(roundTrip(rows, encoding), rows)
  })

  // Random bytes, mutations and crafted MessagePack by the hundred thousand: test/fuzz (npm run fuzz).
  // Here, each hostile input the fuzzing found, as the value or failure it now gives.

  /** `body` as the rows after the opening string packRows writes (see row-msgpack.ts). */
  function framed(body: number[]): Buffer {
    const length = body.length + 6
    return Buffer.from([0x92, 0xd6, 0x62, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff, 0xc1, 0x04, ...body, 0xa0, 0xa4, 0x72, 0x6f, 0x77, 0x73])
  }

  it('throws only TypeErrors: truncated, trailing, nested too deep for the stack', () => {
    for (const bytes of [Buffer.alloc(0), valid.subarray(0, 40), Buffer.concat([valid, Buffer.from([0xc0])]), framed([...Array(100_000).fill(0x91), 0xc0])]) {
      expect(() => encoding.decode(bytes)).toThrow(TypeError)
    }
  })

  it('refuses rows nested deeper than it writes, which msgpackr reads but what reads the rows next may not', () => {
    // 4000 arrays: msgpackr reads them, Kysely's ParseJSONResultsPlugin then overflowed the stack (a failed query).
    const nestedRows = (depth: number) => framed([0x91, ...Array(depth).fill(0x91), 0xc0])
    expect(() => encoding.decode(nestedRows(4000))).toThrow(/deeper than 1000/)
    expect(() => encoding.decode(nestedRows(1002))).toThrow(/deeper than 1000/)
    // The row at depth 0, its deepest array at 1000: what the encoder still writes.
    expect(encoding.decode(nestedRows(1001))).toHaveLength(1)
  })

  it('builds nothing the encoder does not write: no C1 marker, ArrayBuffer, DataView, invalid Date, Set of characters', () => {
    // Without a string bundle in force msgpackr reads 0xc1 as its C1 marker object: the opening
    // string puts one in force before any value, so 0xc1 is a reference into it, and bytes without it are refused.
    expect(() => encoding.decode(Buffer.from([0x91, 0xc1]))).toThrow(TypeError)
    // (The opening reference took all of its 4 characters: a reference after it reads ''.)
    expect(encoding.decode(framed([0x92, 0xc1, 0x02, 0xc0]))).toEqual(['', null])
    const refused: Array<[string, number[]]> = [
      ['typed array code 16 (ArrayBuffer)', [0x91, 0xd5, 0x74, 16, 1]],
      ['typed array code 17 (DataView)', [0x91, 0xd6, 0x74, 17, 1, 2, 3]],
      ['a msgpack timestamp (type -1), invalid', [0x91, 0xd5, 0xff, 1, 2]],
      ['a msgpack timestamp (type -1), valid', [0x91, 0xd6, 0xff, 0, 0, 0, 1]],
      ['a Date of NaN', [0x91, 0xd4, 0x64, 0x00, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]],
      ['a Set of a string', [0x91, 0xd4, 0x73, 0x00, 0xa3, 0x61, 0x62, 0x63]],
      ['a RegExp of a number', [0x91, 0xd4, 0x78, 0x00, 0x92, 0x01, 0xa0]],
      ['an Error', [0x91, 0xd4, 0x65, 0x00, 0x92, 0xa1, 0x61, 0xa1, 0x62]],
    ]
    for (const [what, body] of refused) {
      expect(() => encoding.decode(framed(body)), what).toThrow(TypeError)
      expect(() => encoding.decode(Buffer.from(body)), what).toThrow(TypeError)
    }
  })

  it('copies msgpack bin values: decoded rows share no memory with the bytes', () => {
    const bytes = framed([0x91, 0xc4, 0x02, 0x07, 0x08])
    const [bin] = encoding.decode(bytes) as Uint8Array[]
    bytes.fill(0)
    expect([...bin!]).toEqual([7, 8])
  })

  it('refuses string bundles that point many times at one string (decoded once each, it exhausted the heap)', () => {
    // 3000 bundles, each pointing back at one 60 kB string and keeping a slice of it: 180 MB from 84 kB.
    const copies = 3000
    const big = [0xa0, 0xdb, 0, 0, 0xea, 0x60, ...Array(60_000).fill(0x78)]
    const body = [0xdd, 0, 0, (copies + 2) >> 8, (copies + 2) & 0xff, ...big]
    for (let i = 0; i < copies; i++) {
      const data = 9 + body.length + 2
      const offset = (9 + 5 - data) >>> 0
      body.push(0xd6, 0x62, offset >>> 24, (offset >>> 16) & 0xff, (offset >>> 8) & 0xff, offset & 0xff, 0xc1, 0x0d)
    }
    const started = performance.now()
    expect(() => encoding.decode(framed(body))).toThrow(/string bundle/)
    expect(performance.now() - started).toBeLessThan(100)
  })

  it('caps bigints at 8192 bits both ways: longer ones are refused on encode and on decode', () => {
    expect(Buffer.isBuffer(new RowEncoding().encode([{ n: 2n ** 8191n - 1n, m: -(2n ** 8191n) }]))).toBe(true)
    expect(new RowEncoding().encode([{ n: 2n ** 8191n }])).toMatchObject({ column: 'n', reason: 'encode', detail: 'bigint beyond 8192 bits' })
    // A record keyed by a 2 kB bigint: msgpackr would turn it into decimal text, superlinear in its size.
    const key = [0xc8, 0x08, 0x00, 0x42, ...Array(2048).fill(0x7f)]
    expect(() => encoding.decode(framed([0x91, 0xd4, 0x72, 0x40, 0x91, ...key, 0xc0]))).toThrow(/bigint/)
  })

  it('changes no prototype, whatever keys records, Specials and maps hold', () => {
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype)
    const keys = ['__proto__', 'constructor', 'prototype'].map((key) => [0xa0 | key.length, ...Buffer.from(key)])
    const polluting = [0x81, 0xa8, ...Buffer.from('polluted'), 0xc3]
    const records = keys.map((key) => [0xd4, 0x72, 0x40, 0x91, ...key, ...polluting])
    const special = [0xd4, 0x6b, 0x00, 0x98, 0x02, 0xc2, ...keys.flatMap((key) => [...key, ...polluting])]
    for (const body of [...records, special]) {
      // Keys stay data (a record's `__proto__` comes back as `__proto_`, a Special's as itself).
      const [row] = encoding.decode(framed([0x91, ...body])) as Row[]
      expect(Object.getPrototypeOf(row)).toBe(Object.prototype)
    }
    expect(Object.getOwnPropertyNames(Object.prototype)).toEqual(prototypeKeys)
    expect(({} as Row).polluted).toBeUndefined()
  })

})
