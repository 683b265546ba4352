// Column names and types of registered tables, as postgres_changes frames
// list them (`columns: [{name, type}]`, type as pg_type.typname: int4,
// text, timestamptz, _int4 for an array). Read from the catalog at join,
// kept for a few seconds so that many joins at once cost one query per table.
import type pg from 'pg';
import { shortName } from '../table-names.ts';

export interface ColumnInfo {
  name: string;
  type: string;
}

/** How long a table's columns are reused before they are read again. */
const FRESH_MS = 5000;

export class Catalog {
  private readonly tables = new Map<string, { atMs: number; columns: Promise<ColumnInfo[]> }>();
  /** The last columns read of each table by short name (as events name it), for frames built per event (which must not wait). */
  private readonly known = new Map<string, ColumnInfo[]>();

  constructor(private readonly pool: pg.Pool) {}

  /** The columns of schema.table in order; [] when there is no such table. */
  columns(schema: string, table: string): Promise<ColumnInfo[]> {
    const key = `${schema}.${table}`;
    const hit = this.tables.get(key);
    if (hit && Date.now() - hit.atMs < FRESH_MS) return hit.columns;
    const columns = this.read(schema, table).then((cols) => {
      this.known.set(shortName({ schema, table }), cols);
      return cols;
    });
    this.tables.set(key, { atMs: Date.now(), columns });
    columns.catch(() => this.tables.delete(key));
    return columns;
  }

  /** The columns last read of a table, named as an event's `table` is ([] if never read: a join reads them first). */
  cached(short: string): ColumnInfo[] {
    return this.known.get(short) ?? [];
  }

  private async read(schema: string, table: string): Promise<ColumnInfo[]> {
    const { rows } = await this.pool.query<ColumnInfo>(
      `SELECT a.attname AS name, t.typname AS type
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_type t ON t.oid = a.atttypid
        WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [schema, table],
    );
    return rows;
  }
}
