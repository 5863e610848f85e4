import type {
  AggregateFunctionNode,
  AliasNode,
  CommonTableExpressionNode,
  DeleteQueryNode,
  FromNode,
  FunctionNode,
  InsertQueryNode,
  JoinNode,
  ListNode,
  MergeQueryNode,
  OperationNode,
  RawNode,
  RootOperationNode,
  SelectModifierNode,
  SetOperationNode,
  TableNode,
  UpdateQueryNode,
  UsingNode,
  WithNode,
} from 'kysely'
import { sqlVolatility, worseVolatility, type Volatility } from './function-volatility.js'

/** What a compiled Kysely statement does to which tables. */
export interface StatementInfo {
  /**
   * - `'read'`: only reads tables; safe to cache and to tag with `reads` when
   *   `volatility` is `'stable'`.
   * - `'write'`: contains insert/update/delete/merge anywhere (e.g. inside a
   *   CTE) and every statement target is listed in `writes`. `reads` may be
   *   incomplete (a raw FROM item in a write does not make it opaque).
   * - `'opaque'`: never cache; the caller cannot trust `writes` either. A raw
   *   SQL root, a schema statement (create/alter/drop/...), an unknown root
   *   kind, a raw CTE body (may be a write), a write whose target is not a
   *   plain table, or a read that is not safely cacheable: raw SQL as a
   *   FROM/JOIN/USING item or set-operation branch, a locking read
   *   (`for update`/`for share`, or any raw select modifier), an `explain`.
   *   `reads`/`writes` are best-effort (empty for raw roots and DDL).
   */
  readonly kind: 'read' | 'write' | 'opaque'
  /** Normalised names (`"schema.table"`) of tables read, sorted, unique. */
  readonly reads: readonly string[]
  /** Normalised names (`"schema.table"`) of tables written, sorted, unique. */
  readonly writes: readonly string[]
  /**
   * The statement may write tables `writes` does not name (raw or DDL root, raw
   * CTE body, a write target that is not a plain table): invalidate everything.
   */
  readonly hiddenWrites: boolean
  /**
   * The worst function the statement calls, by name (see function-volatility.ts):
   * `'volatile'` (`now()`, `random()`) changes without a write, `'side-effect'`
   * (`nextval()`, advisory locks) changes something when called. Found in function
   * calls and in raw SQL fragments; schema statements are not looked into (`'stable'`).
   */
  readonly volatility: Volatility
}

/**
 * Qualifies a table name with `defaultSchema` when it has no schema.
 * Case is kept as given: Kysely quotes identifiers, so Postgres treats
 * `Person` and `person` as different tables.
 *
 * @example normalizeTableName('person') // 'public.person'
 * @example normalizeTableName('audit.log') // 'audit.log'
 */
export function normalizeTableName(name: string, defaultSchema = 'public'): string {
  return name.includes('.') ? name : `${defaultSchema}.${name}`
}

/**
 * Finds the tables a compiled statement reads and writes, in one pass over
 * the operation-node tree (pass `builder.compile().query`).
 *
 * Results are memoised per node object (and default schema): a reused
 * builder compiles to the same frozen node, so repeated calls are a lookup.
 * Never throws on unknown node kinds: unknown roots are `'opaque'`, unknown
 * inner nodes are walked generically and any table found in them is counted
 * as read.
 *
 * Known limits (caller's responsibility): only what the SQL text names is
 * seen. Views and user-defined functions are not seen through (a view is
 * reported under its own name, a function that calls `nextval()` is
 * `'stable'`), and writes made by triggers, rules or `on delete cascade`
 * foreign keys are not listed.
 */
export function analyzeStatement(node: RootOperationNode, defaultSchema = 'public'): StatementInfo {
  let memo = memoBySchema.get(defaultSchema)
  if (memo === undefined) {
    memo = new WeakMap()
    memoBySchema.set(defaultSchema, memo)
  }
  const hit = memo.get(node)
  if (hit !== undefined) return hit
  const info = analyzeUncached(node, defaultSchema)
  memo.set(node, info)
  return info
}

const memoBySchema = new Map<string, WeakMap<object, StatementInfo>>()

const EMPTY: readonly string[] = Object.freeze([])
const OPAQUE: Readonly<Record<Volatility, StatementInfo>> = {
  stable: Object.freeze({ kind: 'opaque', reads: EMPTY, writes: EMPTY, hiddenWrites: true, volatility: 'stable' }),
  volatile: Object.freeze({ kind: 'opaque', reads: EMPTY, writes: EMPTY, hiddenWrites: true, volatility: 'volatile' }),
  'side-effect': Object.freeze({ kind: 'opaque', reads: EMPTY, writes: EMPTY, hiddenWrites: true, volatility: 'side-effect' }),
}

/** CTE names visible at a point of the tree, innermost first. */
interface Scope {
  readonly name: string
  readonly parent: Scope | undefined
}

interface Acc {
  readonly defaultSchema: string
  readonly reads: Set<string>
  readonly writes: Set<string>
  hasWrite: boolean
  /** Something may write tables we cannot name: never trust `writes`. */
  hiddenWrites: boolean
  /** Result cannot be cached (unknown reads, locks, explain). */
  uncacheable: boolean
  volatility: Volatility
}

type AnyNode = OperationNode & Record<string, unknown>

function analyzeUncached(root: RootOperationNode, defaultSchema: string): StatementInfo {
  switch (root.kind) {
    case 'SelectQueryNode':
    case 'InsertQueryNode':
    case 'UpdateQueryNode':
    case 'DeleteQueryNode':
    case 'MergeQueryNode':
      break
    case 'RawNode': {
      // Raw SQL: we cannot tell what it touches, only what it calls.
      const acc = newAcc(defaultSchema)
      walk(root, undefined, acc)
      return OPAQUE[acc.volatility]
    }
    default:
      // DDL and any root kind added by a later Kysely: we cannot tell what it touches.
      return OPAQUE.stable
  }
  const acc = newAcc(defaultSchema)
  walk(root, undefined, acc)
  // An opaque write with known targets would be the worst outcome if the
  // caller skips invalidation for opaque statements, so a write whose targets
  // are all known stays 'write' even when its reads are not.
  const kind = acc.hiddenWrites ? 'opaque' : acc.hasWrite ? 'write' : acc.uncacheable ? 'opaque' : 'read'
  return Object.freeze({
    kind,
    reads: toSorted(acc.reads),
    writes: toSorted(acc.writes),
    hiddenWrites: acc.hiddenWrites,
    volatility: acc.volatility,
  })
}

function newAcc(defaultSchema: string): Acc {
  return {
    defaultSchema,
    reads: new Set(),
    writes: new Set(),
    hasWrite: false,
    hiddenWrites: false,
    uncacheable: false,
    volatility: 'stable',
  }
}

function toSorted(set: Set<string>): readonly string[] {
  if (set.size === 0) return EMPTY
  const out = Array.from(set)
  // Insertion sort: these lists are tiny and Array#sort costs ~10x more here.
  // Same code-unit order as the default sort.
  for (let i = 1; i < out.length; i++) {
    const value = out[i] as string
    let j = i - 1
    for (; j >= 0 && (out[j] as string) > value; j--) out[j + 1] = out[j] as string
    out[j + 1] = value
  }
  return Object.freeze(out)
}

function walk(node: OperationNode, scope: Scope | undefined, acc: Acc): void {
  switch (node.kind) {
    // Leaves, and nodes whose TableNodes are qualifiers (`person.id`,
    // `person.*`) or names, never relations.
    case 'IdentifierNode':
    case 'ValueNode':
    case 'PrimitiveValueListNode':
    case 'ColumnNode':
    case 'ReferenceNode':
    case 'SelectAllNode':
    case 'OperatorNode':
    case 'DataTypeNode':
    case 'DefaultInsertValueNode':
    case 'JSONReferenceNode':
    case 'JSONPathNode':
    case 'JSONPathLegNode':
    case 'JSONOperatorChainNode':
    case 'CommonTableExpressionNameNode':
      return

    case 'TableNode':
      // Outside the positions handled below a TableNode is most likely a
      // relation (e.g. `sql.table()` inside a raw subquery); over-reporting
      // a read only costs an extra tag, missing one serves stale data.
      addRead(node as TableNode, scope, acc)
      return

    case 'SelectQueryNode':
    case 'InsertQueryNode':
    case 'UpdateQueryNode':
    case 'DeleteQueryNode':
    case 'MergeQueryNode':
      walkQuery(node as AnyNode, scope, acc)
      return

    case 'FromNode':
      for (const item of (node as FromNode).froms) walkRelation(item, scope, acc)
      return
    case 'UsingNode':
      for (const item of (node as UsingNode).tables) walkRelation(item, scope, acc)
      return
    case 'JoinNode': {
      const join = node as JoinNode
      walkRelation(join.table, scope, acc)
      if (join.on !== undefined) walk(join.on, scope, acc)
      return
    }

    case 'SetOperationNode': {
      const expr = (node as SetOperationNode).expression
      // A raw branch (`union(sql\`select ...\`)`) hides the tables it reads.
      if (expr.kind === 'RawNode' && !isTableRaw(expr as RawNode)) acc.uncacheable = true
      walk(expr, scope, acc)
      return
    }

    // A bare table as a function argument is a whole-row reference to a FROM
    // item (`to_json(p)`, `json_agg(p)`), often an alias: not a table read.
    // Kysely prints `func` as written (`pg_catalog.nextval`, `"now"`), so it is read as SQL.
    case 'FunctionNode':
      noteCalls(`${(node as FunctionNode).func}(`, acc)
      walkArgs((node as FunctionNode).arguments, scope, acc)
      return
    case 'AggregateFunctionNode':
      noteCalls(`${(node as AggregateFunctionNode).func}(`, acc)
      walkArgs((node as AggregateFunctionNode).aggregated, scope, acc)
      walkChildren(node as AnyNode, scope, acc, 'aggregated')
      return

    case 'SelectModifierNode': {
      const mod = node as SelectModifierNode
      // Locking reads must reach the database; a raw modifier may be one
      // (`modifyEnd(sql\`for update\`)`). `of` lists FROM items, not tables.
      if (mod.rawModifier !== undefined || (mod.modifier !== undefined && LOCKING.has(mod.modifier))) {
        acc.uncacheable = true
      }
      return
    }

    case 'RawNode': {
      // A sql`now()` fragment inside a builder query. Joined so a literal
      // around a parameter (`'%${x}%'`) stays one literal.
      const fragments = (node as RawNode).sqlFragments
      noteCalls(fragments.length === 1 ? (fragments[0] as string) : fragments.join(' '), acc)
      // Its parameters may hold subqueries.
      walkChildren(node as AnyNode, scope, acc, undefined)
      return
    }

    default:
      // Any node kind not listed here, including ones added by later Kysely versions.
      walkChildren(node as AnyNode, scope, acc, undefined)
  }
}

function noteCalls(sqlText: string, acc: Acc): void {
  if (acc.volatility !== 'side-effect') acc.volatility = worseVolatility(acc.volatility, sqlVolatility(sqlText))
}

const LOCKING: ReadonlySet<string> = new Set(['ForUpdate', 'ForNoKeyUpdate', 'ForShare', 'ForKeyShare'])

function walkQuery(node: AnyNode, outer: Scope | undefined, acc: Acc): void {
  const scope = node.with === undefined ? outer : walkWith(node.with as WithNode, outer, acc)
  // Plan output is neither the rows nor invalidated by writes.
  if (node.explain !== undefined) acc.uncacheable = true
  switch (node.kind) {
    case 'InsertQueryNode': {
      acc.hasWrite = true
      const into = (node as unknown as InsertQueryNode).into
      // Merge's `thenInsertValues` has no target of its own.
      if (into !== undefined) addWrite(into, scope, acc)
      walkChildren(node, scope, acc, 'with', 'into')
      return
    }
    case 'UpdateQueryNode': {
      acc.hasWrite = true
      const table = (node as unknown as UpdateQueryNode).table
      if (table !== undefined) addWrite(table, scope, acc)
      walkChildren(node, scope, acc, 'with', 'table')
      return
    }
    case 'DeleteQueryNode': {
      acc.hasWrite = true
      for (const target of (node as unknown as DeleteQueryNode).from.froms) addWrite(target, scope, acc)
      walkChildren(node, scope, acc, 'with', 'from')
      return
    }
    case 'MergeQueryNode':
      acc.hasWrite = true
      addWrite((node as unknown as MergeQueryNode).into, scope, acc)
      walkChildren(node, scope, acc, 'with', 'into')
      return
    default:
      walkChildren(node, scope, acc, 'with')
  }
}

/**
 * Walks the CTE bodies and returns the scope seen by the owning query.
 * Without RECURSIVE a body sees only the CTEs before it, so
 * `with person as (select * from person)` still reads the real table.
 */
function walkWith(withNode: WithNode, outer: Scope | undefined, acc: Acc): Scope | undefined {
  const ctes = withNode.expressions
  let full = outer
  for (const cte of ctes) full = { name: cteName(cte), parent: full }
  let seen = outer
  for (const cte of ctes) {
    const body = cte.expression
    // A raw body may be any statement, including a write we cannot name.
    if (body.kind === 'RawNode' && !isTableRaw(body as RawNode)) acc.hiddenWrites = true
    walk(body, withNode.recursive === true ? full : seen, acc)
    seen = { name: cteName(cte), parent: seen }
  }
  return full
}

function cteName(cte: CommonTableExpressionNode): string {
  return cte.name.table.table.identifier.name
}

/** A FROM/JOIN/USING item: a table, a subquery, a function, or raw SQL. */
function walkRelation(item: OperationNode, scope: Scope | undefined, acc: Acc): void {
  const inner = item.kind === 'AliasNode' ? (item as AliasNode).node : item
  // A raw relation (`selectFrom(sql\`generate_series(1, 3)\`.as('g'))`) is
  // usually harmless, but it can name any table we cannot see, so a read
  // using one is never cached. `sql.table('x')` is recognised as a table.
  if (inner.kind === 'RawNode' && !isTableRaw(inner as RawNode)) acc.uncacheable = true
  walk(inner, scope, acc)
}

/** `sql.table('x')`: a raw node that is nothing but table references. */
function isTableRaw(raw: RawNode): boolean {
  if (raw.parameters.length === 0) return false
  for (const fragment of raw.sqlFragments) if (fragment !== '') return false
  for (const param of raw.parameters) if (param.kind !== 'TableNode') return false
  return true
}

function walkArgs(args: readonly OperationNode[], scope: Scope | undefined, acc: Acc): void {
  for (const arg of args) if (arg.kind !== 'TableNode') walk(arg, scope, acc)
}

function addWrite(target: OperationNode, scope: Scope | undefined, acc: Acc): void {
  switch (target.kind) {
    case 'TableNode':
      acc.writes.add(tableName(target as TableNode, acc.defaultSchema))
      return
    case 'AliasNode':
      addWrite((target as AliasNode).node, scope, acc)
      return
    case 'ListNode':
      for (const item of (target as ListNode).items) addWrite(item, scope, acc)
      return
    case 'RawNode':
      if (isTableRaw(target as RawNode)) {
        for (const param of (target as RawNode).parameters) addWrite(param, scope, acc)
        return
      }
  }
  // An unresolvable target: the statement writes something we cannot name.
  acc.hiddenWrites = true
  walk(target, scope, acc)
}

function addRead(table: TableNode, scope: Scope | undefined, acc: Acc): void {
  const id = table.table
  if (id.schema === undefined) {
    const name = id.identifier.name
    for (let s = scope; s !== undefined; s = s.parent) if (s.name === name) return
  }
  acc.reads.add(tableName(table, acc.defaultSchema))
}

function tableName(table: TableNode, defaultSchema: string): string {
  const id = table.table
  return qualify(id.schema === undefined ? defaultSchema : id.schema.name, id.identifier.name)
}

// Interned "schema.table" strings: building and hashing a fresh string per
// table was the largest cost of a walk. Bounded in case of generated names.
const qualifiedNames = new Map<string, Map<string, string>>()
let qualifiedCount = 0
const QUALIFIED_LIMIT = 10_000

function qualify(schema: string, table: string): string {
  const cached = qualifiedNames.get(schema)?.get(table)
  if (cached !== undefined) return cached
  if (qualifiedCount >= QUALIFIED_LIMIT) {
    qualifiedNames.clear()
    qualifiedCount = 0
  }
  let bySchema = qualifiedNames.get(schema)
  if (bySchema === undefined) {
    bySchema = new Map()
    qualifiedNames.set(schema, bySchema)
  }
  const name = `${schema}.${table}`
  bySchema.set(table, name)
  qualifiedCount++
  return name
}

/** Generic descent: robust to properties and node kinds not listed above. */
function walkChildren(
  node: AnyNode,
  scope: Scope | undefined,
  acc: Acc,
  skip1: string | undefined,
  skip2?: string,
): void {
  for (const key in node) {
    if (key === 'kind' || key === skip1 || key === skip2) continue
    const value = node[key]
    if (typeof value !== 'object' || value === null) continue
    if (Array.isArray(value)) {
      for (const item of value as readonly unknown[]) {
        if (isNode(item)) walk(item, scope, acc)
      }
    } else if (isNode(value)) {
      walk(value, scope, acc)
    }
  }
}

function isNode(value: unknown): value is OperationNode {
  return typeof value === 'object' && value !== null && typeof (value as { kind?: unknown }).kind === 'string'
}
