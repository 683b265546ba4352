// Which columns make a row's topic: per registered table, its channel column
// and its primary-key columns other than the channel column (those are the
// key levels of `<table>/<channel>/<key…>`). Read from pg_index for every
// registration at start and again whenever an event names a table not read
// yet (a table registered while the relay runs); until that read returns,
// such a table's rows go out on `<table>/<channel>`.
import type pg from 'pg';
import type { Registration } from '../db/registry.ts';
import { shortName } from '../table-names.ts';
import type { Logger } from '../log.ts';

export interface TableTopic {
  reg: Registration;
  channelColumn: string;
  /** Primary-key columns after the channel column, in key order. */
  keys: string[];
}

const KEYS_SQL = `
  SELECT n.nspname AS schema, c.relname AS table,
         array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum)) AS keys
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
   WHERE i.indisprimary
     AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
   GROUP BY 1, 2`;

export class TableKeys {
  private tables = new Map<string, TableTopic>();
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly registrations: () => Registration[],
    private readonly logger: Logger,
  ) {}

  /** The table's topic columns, or undefined (and a read started) if not known yet. */
  get(table: string): TableTopic | undefined {
    const t = this.tables.get(table);
    if (!t) void this.refresh();
    return t;
  }

  /** The table's topic columns if known, without starting a read. */
  known(table: string): TableTopic | undefined {
    return this.tables.get(table);
  }

  /** Read the keys again if `table` is registered but not known yet (registered while the relay runs). */
  async refreshIfUnknown(table: string): Promise<void> {
    if (this.tables.has(table)) return;
    if (this.registrations().some((r) => shortName(r) === table)) await this.refresh();
  }

  /** Known tables, by the name events carry. */
  list(): TableTopic[] {
    return [...this.tables.values()];
  }

  refresh(): Promise<void> {
    this.refreshing ??= this.read().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async read(): Promise<void> {
    const regs = this.registrations();
    try {
      const { rows } = await this.pool.query<{ schema: string; table: string; keys: string[] }>(KEYS_SQL, [
        regs.map((r) => r.schema),
        regs.map((r) => r.table),
      ]);
      const keys = new Map(rows.map((r) => [`${r.schema}.${r.table}`, r.keys]));
      const next = new Map<string, TableTopic>();
      for (const reg of regs) {
        const pk = keys.get(`${reg.schema}.${reg.table}`) ?? [];
        next.set(shortName(reg), {
          reg,
          channelColumn: reg.channelColumn,
          keys: pk.filter((k) => k !== reg.channelColumn),
        });
      }
      this.tables = next;
    } catch (err) {
      this.logger.warn(
        { err },
        'MQTT: reading the primary keys of the registered tables failed; retried on the next unknown table',
      );
    }
  }
}

/** A key value as a topic level: text as it is, numbers and booleans printed, anything else as JSON. */
export function keyText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value) ?? '';
}
