import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  QueryNode,
  RawNode,
  UpdateQueryNode,
  sql,
} from 'kysely'
import type { CompiledQuery, Generated, RootOperationNode } from 'kysely'
import { describe, expect, it } from 'vitest'
import { analyzeStatement, normalizeTableName } from '../../src/kysely/statement.js'

interface Person {
  id: Generated<number>
  first_name: string
  last_name: string | null
  age: number
}

interface DB {
  person: Person
  'public.person': Person
  pet: { id: Generated<number>; name: string; owner_id: number; species: string }
  toy: { id: Generated<number>; pet_id: number; price: number }
  'audit.log': { id: Generated<number>; action: string }
}

const db = new Kysely<DB>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new PostgresIntrospector(k),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
})

function analyze(builder: { compile(): CompiledQuery }) {
  return analyzeStatement(builder.compile().query)
}

const read = (...reads: string[]) => ({ kind: 'read', reads, writes: [], hiddenWrites: false, volatility: 'stable' })

describe('analyzeStatement on selects', () => {
  it('reads the table of a simple select', () => {
    expect(analyze(db.selectFrom('person').selectAll())).toEqual(read('public.person'))
  })

  it('reads the aliased table, not the alias, and ignores column qualifiers', () => {
    const q = db.selectFrom('person as p').select(['p.id', 'p.first_name']).where('p.age', '>', 3).orderBy('p.id')
    expect(analyze(q)).toEqual(read('public.person'))
  })

  it('does not count person.* or qualified references as extra tables', () => {
    const q = db.selectFrom('person').innerJoin('pet as pe', 'pe.owner_id', 'person.id').selectAll('person').select('pe.name')
    expect(analyze(q)).toEqual(read('public.person', 'public.pet'))
  })

  it('reads every table of inner, left and lateral joins', () => {
    const q = db
      .selectFrom('person')
      .innerJoin('pet', 'pet.owner_id', 'person.id')
      .leftJoin('toy', 'toy.pet_id', 'pet.id')
      .innerJoinLateral(
        (eb) => eb.selectFrom('audit.log').select('audit.log.action').whereRef('audit.log.id', '=', 'person.id').as('l'),
        (join) => join.onTrue(),
      )
      .select(['person.id', 'l.action'])
    expect(analyze(q)).toEqual(read('audit.log', 'public.person', 'public.pet', 'public.toy'))
  })

  it('reads tables of a where-in subquery', () => {
    const q = db.selectFrom('person').selectAll().where('id', 'in', (eb) => eb.selectFrom('pet').select('owner_id'))
    expect(analyze(q)).toEqual(read('public.person', 'public.pet'))
  })

  it('reads tables of an exists subquery', () => {
    const q = db
      .selectFrom('person')
      .selectAll()
      .where((eb) => eb.exists(eb.selectFrom('toy').select('toy.id').whereRef('toy.pet_id', '=', 'person.id')))
    expect(analyze(q)).toEqual(read('public.person', 'public.toy'))
  })

  it('reads tables of a select-list subquery and a having subquery', () => {
    const q = db
      .selectFrom('person')
      .select((eb) => [
        'person.id',
        eb.selectFrom('pet').select((e) => e.fn.countAll<number>().as('n')).whereRef('pet.owner_id', '=', 'person.id').as('pets'),
      ])
      .groupBy('person.id')
      .having((eb) => eb(eb.fn.countAll(), '>', eb.selectFrom('toy').select((e) => e.fn.countAll<number>().as('c'))))
    expect(analyze(q)).toEqual(read('public.person', 'public.pet', 'public.toy'))
  })

  it('reads every branch of union, intersect and except', () => {
    const q = db
      .selectFrom('person')
      .select('id')
      .union(db.selectFrom('pet').select('id'))
      .intersect(db.selectFrom('toy').select('id'))
      .except(db.selectFrom('audit.log').select('id'))
    expect(analyze(q)).toEqual(read('audit.log', 'public.person', 'public.pet', 'public.toy'))
  })

  it('does not count a whole-row reference like to_json(p) as a table', () => {
    const q = db.selectFrom('person as p').select((eb) => eb.fn.toJson('p').as('row'))
    expect(analyze(q)).toEqual(read('public.person'))
  })
})

describe('analyzeStatement with common table expressions', () => {
  it('reads the CTE body tables but not the CTE name', () => {
    const q = db
      .with('owners', (qc) => qc.selectFrom('pet').select('owner_id'))
      .with('rich', (qc) => qc.selectFrom('owners').innerJoin('person', 'person.id', 'owners.owner_id').select('person.id'))
      .selectFrom('rich')
      .innerJoin('owners', 'owners.owner_id', 'rich.id')
      .selectAll()
    expect(analyze(q)).toEqual(read('public.person', 'public.pet'))
  })

  it('handles a recursive CTE that refers to itself', () => {
    const q = db
      .withRecursive('chain(id, age)', (qc) =>
        qc
          .selectFrom('person')
          .select(['id', 'age'])
          .where('id', '=', 1)
          .unionAll(qc.selectFrom('chain').innerJoin('person', 'person.age', 'chain.id').select(['person.id', 'person.age'])),
      )
      .selectFrom('chain')
      .selectAll()
    expect(analyze(q)).toEqual(read('public.person'))
  })

  it('scopes a nested WITH inside a subquery and still sees outer CTE names there', () => {
    const q = db
      .with('adults', (qc) => qc.selectFrom('person').select('id').where('age', '>=', 18))
      .selectFrom('adults')
      .select('adults.id')
      .where(
        'adults.id',
        'in',
        db
          .with('owners', (qc) => qc.selectFrom('pet').select('owner_id'))
          .selectFrom('owners')
          .select('owners.owner_id')
          .where('owners.owner_id', 'in', (eb) => eb.selectFrom('adults' as 'person').select('id')),
      )
    expect(analyze(q)).toEqual(read('public.person', 'public.pet'))
  })

  it('reads the real table when a non-recursive CTE body uses the name it shadows', () => {
    const q = db
      .with('pet', (qc) => qc.selectFrom('pet').select(['id', 'name']).where('species', '=', 'cat'))
      .selectFrom('pet')
      .selectAll()
    expect(analyze(q)).toEqual(read('public.pet'))
  })

  it('makes a select with a deleting CTE a write', () => {
    const q = db
      .with('gone', (qc) => qc.deleteFrom('pet').where('species', '=', 'cat').returningAll())
      .selectFrom('gone')
      .selectAll()
    expect(analyze(q)).toEqual({ kind: 'write', reads: [], writes: ['public.pet'], hiddenWrites: false, volatility: 'stable' })
  })

  it('treats a raw CTE body as opaque because it may hide a write', () => {
    const q = db
      .with('gone', () => sql<{ id: number }>`delete from pet returning id`)
      .selectFrom('gone')
      .selectAll()
    expect(analyze(q).kind).toBe('opaque')
    expect(analyze(q).hiddenWrites).toBe(true)
  })
})

describe('analyzeStatement on writes', () => {
  it('writes the target of an insert with values and reads nothing', () => {
    const q = db.insertInto('person').values({ first_name: 'A', last_name: null, age: 1 })
    expect(analyze(q)).toEqual({ kind: 'write', reads: [], writes: ['public.person'], hiddenWrites: false, volatility: 'stable' })
  })

  it('reads the source and writes the target of insert ... select', () => {
    const q = db
      .insertInto('person')
      .columns(['first_name', 'age'])
      .expression((eb) => eb.selectFrom('pet').select(['name', 'owner_id']))
    expect(analyze(q)).toEqual({ kind: 'write', reads: ['public.pet'], writes: ['public.person'], hiddenWrites: false, volatility: 'stable' })
  })

  it('keeps insert ... returning a plain write', () => {
    const q = db.insertInto('person').values({ first_name: 'A', last_name: null, age: 1 }).returning(['id', 'person.age'])
    expect(analyze(q)).toEqual({ kind: 'write', reads: [], writes: ['public.person'], hiddenWrites: false, volatility: 'stable' })
  })

  it('reads a subquery in insert values', () => {
    const q = db.insertInto('pet').values((eb) => ({
      name: 'Rex',
      species: 'dog',
      owner_id: eb.selectFrom('person').select('id').limit(1),
    }))
    expect(analyze(q)).toEqual({ kind: 'write', reads: ['public.person'], writes: ['public.pet'], hiddenWrites: false, volatility: 'stable' })
  })

  it('reads the from tables of an update and writes only its target', () => {
    const q = db
      .updateTable('person as p')
      .from('pet')
      .set((eb) => ({ first_name: eb.ref('pet.name') }))
      .whereRef('pet.owner_id', '=', 'p.id')
    expect(analyze(q)).toEqual({ kind: 'write', reads: ['public.pet'], writes: ['public.person'], hiddenWrites: false, volatility: 'stable' })
  })

  it('reads the subquery of update ... where in (select)', () => {
    const q = db
      .updateTable('person')
      .set({ age: 0 })
      .where('id', 'in', (eb) => eb.selectFrom('pet').select('owner_id').where('species', '=', 'cat'))
    expect(analyze(q)).toEqual({ kind: 'write', reads: ['public.pet'], writes: ['public.person'], hiddenWrites: false, volatility: 'stable' })
  })

  it('writes every target of a multi-table update', () => {
    const q = db.updateTable(['person', 'pet']).set({ age: 1 })
    expect(analyze(q)).toEqual({ kind: 'write', reads: [], writes: ['public.person', 'public.pet'], hiddenWrites: false, volatility: 'stable' })
  })

  it('reads the using tables of a delete and writes its target', () => {
    const q = db.deleteFrom('person').using('pet').whereRef('pet.owner_id', '=', 'person.id').where('pet.species', '=', 'cat')
    expect(analyze(q)).toEqual({ kind: 'write', reads: ['public.pet'], writes: ['public.person'], hiddenWrites: false, volatility: 'stable' })
  })

  it('writes the target of merge into and reads its using source', () => {
    const q = db
      .mergeInto('person as p')
      .using('pet as pe', 'pe.owner_id', 'p.id')
      .whenMatched()
      .thenUpdateSet({ age: 1 })
      .whenNotMatched()
      .thenInsertValues({ first_name: 'x', last_name: null, age: 0 })
    expect(analyze(q)).toEqual({ kind: 'write', reads: ['public.pet'], writes: ['public.person'], hiddenWrites: false, volatility: 'stable' })
  })

  it('does not count excluded in an upsert as a table', () => {
    const q = db
      .insertInto('person')
      .values({ first_name: 'A', last_name: null, age: 1 })
      .onConflict((oc) =>
        oc.column('id').doUpdateSet((eb) => ({ first_name: eb.ref('excluded.first_name'), age: eb.ref('excluded.age') })),
      )
    expect(analyze(q)).toEqual({ kind: 'write', reads: [], writes: ['public.person'], hiddenWrites: false, volatility: 'stable' })
  })

  it('treats a write whose target cannot be resolved as opaque', () => {
    const node = UpdateQueryNode.create([RawNode.createWithSql('only person')])
    expect(analyzeStatement(node).kind).toBe('opaque')
  })
})

describe('analyzeStatement table names', () => {
  it('normalises person, public.person and withSchema("public") to the same name', () => {
    const plain = analyze(db.selectFrom('person').selectAll())
    const qualified = analyze(db.selectFrom('public.person').selectAll())
    const withSchema = analyze(db.withSchema('public').selectFrom('person').selectAll())
    expect(plain.reads).toEqual(['public.person'])
    expect(qualified.reads).toEqual(['public.person'])
    expect(withSchema.reads).toEqual(['public.person'])
  })

  it('keeps another schema such as audit.log', () => {
    expect(analyze(db.selectFrom('audit.log').selectAll())).toEqual(read('audit.log'))
    expect(analyze(db.insertInto('audit.log').values({ action: 'x' }))).toEqual({
      kind: 'write',
      reads: [],
      writes: ['audit.log'],
      hiddenWrites: false,
      volatility: 'stable',
    })
  })

  it('applies withSchema to tables but not to CTE names', () => {
    const q = db
      .withSchema('audit')
      .with('owners', (qc) => qc.selectFrom('pet').select('owner_id'))
      .selectFrom('owners')
      .selectAll()
    expect(analyze(q)).toEqual(read('audit.pet'))
    expect(analyze(db.withSchema('audit').deleteFrom('person').where('id', '=', 1)).writes).toEqual(['audit.person'])
  })

  it('uses the given default schema for unqualified names', () => {
    const node = db.selectFrom('person').innerJoin('audit.log', 'audit.log.id', 'person.id').selectAll().compile().query
    expect(analyzeStatement(node, 'app')).toEqual(read('app.person', 'audit.log'))
  })

  it('normalizeTableName qualifies bare names and keeps qualified ones and case', () => {
    expect(normalizeTableName('person')).toBe('public.person')
    expect(normalizeTableName('Person')).toBe('public.Person')
    expect(normalizeTableName('audit.log')).toBe('audit.log')
    expect(normalizeTableName('person', 'app')).toBe('app.person')
  })
})

describe('analyzeStatement on raw SQL and schema statements', () => {
  it('treats a raw sql root as opaque with no tables', () => {
    const node = sql`select * from person`.compile(db).query
    expect(analyzeStatement(node)).toEqual({ kind: 'opaque', reads: [], writes: [], hiddenWrites: true, volatility: 'stable' })
  })

  it('keeps a select with raw SQL in the select list and where clause a read', () => {
    const q = db
      .selectFrom('person')
      .select(sql<string>`now()`.as('ts'))
      .where(sql<boolean>`age > 3`)
    // Still a read of person; now() only makes it volatile.
    expect(analyze(q)).toEqual({ ...read('public.person'), volatility: 'volatile' })
  })

  it('reads a query builder embedded in a raw fragment', () => {
    const q = db.selectFrom('person').select(sql<number>`(${db.selectFrom('pet').select('id').limit(1)})`.as('x'))
    expect(analyze(q)).toEqual(read('public.person', 'public.pet'))
  })

  it('treats raw SQL in FROM or JOIN as opaque', () => {
    const from = db.selectFrom(sql<{ g: number }>`generate_series(1, 3)`.as('g')).selectAll()
    expect(analyze(from).kind).toBe('opaque')
    const join = db
      .selectFrom('person')
      .innerJoin(sql<{ x: number }>`(select 1 as x)`.as('s'), (j) => j.onTrue())
      .selectAll()
    expect(analyze(join).kind).toBe('opaque')
  })

  it('treats a raw set-operation branch as opaque', () => {
    const q = db.selectFrom('person').select('id').union(sql<{ id: number }>`select id from pet`)
    expect(analyze(q).kind).toBe('opaque')
  })

  it('keeps a write with a raw FROM item a write so its target is still invalidated', () => {
    const q = db
      .updateTable('person')
      .from(sql<{ x: number }>`generate_series(1, 3)`.as('g'))
      .set({ age: 1 })
    expect(analyze(q)).toEqual({ kind: 'write', reads: [], writes: ['public.person'], hiddenWrites: false, volatility: 'stable' })
  })

  it('reads sql.table() in FROM as a plain table', () => {
    const q = db.selectFrom(sql.table('pet').as('p') as unknown as 'pet').selectAll()
    expect(analyze(q)).toEqual(read('public.pet'))
  })

  it('treats create table and drop table as opaque', () => {
    const create = db.schema.createTable('x').addColumn('id', 'integer').compile().query
    const drop = db.schema.dropTable('person').compile().query
    expect(analyzeStatement(create)).toEqual({ kind: 'opaque', reads: [], writes: [], hiddenWrites: true, volatility: 'stable' })
    expect(analyzeStatement(drop)).toEqual({ kind: 'opaque', reads: [], writes: [], hiddenWrites: true, volatility: 'stable' })
  })

  it('treats locking reads and raw select modifiers as opaque', () => {
    expect(analyze(db.selectFrom('person').selectAll().forUpdate().skipLocked()).kind).toBe('opaque')
    expect(analyze(db.selectFrom('person').selectAll().forShare()).kind).toBe('opaque')
    // Uncacheable, but it hides no write: nothing to invalidate when it runs.
    expect(analyze(db.selectFrom('person').selectAll().forShare()).hiddenWrites).toBe(false)
    expect(analyze(db.selectFrom('person').selectAll().modifyEnd(sql`for update`)).kind).toBe('opaque')
  })

  it('treats explain as opaque', () => {
    const node = QueryNode.cloneWithExplain(db.selectFrom('person').selectAll().toOperationNode(), 'json', undefined)
    expect(analyzeStatement(node).kind).toBe('opaque')
  })
})

describe('analyzeStatement memoisation', () => {
  it('returns the same frozen object for the same node', () => {
    const builder = db.selectFrom('person').innerJoin('pet', 'pet.owner_id', 'person.id').selectAll()
    const node: RootOperationNode = builder.compile().query
    expect(builder.compile().query).toBe(node)
    const first = analyzeStatement(node)
    expect(analyzeStatement(node)).toBe(first)
    expect(analyzeStatement(builder.compile().query)).toBe(first)
    expect(Object.isFrozen(first)).toBe(true)
    expect(Object.isFrozen(first.reads)).toBe(true)
  })

  it('keeps separate results per default schema', () => {
    const node = db.selectFrom('person').selectAll().compile().query
    expect(analyzeStatement(node, 'app').reads).toEqual(['app.person'])
    expect(analyzeStatement(node).reads).toEqual(['public.person'])
  })
})

describe('analyzeStatement volatility', () => {
  const volatility = (builder: { compile(): CompiledQuery }) => analyze(builder).volatility

  it('is stable for ordinary functions and aggregates', () => {
    const q = db
      .selectFrom('person')
      .select((eb) => [eb.fn.count('id').as('n'), eb.fn.coalesce('last_name', eb.val('-')).as('l'), eb.fn('lower', ['first_name']).as('f')])
      .groupBy(['last_name', 'first_name'])
    expect(analyze(q)).toEqual({ ...read('public.person'), volatility: 'stable' })
  })

  it('finds a side effect in a FunctionNode and keeps the tables it reads', () => {
    const q = db.selectFrom('person').select((eb) => eb.fn('nextval', [eb.val('person_id_seq')]).as('n'))
    expect(analyze(q)).toEqual({ ...read('public.person'), volatility: 'side-effect' })
  })

  it('finds a volatile FunctionNode, also as an aggregate', () => {
    expect(volatility(db.selectNoFrom((eb) => eb.fn('random').as('r')))).toBe('volatile')
    expect(volatility(db.selectFrom('person').select((eb) => eb.fn.agg('pg_try_advisory_xact_lock', ['id']).as('l')))).toBe('side-effect')
  })

  it('reads schema-qualified, upper-case and quoted function names as PostgreSQL does', () => {
    expect(volatility(db.selectNoFrom((eb) => eb.fn('pg_catalog.nextval', [eb.val('s')]).as('n')))).toBe('side-effect')
    expect(volatility(db.selectNoFrom((eb) => eb.fn('NEXTVAL', [eb.val('s')]).as('n')))).toBe('side-effect')
    expect(volatility(db.selectNoFrom((eb) => eb.fn('"nextval"', [eb.val('s')]).as('n')))).toBe('side-effect')
    // A quoted name is exact: "NEXTVAL" is not nextval.
    expect(volatility(db.selectNoFrom((eb) => eb.fn('"NEXTVAL"', [eb.val('s')]).as('n')))).toBe('stable')
    expect(volatility(db.selectNoFrom(sql`PG_CATALOG.SetVal('s', 1)`.as('n')))).toBe('side-effect')
  })

  it('finds functions and keywords in raw fragments of a builder query', () => {
    expect(volatility(db.selectFrom('person').select(sql`now()`.as('at')))).toBe('volatile')
    expect(volatility(db.selectFrom('person').selectAll().where(sql<boolean>`age > extract(year from current_date)`))).toBe('volatile')
    expect(volatility(db.selectFrom('person').selectAll().where('age', '<', sql<number>`${1} + nextval(${'s'})`))).toBe('side-effect')
  })

  it('looks inside subqueries, CTEs, joins, where, having and order by', () => {
    const inWhere = db
      .selectFrom('person')
      .selectAll()
      .where('id', 'in', (eb) => eb.selectFrom('pet').select('owner_id').where(sql<boolean>`random() < 0.5`))
    const inCte = db
      .with('locked', (qb) => qb.selectFrom('pet').select((eb) => eb.fn('pg_advisory_xact_lock', ['id']).as('l')))
      .selectFrom('locked')
      .selectAll()
    const inJoin = db
      .selectFrom('person')
      .innerJoin('pet', (join) => join.onRef('pet.owner_id', '=', 'person.id').on(sql<boolean>`clock_timestamp() > now()`))
      .selectAll('person')
    const inHaving = db
      .selectFrom('pet')
      .select('owner_id')
      .groupBy('owner_id')
      .having(sql<boolean>`count(*) > setseed(0.5)::text::int`)
    const inOrderBy = db.selectFrom('person').selectAll().orderBy(sql`random()`)
    const inSelectSubquery = db
      .selectFrom('person')
      .select((eb) => eb.selectFrom('toy').select((eb2) => eb2.fn('gen_random_uuid').as('u')).limit(1).as('u'))
    expect(volatility(inWhere)).toBe('volatile')
    expect(volatility(inCte)).toBe('side-effect')
    expect(volatility(inJoin)).toBe('volatile')
    expect(volatility(inHaving)).toBe('side-effect')
    expect(volatility(inOrderBy)).toBe('volatile')
    expect(volatility(inSelectSubquery)).toBe('volatile')
  })

  it('does not take a string literal, a parameter or a column for a call', () => {
    const literal = db.selectFrom('person').select(sql`'nextval(''s'')'`.as('t')).where('first_name', '=', 'nextval(1)')
    const lit = db.selectFrom('person').select(sql.lit('random()').as('t'))
    const dollar = db.selectFrom('person').select(sql`$q$ now() $q$`.as('t'))
    const column = db.selectFrom('person').select(sql.ref('person.first_name').as('user')).where(sql<boolean>`"user" is null`)
    for (const q of [literal, lit, dollar, column]) expect(volatility(q)).toBe('stable')
  })

  it('reports the worst class when a query has both', () => {
    const q = db.selectFrom('person').select((eb) => [eb.fn('random').as('r'), eb.fn('setval', [eb.val('s'), eb.val(1)]).as('s')])
    expect(volatility(q)).toBe('side-effect')
  })

  it('reports what a raw statement calls, keeping it opaque', () => {
    const node = sql`select pg_advisory_lock(${1})`.compile(db).query
    expect(analyzeStatement(node)).toEqual({ kind: 'opaque', reads: [], writes: [], hiddenWrites: true, volatility: 'side-effect' })
  })

  it('keeps a write a write when it calls now()', () => {
    const q = db.updateTable('person').set({ age: sql<number>`extract(year from now())` }).where('id', '=', 1)
    expect(analyze(q)).toEqual({ kind: 'write', reads: [], writes: ['public.person'], hiddenWrites: false, volatility: 'volatile' })
  })
})
