/** What an application's numeric type parser returns: a class the cache must bring back as itself. */
export class Decimal {
  constructor(readonly s: string) {}
  toString(): string {
    return this.s
  }
}

/** Its registration with the cache's `types` option. */
export const decimalType = {
  name: 'Decimal',
  isApplicable: (value: unknown): value is Decimal => value instanceof Decimal,
  serialize: (value: Decimal) => value.toString(),
  deserialize: (text: string) => new Decimal(text),
}
