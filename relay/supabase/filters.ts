// postgres_changes filters as realtime-js sends them: `column=op.value`,
// with op one of eq, neq, lt, lte, gt, gte, in (`in.(a,b,c)`). Pure.
//
// Values are compared as upstream compares them, after casting the filter
// value to the column's type: numbers numerically, booleans as booleans,
// everything else as text (ISO timestamps then order as times do). SQL's
// NULL matches no filter, `neq` included.

export const FILTER_OPS = ['eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'in'] as const;
export type FilterOp = (typeof FILTER_OPS)[number];

export interface Filter {
  column: string;
  op: FilterOp;
  /** One value, or several for `in`; as text, normalised for the column's type by normalise(). */
  values: string[];
}

/** Most values in an `in` list (upstream allows 100). */
export const MAX_IN_VALUES = 100;

/** Parse `column=op.value`; returns an error message naming what is wrong and what works. */
export function parseFilter(text: string): Filter | string {
  const eq = text.indexOf('=');
  const dot = text.indexOf('.', eq + 1);
  if (eq <= 0 || dot < 0)
    return `filter "${text}" is not column=op.value (e.g. room_id=eq.42, id=in.(1,2,3)); ops: ${FILTER_OPS.join(', ')}`;
  const column = text.slice(0, eq).trim();
  const op = text.slice(eq + 1, dot) as FilterOp;
  const raw = text.slice(dot + 1);
  if (!FILTER_OPS.includes(op))
    return `filter operator "${op}" is not supported; supported: ${FILTER_OPS.join(', ')} (like, ilike, is and not.… are not)`;
  if (op !== 'in') return { column, op, values: [unquote(raw)] };
  if (!raw.startsWith('(') || !raw.endsWith(')')) return `filter "${text}": in takes a list, e.g. ${column}=in.(1,2,3)`;
  const values = splitList(raw.slice(1, -1));
  if (values.length === 0 || values.length > MAX_IN_VALUES)
    return `filter "${text}": in takes 1 to ${MAX_IN_VALUES} values`;
  return { column, op, values };
}

function splitList(body: string): string[] {
  if (body.trim() === '') return [];
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of body) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      out.push(unquote(cur.trim()));
      cur = '';
    } else cur += ch;
  }
  out.push(unquote(cur.trim()));
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

/** Does a row's value pass the filter (values already normalised)? */
export function matches(f: Filter, kind: ValueKind, v: unknown): boolean {
  const text = textOf(v);
  if (text === null) return false;
  switch (f.op) {
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

function ordered(op: 'lt' | 'lte' | 'gt' | 'gte', c: number): boolean {
  if (op === 'lt') return c < 0;
  if (op === 'lte') return c <= 0;
  if (op === 'gt') return c > 0;
  return c >= 0;
}
