// What a registered table accepts from a client, read from the catalog
// (pg_attribute, pg_attrdef) and walcast.tables: its columns and types, which
// of them the server owns, the claims bound to columns, and the JSON Schema a
// row must match: the one stored with the registration, or one derived from
// the column types. Identifiers used in SQL come from here, never from the
// client's text.
import type pg from 'pg';
import type { Registration } from '../db/registry.ts';

export interface Column {
  name: string;
  /** pg_type.typname of the column's type, of its base type for a domain (`int4`, `_text`, `jsonb`). */
  type: string;
  /** typname of the element type, for arrays. */
  element: string | null;
  notNull: boolean;
  hasDefault: boolean;
  /** Identity, generated, or a default the server computes (now(), nextval, gen_random_uuid): never set by a client. */
  serverOwned: boolean;
  /** varchar(n)/char(n): n. */
  maxLength: number | null;
  /** Part of the primary key. */
  key: boolean;
  /** A default on a date/time column (updated_at): reset by an upsert's update too. */
  timeDefault: boolean;
}

export interface TableShape {
  columns: Map<string, Column>;
  /** column → claim (e.g. sender → sub): the column's value comes from the token. */
  claimColumns: Map<string, string>;
  /** The stored JSON Schema, or null to derive one. */
  rowSchema: object | null;
}

/** Defaults computed by the server at insert time: the column belongs to it. */
const SERVER_DEFAULT =
  /\b(nextval|now|clock_timestamp|statement_timestamp|transaction_timestamp|gen_random_uuid|uuidv4|uuidv7|uuid_generate_v[1-5]|random)\s*\(|\bCURRENT_(TIMESTAMP|DATE|TIME)\b|\bLOCAL(TIMESTAMP|TIME)\b/i;

const COLUMNS_SQL = `
  SELECT a.attname AS name,
         coalesce(bt.typname, t.typname) AS type,
         et.typname AS element,
         a.attnotnull AS not_null,
         a.atthasdef AS has_default,
         a.attidentity <> '' OR a.attgenerated <> '' AS generated,
         pg_get_expr(d.adbin, d.adrelid) AS default_expr,
         CASE WHEN coalesce(bt.typname, t.typname) IN ('varchar', 'bpchar') AND a.atttypmod > 4 THEN a.atttypmod - 4 END AS max_length,
         EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey)) AS key
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
  LEFT JOIN pg_type et ON et.oid = coalesce(bt.typelem, t.typelem) AND coalesce(bt.typcategory, t.typcategory) = 'A'
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND a.attnum > 0 AND NOT a.attisdropped
  ORDER BY a.attnum`;

interface ColumnRow {
  name: string;
  type: string;
  element: string | null;
  not_null: boolean;
  has_default: boolean;
  generated: boolean;
  default_expr: string | null;
  max_length: number | null;
  key: boolean;
}

export async function readShape(pool: pg.Pool, reg: Registration): Promise<TableShape> {
  const [{ rows: cols }, { rows: regs }] = await Promise.all([
    pool.query<ColumnRow>(COLUMNS_SQL, [reg.schema, reg.table]),
    pool.query<{ row_schema: object | null; claim_columns: Record<string, unknown> | null }>(
      'SELECT row_schema, claim_columns FROM walcast.tables WHERE schema_name = $1 AND table_name = $2',
      [reg.schema, reg.table],
    ),
  ]);
  const columns = new Map<string, Column>();
  for (const c of cols) {
    const timeDefault = c.has_default && /^(timestamptz|timestamp|date|time|timetz)$/.test(c.type);
    columns.set(c.name, {
      name: c.name,
      type: c.type,
      element: c.element,
      notNull: c.not_null,
      hasDefault: c.has_default,
      serverOwned: c.generated || timeDefault || (c.default_expr !== null && SERVER_DEFAULT.test(c.default_expr)),
      maxLength: c.max_length,
      key: c.key,
      timeDefault,
    });
  }
  const claimColumns = new Map<string, string>();
  for (const [column, claim] of Object.entries(regs[0]?.claim_columns ?? {})) {
    if (typeof claim === 'string' && columns.has(column)) claimColumns.set(column, claim);
  }
  return { columns, claimColumns, rowSchema: regs[0]?.row_schema ?? null };
}

/** A JSON Schema for the client-settable columns of `shape`, from their types. */
export function deriveSchema(shape: TableShape): object {
  const properties: Record<string, object> = {};
  const required: string[] = [];
  for (const c of shape.columns.values()) {
    if (c.serverOwned) continue;
    const base = c.element
      ? { type: 'array', maxItems: 10_000, items: nullable(typeSchema(c.element, null)) }
      : typeSchema(c.type, c.maxLength);
    properties[c.name] = c.notNull ? base : nullable(base);
    if (c.notNull && !c.hasDefault && !shape.claimColumns.has(c.name)) required.push(c.name);
  }
  return { type: 'object', properties, required, additionalProperties: false };
}

function nullable(schema: object): object {
  return { anyOf: [schema, { type: 'null' }] };
}

const INTEGER = /^-?\d{1,20}$/;
const NUMERIC = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

function typeSchema(type: string, maxLength: number | null): object {
  switch (type) {
    case 'int2':
      return { type: 'integer', minimum: -32768, maximum: 32767 };
    case 'int4':
      return { type: 'integer', minimum: -2147483648, maximum: 2147483647 };
    case 'int8':
      return { anyOf: [{ type: 'integer' }, { type: 'string', pattern: INTEGER.source }] };
    case 'numeric':
      return { anyOf: [{ type: 'number' }, { type: 'string', pattern: NUMERIC.source, maxLength: 200 }] };
    case 'float4':
    case 'float8':
      return { anyOf: [{ type: 'number' }, { enum: ['NaN', 'Infinity', '-Infinity'] }] };
    case 'bool':
      return { type: 'boolean' };
    case 'json':
    case 'jsonb':
      return {};
    case 'uuid':
      return { type: 'string', format: 'uuid' };
    case 'bytea':
      return { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' };
    case 'text':
    case 'varchar':
    case 'bpchar':
    case 'name':
    case 'citext':
      return maxLength === null ? { type: 'string' } : { type: 'string', maxLength };
    default:
      // Dates, enums, inet and the rest: PostgreSQL's text form, checked by PostgreSQL.
      return { type: ['string', 'number', 'boolean'] };
  }
}
