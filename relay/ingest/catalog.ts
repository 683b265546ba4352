// What walcast.brokers and walcast.flows say, read as the relay runs them:
// each flow with its parsed topic filter, its compiled schema and, for a
// table target, the columns the relay may write and the primary key. A flow
// that cannot run (its table is gone, its schema does not compile) is kept
// with its reason, so that it is reported instead of silently skipped.
import type pg from 'pg';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { WalcastError } from '../errors.ts';
import { parseFlowFilter, type FlowFilter } from './topics.ts';

export type FlowAction = 'insert' | 'upsert' | 'post';

export interface BrokerDef {
  name: string;
  url: string;
  username: string | null;
  password: string | null;
  clientId: string | null;
  clean: boolean;
}

export interface TableInfo {
  /** Schema-qualified and quoted, ready for SQL. */
  sql: string;
  /** Columns a row may set (not generated, not dropped). */
  columns: Set<string>;
  primaryKey: string[];
}

export interface Flow {
  name: string;
  broker: string;
  action: FlowAction;
  target: string;
  qos: 0 | 1;
  dedupKey: string | null;
  filter: FlowFilter;
  validate: ValidateFunction | undefined;
  /** For insert and upsert. */
  table: TableInfo | undefined;
  /** Changes when any of the definition does (the relay swaps the flow then). */
  version: string;
}

/** A flow the relay does not run, and why (an ingest_flow_invalid message). */
export interface BrokenFlow {
  name: string;
  broker: string;
  error: WalcastError;
}

interface FlowRow {
  name: string;
  broker: string;
  topic_filter: string;
  action: FlowAction;
  target: string;
  schema: object | null;
  qos: number;
  dedup_key: string | null;
  updated_at: Date;
}

export interface Catalog {
  brokers: BrokerDef[];
  flows: Flow[];
  broken: BrokenFlow[];
}

export async function readCatalog(pool: pg.Pool): Promise<Catalog> {
  const brokers = await pool.query<BrokerDef>(
    `SELECT name, url, username, password, client_id AS "clientId", clean FROM walcast.brokers ORDER BY name`,
  );
  const flows = await pool.query<FlowRow>(
    `SELECT name, broker, topic_filter, action, target, schema, qos, dedup_key, updated_at
     FROM walcast.flows WHERE enabled ORDER BY name`,
  );
  const tables = await readTables(
    pool,
    flows.rows.filter((f) => f.action !== 'post').map((f) => f.target),
  );
  const out: Catalog = { brokers: brokers.rows, flows: [], broken: [] };
  for (const row of flows.rows) {
    try {
      out.flows.push(toFlow(row, tables));
    } catch (err) {
      const error =
        err instanceof WalcastError
          ? err
          : new WalcastError('ingest_flow_invalid', { flow: row.name, detail: (err as Error).message }, err);
      out.broken.push({ name: row.name, broker: row.broker, error });
    }
  }
  forgetUnusedSchemas();
  return out;
}

function toFlow(row: FlowRow, tables: Map<string, TableInfo | string>): Flow {
  const invalid = (detail: string) => new WalcastError('ingest_flow_invalid', { flow: row.name, detail });
  const filter = parseFlowFilter(row.topic_filter);
  let table: TableInfo | undefined;
  if (row.action !== 'post') {
    const t = tables.get(row.target);
    if (t === undefined || typeof t === 'string') throw invalid(t ?? `its target table ${row.target} does not exist`);
    if (row.action === 'upsert' && t.primaryKey.length === 0)
      throw invalid(`its target table ${row.target} has no primary key, which upsert needs`);
    const missing = filter.captures.filter((c) => !t.columns.has(c));
    if (missing.length)
      throw invalid(`its target table ${row.target} has no column ${missing.join(', ')} to capture into`);
    table = t;
  }
  return {
    name: row.name,
    broker: row.broker,
    action: row.action,
    target: row.target,
    qos: row.qos === 0 ? 0 : 1,
    dedupKey: row.dedup_key,
    filter,
    validate: row.schema ? compileSchema(row.schema, invalid) : undefined,
    table,
    version: `${row.updated_at.getTime()}`,
  };
}

/**
 * Compiled schemas by their JSON text: the catalog is read every second and
 * each read makes new objects, which one Ajv would compile (and keep) anew
 * each time. A schema no flow uses any more is dropped at the next read. Each
 * gets its own Ajv, so two versions of a schema with the same $id do not clash.
 */
let compiled = new Map<string, ValidateFunction>();
let used = new Map<string, ValidateFunction>();

/** Called after each read: what it did not use is forgotten. */
function forgetUnusedSchemas(): void {
  compiled = used;
  used = new Map();
}

function compileSchema(schema: object, invalid: (detail: string) => Error): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = compiled.get(key) ?? used.get(key);
  if (!validate) {
    const ajv = new Ajv({ allErrors: true, strict: false });
    (addFormats as unknown as (ajv: Ajv) => void)(ajv);
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      throw invalid(`its schema is not a JSON Schema ajv can compile: ${(err as Error).message}`);
    }
  }
  used.set(key, validate);
  return validate;
}

/** Each target's columns and primary key, or why the relay cannot write it. */
async function readTables(pool: pg.Pool, targets: string[]): Promise<Map<string, TableInfo | string>> {
  const out = new Map<string, TableInfo | string>();
  if (targets.length === 0) return out;
  const { rows } = await pool.query<{
    target: string;
    sql: string | null;
    columns: string[] | null;
    pk: string[] | null;
    writable: boolean | null;
  }>(
    `SELECT t.target,
            format('%I.%I', n.nspname, c.relname) AS sql,
            (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns,
            (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
               CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
            has_table_privilege(c.oid, 'INSERT') AS writable
     FROM unnest($1::text[]) AS t(target)
     LEFT JOIN pg_class c ON c.oid = to_regclass(t.target)
     LEFT JOIN pg_namespace n ON n.oid = c.relnamespace`,
    [[...new Set(targets)]],
  );
  for (const r of rows) {
    if (!r.sql) out.set(r.target, `its target table ${r.target} does not exist`);
    else if (!r.writable) out.set(r.target, `the relay's role may not INSERT into ${r.target}`);
    else out.set(r.target, { sql: r.sql, columns: new Set(r.columns ?? []), primaryKey: r.pk ?? [] });
  }
  return out;
}
