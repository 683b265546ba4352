// A row event as a `postgres_changes` payload, exactly as realtime-js reads
// it: {ids, data: {schema, table, commit_timestamp, type, columns, record,
// old_record, errors}}. Values are re-encoded the way upstream encodes them
// (to_jsonb): int8 and numeric as JSON numbers (int8 past 2^53 stays a
// string), timestamptz with a `+00:00` offset, bytea as `\x…` hex. Pure.
import type { EventMessage } from '../../client/protocol.ts';
import type { ColumnInfo } from './catalog.ts';

export type ChangeType = 'INSERT' | 'UPDATE' | 'DELETE';

export interface ChangeData {
  schema: string;
  table: string;
  commit_timestamp: string;
  type: ChangeType;
  columns: ColumnInfo[];
  record?: Record<string, unknown>;
  old_record?: Record<string, unknown>;
  errors: string[] | null;
}

/** What upstream puts in `errors` when a row is over the size limit (its values over 64 bytes are left out). */
export const TOO_LARGE_ERROR = 'Error 413: Payload Too Large';
const KEPT_VALUE_BYTES = 64;

/**
 * The change an event is for subscribers of this door; null when it is not
 * one (a row moved out of a channel is, upstream, an UPDATE seen by the
 * filters of its new values only: its `moved: "in"` half carries it).
 */
export function changeOf(e: EventMessage, columns: ColumnInfo[]): ChangeData | null {
  if (e.moved === 'out' || (e.op !== 'insert' && e.op !== 'update' && e.op !== 'delete')) return null;
  const dot = e.table.indexOf('.');
  const schema = dot < 0 ? 'public' : e.table.slice(0, dot);
  const table = dot < 0 ? e.table : e.table.slice(dot + 1);
  const types = typesOf(columns);
  const type: ChangeType = e.moved === 'in' || e.op === 'update' ? 'UPDATE' : e.op === 'insert' ? 'INSERT' : 'DELETE';
  const data: ChangeData = { schema, table, commit_timestamp: e.commit_time, type, columns, errors: null };
  if (type === 'DELETE') data.old_record = upstreamRow(e.row, types);
  else {
    data.record = upstreamRow(e.row, types);
    data.old_record = e.old ? upstreamRow(e.old, types) : {};
  }
  return data;
}

/** Column name → type, made once per catalog read (the catalog hands out the same array until it reads again). */
const typeMaps = new WeakMap<ColumnInfo[], Map<string, string>>();

function typesOf(columns: ColumnInfo[]): Map<string, string> {
  let types = typeMaps.get(columns);
  if (!types) typeMaps.set(columns, (types = new Map(columns.map((c) => [c.name, c.type]))));
  return types;
}

/** The row the filters see: the new one, or for a DELETE the old one. */
export function filteredRow(d: ChangeData): Record<string, unknown> {
  return d.record ?? d.old_record ?? {};
}

/**
 * The `data` JSON; over `maxBytes`, upstream's answer: values over 64 bytes
 * are left out and `errors` says why, instead of a dropped connection.
 */
export function dataJson(d: ChangeData, maxBytes: number): string {
  const json = d.errors === null ? changeJson(d) : JSON.stringify(d);
  // A UTF-16 unit is at most 3 UTF-8 bytes: most rows need no byte count (as in hub/too-large.ts).
  if (json.length * 3 <= maxBytes || Buffer.byteLength(json) <= maxBytes) return json;
  const small: ChangeData = { ...d, errors: [TOO_LARGE_ERROR] };
  if (d.record) small.record = smallValues(d.record);
  if (d.old_record) small.old_record = smallValues(d.old_record);
  return JSON.stringify(small);
}

/** A table's `columns` as JSON, made once per catalog read like typesOf's map: the same for every row. */
const columnsJsons = new WeakMap<ColumnInfo[], string>();

/**
 * JSON.stringify(d) byte for byte (the keys in changeOf's order), with the
 * `columns` list serialised once per table instead of once per row.
 */
export function changeJson(d: ChangeData): string {
  let columns = columnsJsons.get(d.columns);
  if (columns === undefined) columnsJsons.set(d.columns, (columns = JSON.stringify(d.columns)));
  const record = d.record ? `,"record":${JSON.stringify(d.record)}` : '';
  const old = d.old_record ? `,"old_record":${JSON.stringify(d.old_record)}` : '';
  return `{"schema":${JSON.stringify(d.schema)},"table":${JSON.stringify(d.table)},"commit_timestamp":${JSON.stringify(d.commit_timestamp)},"type":"${d.type}","columns":${columns},"errors":${JSON.stringify(d.errors)}${record}${old}}`;
}

function smallValues(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row))
    if (Buffer.byteLength(JSON.stringify(v) ?? '') <= KEPT_VALUE_BYTES) out[k] = v;
  return out;
}

function upstreamRow(row: Record<string, unknown>, types: Map<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in row) out[k] = upstreamValue(types.get(k), row[k]);
  return out;
}

/** One of walcast's values (docs/protocol.md "Row values") as upstream encodes it. */
export function upstreamValue(type: string | undefined, v: unknown): unknown {
  if (v === null || type === undefined) return v;
  if (type.startsWith('_') && Array.isArray(v)) return v.map((x) => upstreamValue(type.slice(1), x));
  if (typeof v !== 'string') return v;
  switch (type) {
    case 'int8': {
      const n = Number(v);
      return Number.isSafeInteger(n) ? n : v;
    }
    case 'numeric': {
      const n = Number(v);
      return Number.isFinite(n) && String(n) === trimNumeric(v) ? n : v;
    }
    case 'timestamptz':
      return v.endsWith('Z') ? `${v.slice(0, -1)}+00:00` : v;
    case 'bytea':
      return `\\x${Buffer.from(v, 'base64').toString('hex')}`;
    default:
      return v;
  }
}

/** "1.50" → "1.5", "2.0" → "2": numeric text as JavaScript prints the same number. */
function trimNumeric(v: string): string {
  return v.includes('.') ? v.replace(/0+$/, '').replace(/\.$/, '') : v;
}
