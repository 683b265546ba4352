// A phx_join's postgres_changes bindings: parsed, checked against the
// registered tables and their columns, and authorised with walcast's grants.
// How Supabase's RLS maps onto the grants (docs/supabase.md):
//   - an `eq` (or `in`) filter on the table's channel column must name
//     channels the token may subscribe to, or the join is refused;
//   - any other binding (no filter, a filter on another column) gets, row by
//     row, only the rows of channels the token may subscribe to, like RLS
//     hiding rows; a token that grants no channel at all is refused.
import { WalcastError } from '../errors.ts';
import type { Grants } from '../auth/grants.ts';
import type { Registration } from '../db/registry.ts';
import { shortName } from '../table-names.ts';
import { bindingId, type ChangeEvent } from './bindings.ts';
import type { Catalog, ColumnInfo } from './catalog.ts';
import { compileFilter, isKeyed, kindOf, parseFilters, type Conjunct, type Filter, type ValueKind } from './filters.ts';

/** A binding as the client sent it, echoed in the join reply with its id. */
export interface BindingEcho {
  id: number;
  event: string;
  schema: string;
  table?: string;
  filter?: string;
}

export interface BindingSpec {
  echo: BindingEcho;
  event: ChangeEvent;
  /** Short name, or '*' for every registered table. */
  table: string;
  filter: Filter | null;
  kind: ValueKind;
  /** Its other filters (joined by commas): the index keys on `filter`. */
  also: Conjunct[];
  /** Rows must pass grants.canSubscribe(channel) one by one (not an authorised filter on the channel column). */
  checkRows: boolean;
}

/** Most bindings one channel may hold. */
export const MAX_BINDINGS = 100;
const EVENTS: readonly string[] = ['*', 'INSERT', 'UPDATE', 'DELETE'];

export interface JoinContext {
  grants: Grants;
  authRequired: boolean;
  registrations: () => Registration[];
  catalog: Catalog;
}

/** Check every binding; throws WalcastError (supabase_*) naming the first that cannot be served. */
export async function bindingsOf(raw: unknown, ctx: JoinContext): Promise<BindingSpec[]> {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw) || raw.length > MAX_BINDINGS)
    throw new WalcastError('supabase_bad_message', {
      detail: `config.postgres_changes must be a list of at most ${MAX_BINDINGS} bindings`,
    });
  const out: BindingSpec[] = [];
  for (const b of raw) out.push(await bindingOf(b as Record<string, unknown>, ctx));
  return out;
}

async function bindingOf(b: Record<string, unknown>, ctx: JoinContext): Promise<BindingSpec> {
  const event = typeof b?.event === 'string' ? b.event.toUpperCase() : '';
  if (!EVENTS.includes(event))
    throw new WalcastError('supabase_bad_message', { detail: 'a binding needs event "*", INSERT, UPDATE or DELETE' });
  const schema = typeof b.schema === 'string' ? b.schema : 'public';
  const tableName = typeof b.table === 'string' && b.table !== '*' ? b.table : undefined;
  const filterText = typeof b.filter === 'string' && b.filter !== '' ? b.filter : undefined;
  const echo: BindingEcho = {
    id: bindingId(String(b.event), schema, b.table as string, filterText),
    event: String(b.event),
    schema,
  };
  if (b.table !== undefined) echo.table = b.table as string;
  if (b.filter !== undefined) echo.filter = b.filter as string;
  const regs = ctx
    .registrations()
    .filter((r) => (schema === '*' || r.schema === schema) && (!tableName || r.table === tableName));
  if (regs.length === 0)
    throw new WalcastError('supabase_table_not_registered', {
      table: tableName ? `${schema}.${tableName}` : `${schema}.*`,
    });
  const spec: BindingSpec = {
    echo,
    event: event as ChangeEvent,
    table: '*',
    filter: null,
    kind: 'text',
    also: [],
    checkRows: true,
  };
  if (tableName) spec.table = shortName(regs[0]!);
  if (filterText) {
    if (!tableName) throw unsupported(filterText, `${schema}.*`, 'a filter needs a table');
    const reg = regs[0]!;
    const columns = await ctx.catalog.columns(reg.schema, reg.table);
    const [first, ...also] = checkedFilters(filterText, spec.table, columns, reg.channelColumn);
    spec.filter = first!.filter;
    spec.kind = first!.kind;
    spec.also = also;
    spec.checkRows = authorise(spec.filter, reg, ctx);
  } else {
    for (const r of regs) await ctx.catalog.columns(r.schema, r.table);
    spec.checkRows = authorise(null, regs[0]!, ctx);
  }
  return spec;
}

/**
 * The binding's filters, cast for their columns, the one the index keys on
 * first: an eq/in on the channel column (it also decides what the token
 * must grant), else any eq/in, else the first written.
 */
function checkedFilters(text: string, table: string, columns: ColumnInfo[], channelColumn: string): Conjunct[] {
  const parsed = parseFilters(text);
  if (typeof parsed === 'string') throw unsupported(text, table, parsed);
  const out: Conjunct[] = [];
  for (const f of parsed) {
    const column = columns.find((c) => c.name === f.column);
    if (!column) throw unsupported(text, table, `${table} has no column ${f.column}`);
    const kind = kindOf(column.type);
    const compiled = compileFilter(f, kind, `${f.column} (${column.type})`);
    if (typeof compiled === 'string') throw unsupported(text, table, compiled);
    out.push({ filter: compiled, kind });
  }
  const rank = (c: Conjunct) => (isKeyed(c.filter) ? (c.filter.column === channelColumn ? 0 : 1) : 2);
  const first = out.reduce((best, c) => (rank(c) < rank(best) ? c : best));
  return [first, ...out.filter((c) => c !== first)];
}

/** Refuse what the token may never read; returns whether rows must still be checked one by one. */
function authorise(filter: Filter | null, reg: Registration, ctx: JoinContext): boolean {
  if (!ctx.authRequired) return false;
  const { grants } = ctx;
  const onChannel = isKeyed(filter) && filter.column === reg.channelColumn;
  if (onChannel) {
    const refused = filter.values.find((v) => !grants.canSubscribe(v));
    if (refused !== undefined)
      throw new WalcastError('supabase_forbidden', { what: `channel ${refused} of ${shortName(reg)}` });
    return false;
  }
  if (grants.canSubscribe('*') && channelPatterns(grants).includes('*')) return false;
  if (channelPatterns(grants).length === 0)
    throw new WalcastError('supabase_forbidden', { what: `${shortName(reg)} (the token grants no channels)` });
  return true;
}

function channelPatterns(grants: Grants): string[] {
  const c = grants.claims.channels;
  if (typeof c === 'string') return [c];
  return Array.isArray(c) ? c.filter((x): x is string => typeof x === 'string') : [];
}

function unsupported(filter: string, table: string, detail: string): WalcastError {
  return new WalcastError('supabase_filter_unsupported', { filter, table, detail });
}
