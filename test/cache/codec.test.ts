import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Codec } from '../../src/cache/codec.js'
import { createQueryCache } from '../../src/index.js'
import { createSchema, openPglite, type TestDatabase } from '../harness/database.js'
import { closeClient, createClient, type Client } from '../harness/farm.js'
import { Decimal, decimalType } from '../harness/decimal.js'

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}
class Stamp extends Date {}
class Registry extends Map<string, number> {}

const pointType = {
  name: 'Point',
  isApplicable: (value: unknown): value is Point => value instanceof Point,
  serialize: (value: Point) => [value.x, value.y],
  deserialize: ([x, y]: [number, number]) => new Point(x, y),
}

/** What pg returns, one column of each kind. */
const driverRow = () => ({
  d: new Date('1990-05-17T08:30:00.123Z'),
  b: 2n ** 70n,
  buf: Buffer.from([0, 1, 254, 255]),
  u8: new Uint8Array([3]),
  n: '12.30',
  nul: null,
  und: undefined,
  j: { a: [1, { b: null, c: 'x' }], nested: { deep: [true, 1.5] } },
  bare: Object.assign(Object.create(null) as object, { k: 1 }),
})

describe('entry codec', () => {
  it('round-trips what pg returns, with user types registered next to it', () => {
    const codec = new Codec([decimalType, pointType])
    const rows = [{ ...driverRow(), dec: new Decimal('1.10'), decs: [new Decimal('2'), null], p: new Point(1, 2) }]
    const text = codec.encodeRows(rows)
    expect(Buffer.isBuffer(text)).toBe(true)
    const [row] = codec.decodeRows(text!) as Array<Record<string, unknown>>
    expect(row).toEqual(rows[0])
    expect(row!.d).toBeInstanceOf(Date)
    expect(typeof row!.b).toBe('bigint')
    expect(Buffer.isBuffer(row!.buf)).toBe(true)
    expect(row!.u8).toBeInstanceOf(Uint8Array)
    expect(Buffer.isBuffer(row!.u8)).toBe(false)
    expect(row!.n).toBe('12.30')
    expect(row!.nul).toBeNull()
    expect('und' in row!).toBe(true)
    expect(row!.und).toBeUndefined()
    expect(row!.dec).toBeInstanceOf(Decimal)
    expect((row!.decs as unknown[])[0]).toBeInstanceOf(Decimal)
    expect(row!.p).toBeInstanceOf(Point)
  })

  it('refuses values it would bring back as another class, naming the column and the class', () => {
    const codec = new Codec([decimalType])
    const cases: Array<[unknown, string]> = [
      [new Point(1, 2), 'Point'],
      [[{ inner: [new Point(1, 2)] }], 'Point'],
      [new Stamp(0), 'Stamp'],
      [new Registry([['a', 1]]), 'Registry'],
      [new Map([['p', new Point(0, 0)]]), 'Point'],
      [new Error('boom'), 'Error'],
      [new Date(Number.NaN), 'Date'],
    ]
    for (const [value, className] of cases) {
      const rows = [{ ok: 1 }, { ok: 2, col: value }]
      expect(codec.tryEncodeRows(rows), className).toEqual({ column: 'col', className, reason: 'class' })
      expect(codec.encodeRows(rows)).toBeUndefined()
    }
    // A registered class is fine, and so is plain JSON, and so are 64-bit typed arrays (superjson refused those).
    expect(Buffer.isBuffer(codec.tryEncodeRows([{ col: new Decimal('1'), j: { a: [1] } }]))).toBe(true)
    const [row] = codec.decodeRows(codec.encodeRows([{ col: new BigInt64Array([1n, -2n]) }])!) as Array<{ col: unknown }>
    expect(row!.col).toEqual(new BigInt64Array([1n, -2n]))
  })

  it('names the column of an encoding failure, and keeps JSON keys superjson refused', () => {
    const codec = new Codec([])
    const circular: Record<string, unknown> = { a: 1 }
    circular.self = circular
    expect(codec.tryEncodeRows([{ a: 1, meta: circular }])).toMatchObject({ column: 'meta', reason: 'encode' })
    const [row] = codec.decodeRows(codec.encodeRows([{ meta: JSON.parse('{"constructor":"x","__proto__":"y"}') }])!) as Array<{ meta: object }>
    expect(Object.getOwnPropertyNames(row!.meta).sort()).toEqual(['__proto__', 'constructor'])
    expect(Object.getPrototypeOf(row!.meta)).toBe(Object.prototype)
  })

  it('versions entries by codec configuration, whatever the order types are listed in', () => {
    const ab = new Codec([decimalType, pointType])
    const ba = new Codec([pointType, decimalType])
    const a = new Codec([decimalType])
    const none = new Codec([])
    expect(ab.fingerprint).toBe(ba.fingerprint)
    expect(new Set([ab.fingerprint, a.fingerprint, none.fingerprint]).size).toBe(3)
    expect(ab.fingerprint).toMatch(/^[A-Za-z0-9_-]{1,16}$/)

    const entry = ab.encodeEntry(['17', '42'], ab.encodeRows([{ x: 1 }])!)
    expect(ba.decodeEntry(entry)?.generations).toEqual(['17', '42'])
    expect(a.decodeEntry(entry)).toBeUndefined()
    expect(none.decodeEntry(entry)).toBeUndefined()
    // The generations line keeps its layout: a comma-separated list of opaque tokens.
    expect(entry.toString('utf8').split('\n')[2]).toBe('17,42')
    // Release 0.1.0's layout, and garbage, are not entries of this codec.
    expect(none.decodeEntry(Buffer.from('k1\n17,42\n{"json":[]}'))).toBeUndefined()
    expect(none.decodeEntry(Buffer.from('garbage'))).toBeUndefined()
  })
})

describe('the types option', () => {
  it('rejects bad values, naming types and the value', () => {
    const make = (types: unknown) => () => createQueryCache({ types } as never)
    expect(make('Decimal')).toThrow(new TypeError('types must be an array of { name, isApplicable, serialize, deserialize }, got "Decimal"'))
    expect(make([null])).toThrow(new TypeError('types[0] must be an object { name, isApplicable, serialize, deserialize }, got null'))
    expect(make([{ ...decimalType, name: '' }])).toThrow(new TypeError('types[0].name must be a non-empty string, got ""'))
    expect(make([decimalType, { ...pointType, isApplicable: 'yes' }])).toThrow(
      new TypeError('types[1].isApplicable must be a function, got "yes"'),
    )
    expect(make([{ ...decimalType, serialize: undefined }])).toThrow(new TypeError('types[0].serialize must be a function, got undefined'))
    expect(make([{ ...decimalType, deserialize: 1 }])).toThrow(new TypeError('types[0].deserialize must be a function, got 1'))
    expect(make([decimalType, decimalType])).toThrow(new TypeError('types[1].name repeats types[0].name, got "Decimal"'))
    expect(make([{ ...decimalType, name: 'Buffer' }])).toThrow(/types\[0\]\.name "Buffer" is reserved/)
  })
})

describe('rows through the cache with user types registered (PGlite, embedded store)', () => {
  let database: TestDatabase
  let client: Client

  beforeAll(async () => {
    database = await openPglite()
    client = createClient(database, { types: [decimalType, pointType] })
    await createSchema(client.db)
    await client.db
      .insertInto('person')
      .values([
        {
          first_name: 'Ada',
          born: new Date('1990-05-17T08:30:00.123Z'),
          balance: '1234.50',
          big: 9007199254740993n,
          photo: Buffer.from([0, 1, 2, 254, 255]),
          meta: { tags: ['x', null], n: 1, o: { deep: [true] } },
          nickname: null,
        },
      ])
      .execute()
  })

  afterAll(async () => {
    if (client !== undefined) await closeClient(client)
    await database?.close()
  })

  it('keeps Date, bigint, bytea, numeric strings, null and nested JSON on a hit', async () => {
    const query = () => client.db.selectFrom('person').selectAll().where('id', '=', 1).cached()
    const [miss] = await query().execute()
    client.executions.reset()
    const [hit] = await query().execute()
    expect(client.executions.count('from "person"')).toBe(0)
    expect(hit).toEqual(miss)
    expect(hit!.born).toBeInstanceOf(Date)
    expect(hit!.balance).toBe('1234.50')
    expect(typeof hit!.big).toBe(typeof miss!.big)
    expect(Object.getPrototypeOf(hit!.photo)).toBe(Object.getPrototypeOf(miss!.photo))
    expect(hit!.meta).toEqual({ tags: ['x', null], n: 1, o: { deep: [true] } })
    expect(hit!.nickname).toBeNull()
    expect(client.errors).toEqual([])
  })
})
