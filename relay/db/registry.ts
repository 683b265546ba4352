// Registered tables (walcast.tables), read once at start with Drizzle and
// then kept current from the replication stream: walcast.tables is in the
// publication with REPLICA IDENTITY FULL, so every change carries whole rows.
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { walcastTables } from './schema.ts';

export interface Registration {
  schema: string;
  table: string;
  channelColumn: string;
  /** Interval as PostgreSQL prints it (`7 days`, `00:02:00`); null: kept forever. */
  ttl: string | null;
  timeColumn: string | null;
  /** What a snapshot sends: every row of the channel (state) or the newest (events). */
  kind: 'events' | 'state';
  /**
   * Generated columns the publication does not send (PostgreSQL before 18):
   * left out of snapshot rows too, and listed in every event's `omitted`.
   */
  omitted: string[];
}

/** Any Drizzle PostgreSQL database; its schema type does not matter here. */
// biome-ignore lint/suspicious/noExplicitAny: the schema parameter is any schema
export type AnyPgDatabase = PgDatabase<PgQueryResultHKT, any>;

export async function loadRegistrations(db: AnyPgDatabase): Promise<Registration[]> {
  const rows = await db
    .select({
      schema: walcastTables.schemaName,
      table: walcastTables.tableName,
      channelColumn: walcastTables.channelColumn,
      ttl: walcastTables.ttl,
      timeColumn: walcastTables.timeColumn,
      kind: walcastTables.kind,
      // Computed now, not as recorded: the publication may have changed since.
      omitted: sql<
        string[]
      >`walcast.omitted_columns(to_regclass(format('%I.%I', ${walcastTables.schemaName}, ${walcastTables.tableName})), walcast.publication_name())`,
    })
    .from(walcastTables)
    .orderBy(walcastTables.schemaName, walcastTables.tableName);
  return rows;
}

/**
 * The registration in a decoded walcast.tables row (keys are the SQL column
 * names, values text or null), or null when the row lacks a name or the
 * channel column, e.g. an old row that carries only the key.
 */
export function registrationFromRow(row: Record<string, unknown>): Registration | null {
  const schema = nonEmpty(row.schema_name);
  const table = nonEmpty(row.table_name);
  const channelColumn = nonEmpty(row.channel_column);
  if (schema === null || table === null || channelColumn === null) return null;
  const kind = row.kind === 'state' ? 'state' : 'events';
  const omitted = Array.isArray(row.omitted_columns)
    ? row.omitted_columns.filter((c): c is string => typeof c === 'string')
    : [];
  return { schema, table, channelColumn, ttl: nonEmpty(row.ttl), timeColumn: nonEmpty(row.time_column), kind, omitted };
}

function nonEmpty(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}
