/**
 * What a raw SQL statement (`sql\`…\``, `CompiledQuery.raw`) does, judged from
 * its text. Raw statements are opaque to the node walk, so this errs on the side
 * of "write": a wrong "write" costs cache hits, a wrong "read" serves stale rows.
 */
export type RawStatementKind = 'read' | 'write' | 'begin' | 'commit' | 'rollback' | 'other'

const READ_VERBS = new Set(['select', 'values', 'show', 'table', 'fetch'])
const DATA_MODIFYING = /\b(insert|update|delete|merge|truncate|copy|call|do|refresh)\b/i
/** Session and transaction bookkeeping that neither reads nor writes tables. */
const OTHER_VERBS = new Set(['set', 'reset', 'savepoint', 'release', 'listen', 'unlisten', 'notify', 'prepare', 'deallocate', 'discard'])

export function classifyRawStatement(sql: string): RawStatementKind {
  const verb = leadingWord(sql)
  switch (verb) {
    case 'begin':
    case 'start':
      return 'begin'
    case 'commit':
    case 'end':
      return 'commit'
    case 'rollback':
    case 'abort':
      // `rollback to savepoint` keeps the transaction open.
      return /^\s*rollback\s+to\b/i.test(stripComments(sql)) ? 'other' : 'rollback'
  }
  if (OTHER_VERBS.has(verb)) {
    return 'other'
  }
  // `with` and `explain analyze` run what they wrap: they read only if nothing in them writes.
  if ((READ_VERBS.has(verb) || verb === 'explain' || verb === 'with') && !DATA_MODIFYING.test(sql)) {
    return 'read'
  }
  return 'write'
}

function leadingWord(sql: string): string {
  const match = /^[\s(]*([A-Za-z]+)/.exec(stripComments(sql))
  return match?.[1]?.toLowerCase() ?? ''
}

function stripComments(sql: string): string {
  return sql.replace(/^(\s*(--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/))+/, '')
}
