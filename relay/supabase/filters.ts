// postgres_changes filters as realtime-js sends them: `column=op.value`,
// with op one of eq, neq, lt, lte, gt, gte, in (`in.(a,b,c)`), like and
// ilike (SQL patterns: `%` any run, `_` one character, `\` escapes) and is
// (`is.null`, `is.true`, `is.false`), each negated by a `not.` before it
// (`status=not.eq.done`), and several of them joined by commas, ANDed
// (`room=eq.1,score=gt.5`), as upstream realtime parses them. Pure.
//
// Values are compared as upstream compares them, after casting the filter
// value to the column's type: numbers numerically, booleans as booleans,
// everything else as text (ISO timestamps then order as times do). SQL's
// NULL matches no filter, `neq` included, but `is.null`.

export const FILTER_OPS = ['eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'in', 'like', 'ilike', 'is'] as const;
export type FilterOp = (typeof FILTER_OPS)[number];

export interface Filter {
  column: string;
  op: FilterOp;
  /** One value, or several for `in`; as text, normalised for the column's type by compileFilter(). */
  values: string[];
  /** like and ilike: the pattern, compiled by compileFilter(). */
  pattern?: LikePattern;
  /** `not.op.value`: SQL's NOT (op), so a NULL still matches nothing, but `not.is.null` matches every non-NULL. */
  negated?: boolean;
}

/** One of a binding's filters with how its column compares. */
export interface Conjunct {
  filter: Filter;
  kind: ValueKind;
}

/** Most filters one binding joins with commas. */
export const MAX_FILTERS = 10;

/** Is the filter looked up by value (eq or in, not negated) rather than checked row by row? */
export function isKeyed(f: Filter | null): f is Filter {
  return f !== null && !f.negated && (f.op === 'eq' || f.op === 'in');
}

/** The filter as the client wrote it (its values normalised). */
export function filterText(f: Filter): string {
  // A value with a comma or a parenthesis is quoted, so that the text parses back into the same filter.
  const q = (v: string) => (/[,()]/.test(v) ? `"${v}"` : v);
  const value = f.op === 'in' ? `(${f.values.map(q).join(',')})` : q(f.values[0]!);
  return `${f.column}=${f.negated ? 'not.' : ''}${f.op}.${value}`;
}

/** Most values in an `in` list (upstream allows 100). */
export const MAX_IN_VALUES = 100;

/** Parse `a=op.v,b=op.w`: filters joined by AND at commas outside quotes and parentheses, as upstream splits them. */
export function parseFilters(text: string): Filter[] | string {
  const parts = splitOutside(text);
  if (parts.length > MAX_FILTERS) return `filter "${text}": a binding joins at most ${MAX_FILTERS} filters`;
  const out: Filter[] = [];
  for (const part of parts) {
    if (part === '') return `filter "${text}" has an empty part (check for extra commas)`;
    const f = parseFilter(part);
    if (typeof f === 'string') return f;
    out.push(f);
  }
  return out;
}

/** Parse `column=op.value`; returns an error message naming what is wrong and what works. */
export function parseFilter(text: string): Filter | string {
  const eq = text.indexOf('=');
  const dot = text.indexOf('.', eq + 1);
  if (eq <= 0 || dot < 0)
    return `filter "${text}" is not column=op.value (e.g. room_id=eq.42, id=in.(1,2,3)); ops: ${FILTER_OPS.join(', ')}`;
  const column = text.slice(0, eq).trim();
  const negated = text.startsWith('not.', eq + 1);
  const opAt = negated ? eq + 5 : eq + 1;
  const opEnd = text.indexOf('.', opAt);
  if (opEnd < 0) return `filter "${text}" is not column=not.op.value (e.g. status=not.eq.done)`;
  const op = text.slice(opAt, opEnd) as FilterOp;
  const raw = text.slice(opEnd + 1);
  if (!FILTER_OPS.includes(op))
    return `filter operator "${op}" is not supported; supported: ${FILTER_OPS.join(', ')}, each also as not.<op>`;
  const parsed = parseValues(text, column, op, raw);
  return typeof parsed === 'string' || !negated ? parsed : { ...parsed, negated };
}

function parseValues(text: string, column: string, op: FilterOp, raw: string): Filter | string {
  if (op !== 'in') return { column, op, values: [unquote(raw)] };
  if (!raw.startsWith('(') || !raw.endsWith(')')) return `filter "${text}": in takes a list, e.g. ${column}=in.(1,2,3)`;
  const values = splitOutside(raw.slice(1, -1)).map(unquote);
  if (values.length === 0 || values.length > MAX_IN_VALUES)
    return `filter "${text}": in takes 1 to ${MAX_IN_VALUES} values`;
  return { column, op, values };
}

/** Split at commas outside double quotes and parentheses; parts trimmed, quotes kept. */
function splitOutside(body: string): string[] {
  if (body.trim() === '') return [];
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let depth = 0;
  for (const ch of body) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '(') depth++;
    else if (!quoted && ch === ')') depth = Math.max(0, depth - 1);
    if (ch === ',' && !quoted && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  out.push(cur.trim());
  return out;
}

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

const NUMERIC_TYPES = new Set(['int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'oid']);

export type ValueKind = 'number' | 'boolean' | 'text';

/** How a column of PostgreSQL type `type` (pg_type.typname) compares. */
export function kindOf(type: string): ValueKind {
  if (NUMERIC_TYPES.has(type)) return 'number';
  if (type === 'bool') return 'boolean';
  return 'text';
}

/** A filter value cast to the column's kind, as text; null if it cannot be one (`id=eq.abc` on an integer). */
export function normalise(value: string, kind: ValueKind): string | null {
  if (kind === 'number') {
    const n = Number(value);
    return value.trim() !== '' && Number.isFinite(n) ? String(n) : null;
  }
  if (kind === 'boolean') {
    const v = value.toLowerCase();
    if (v === 'true' || v === 't') return 'true';
    if (v === 'false' || v === 'f') return 'false';
    return null;
  }
  return value;
}

/** A row's value as the text normalise() gives for its kind; null for SQL NULL (or a missing column). */
export function textOf(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/**
 * The filter's values cast for a column of `kind` (and a like pattern
 * compiled), or why they cannot be: `id=eq.abc` on an integer, like on a
 * number, `is.true` on text. `column` names the column in the message.
 */
export function compileFilter(f: Filter, kind: ValueKind, column: string): Filter | string {
  if (f.op === 'is') {
    const v = f.values[0]!.toLowerCase();
    const value = v === 'unknown' ? 'null' : v;
    if (value === 'null' || (kind === 'boolean' && (value === 'true' || value === 'false')))
      return { ...f, values: [value] };
    return kind === 'boolean'
      ? `is takes null, true, false or unknown (got "${f.values[0]}")`
      : `is on ${column} (not a boolean) takes null (got "${f.values[0]}")`;
  }
  if (f.op === 'like' || f.op === 'ilike') {
    if (kind !== 'text') return `${f.op} compares text, and ${column} is a ${kind} column`;
    if ([...f.values[0]!].length > MAX_LIKE_CHARS) return `a ${f.op} pattern is at most ${MAX_LIKE_CHARS} characters`;
    return { ...f, pattern: likePattern(f.values[0]!, f.op === 'ilike') };
  }
  const values: string[] = [];
  for (const v of f.values) {
    const n = normalise(v, kind);
    if (n === null) return `"${v}" is not a value of ${column}`;
    values.push(n);
  }
  return { ...f, values };
}

const ANY_RUN = Symbol('%');
const ANY_ONE = Symbol('_');
/** A like pattern: literal characters (code points), `%` and `_`. */
export interface LikePattern {
  tokens: (string | typeof ANY_RUN | typeof ANY_ONE)[];
  insensitive: boolean;
}
/** Longest like/ilike pattern, in characters: matching costs at most its length times the value's. */
export const MAX_LIKE_CHARS = 256;

/** SQL LIKE's pattern: `%` any run, `_` one character, `\` takes the next one literally. */
export function likePattern(pattern: string, insensitive: boolean): LikePattern {
  const chars = [...(insensitive ? pattern.toLowerCase() : pattern)];
  const tokens: LikePattern['tokens'] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '\\' && i + 1 < chars.length) tokens.push(chars[++i]!);
    else tokens.push(ch === '%' ? ANY_RUN : ch === '_' ? ANY_ONE : ch);
  }
  return { tokens, insensitive };
}

/**
 * Does `text` match? Wildcard matching that returns to the last `%` only,
 * so it takes at most pattern × text steps (a regular expression of `.*`s
 * can take exponentially many on a hostile pattern).
 */
export function likeMatches(p: LikePattern, text: string): boolean {
  const s = [...(p.insensitive ? text.toLowerCase() : text)];
  const t = p.tokens;
  let i = 0;
  let j = 0;
  let star = -1;
  let mark = 0;
  while (i < s.length) {
    if (j < t.length && t[j] !== ANY_RUN && (t[j] === ANY_ONE || t[j] === s[i])) {
      i++;
      j++;
    } else if (j < t.length && t[j] === ANY_RUN) {
      star = j++;
      mark = i;
    } else if (star >= 0) {
      j = star + 1;
      i = ++mark;
    } else return false;
  }
  while (t[j] === ANY_RUN) j++;
  return j === t.length;
}

/** Does a row's value pass the filter (compiled by compileFilter)? */
export function matches(f: Filter, kind: ValueKind, v: unknown): boolean {
  const text = textOf(v);
  if (f.op === 'is') return (f.values[0] === 'null' ? text === null : text === f.values[0]) !== (f.negated === true);
  if (text === null) return false;
  return passes(f, kind, text) !== (f.negated === true);
}

function passes(f: Filter, kind: ValueKind, text: string): boolean {
  switch (f.op) {
    case 'like':
    case 'ilike':
      return likeMatches(f.pattern!, text);
    case 'eq':
      return text === f.values[0];
    case 'neq':
      return text !== f.values[0];
    case 'in':
      return f.values.includes(text);
    default:
      return ordered(f.op, compare(kind, text, f.values[0]!));
  }
}

function compare(kind: ValueKind, a: string, b: string): number {
  if (kind === 'number') return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

function ordered(op: FilterOp, c: number): boolean {
  if (op === 'lt') return c < 0;
  if (op === 'lte') return c <= 0;
  if (op === 'gt') return c > 0;
  return c >= 0;
}
