// The SQL of one publish, and the checks that run inside its transaction.
// A published row is written in one transaction:
//
//   1. state tables (upsert): SELECT … FOR UPDATE the row with the same key.
//      If it exists, its channel must be one the token may publish on;
//      otherwise the upsert could take over (and move) a row of a channel
//      the token may not touch.
//   2. INSERT … [ON CONFLICT (key) DO UPDATE … WHERE <the row was seen>]
//      RETURNING the channel the row actually got (defaults and triggers
//      included); it too must be one the token may publish on.
//   3. COMMIT, or ROLLBACK when a check failed: nothing was written.
//
// The WHERE of the upsert closes the race with a concurrent insert of the
// same key: a row that did not exist at step 1 is not updated (zero rows),
// and the steps run again, now locking and checking that row. Identifiers
// come from the catalog; every value is a parameter.
import { sql, type SQL } from 'drizzle-orm';
import type { Registration } from '../db/registry.ts';
import type { Grants } from '../auth/grants.ts';
import type { Column, TableShape } from './columns.ts';

/** The column name under which RETURNING gives the row's channel. */
const CHANNEL_ALIAS = 'walcast_channel';

export type WriteOutcome = { ok: true } | { ok: false; reason: string };

/** What runs statements in the publish transaction (a Drizzle transaction). */
export interface Executor {
  execute(query: SQL): Promise<{ rows: Record<string, unknown>[] }>;
}

/** Thrown inside the transaction to roll it back with a refusal. */
export class Refused extends Error {}

/** Write `row` (already validated and bound) for `grants`; throws Refused to roll back. */
export async function writeRow(
  tx: Executor,
  reg: Registration,
  shape: TableShape,
  row: Record<string, unknown>,
  grants: Grants,
): Promise<void> {
  const table = sql`${sql.identifier(reg.schema)}.${sql.identifier(reg.table)}`;
  const channel = sql`${sql.identifier(reg.channelColumn)}::text AS ${sql.identifier(CHANNEL_ALIAS)}`;
  const keys = upsertKeys(reg, shape, row);
  // Twice at most: a row with the key may appear (committed by another
  // client) between the lock and the upsert; then it is locked and checked.
  for (let attempt = 0; attempt < 2; attempt++) {
    const existing = keys ? await lockExisting(tx, table, channel, keys, row, grants) : false;
    const { rows } = await tx.execute(sql`${insert(table, shape, row, keys, existing)} RETURNING ${channel}`);
    if (rows.length === 0) {
      if (existing) return; // DO NOTHING on the row seen, and allowed, above
      continue;
    }
    const landed = rows[0]![CHANNEL_ALIAS];
    if (!allowed(grants, landed)) {
      throw new Refused(
        landed === null
          ? 'the row would have no channel'
          : 'the row would land in a channel this connection may not publish on (a default or trigger set it)',
      );
    }
    return;
  }
  throw new Refused('a row with this key keeps changing under this publish; publish again');
}

/** Lock the row with the same key; true when it exists (and its channel is allowed), else Refused. */
async function lockExisting(
  tx: Executor,
  table: SQL,
  channel: SQL,
  keys: Column[],
  row: Record<string, unknown>,
  grants: Grants,
): Promise<boolean> {
  const where = sql.join(
    keys.map((k) => sql`${sql.identifier(k.name)} = ${param(k, row[k.name])}`),
    sql` AND `,
  );
  const { rows } = await tx.execute(sql`SELECT ${channel} FROM ${table} WHERE ${where} FOR UPDATE`);
  if (rows.length === 0) return false;
  // Say nothing of the row (not even its channel): the token may not read it.
  if (!allowed(grants, rows[0]![CHANNEL_ALIAS]))
    throw new Refused('a row with this key exists in a channel this connection may not publish on');
  return true;
}

function allowed(grants: Grants, channel: unknown): boolean {
  if (!grants.token) return true; // open mode: every channel
  return typeof channel === 'string' && grants.canPublishOn(channel);
}

/** The key columns of an upsert: a state table whose row names every key column. */
function upsertKeys(reg: Registration, shape: TableShape, row: Record<string, unknown>): Column[] | null {
  const keys = [...shape.columns.values()].filter((c) => c.key);
  if (reg.kind !== 'state' || keys.length === 0 || !keys.every((k) => k.name in row)) return null;
  return keys;
}

/**
 * INSERT with identifiers from the catalog and every value a bound parameter.
 * A state table (presence, call_state) is upserted on its primary key when
 * the row has every key column: the given columns are updated, and date/time
 * columns with a default (updated_at) are reset to it.
 */
function insert(
  table: SQL,
  shape: TableShape,
  row: Record<string, unknown>,
  keys: Column[] | null,
  existing: boolean,
): SQL {
  const entries = Object.entries(row).map(([key, value]) => [shape.columns.get(key)!, value] as const);
  if (entries.length === 0) return sql`INSERT INTO ${table} DEFAULT VALUES`;
  const columns = sql.join(
    entries.map(([c]) => sql.identifier(c.name)),
    sql`, `,
  );
  const values = sql.join(
    entries.map(([c, v]) => param(c, v)),
    sql`, `,
  );
  const statement = sql`INSERT INTO ${table} (${columns}) VALUES (${values})`;
  if (!keys) return statement;
  const updates = [
    ...entries
      .filter(([c]) => !c.key)
      .map(([c]) => sql`${sql.identifier(c.name)} = EXCLUDED.${sql.identifier(c.name)}`),
    ...[...shape.columns.values()]
      .filter((c) => c.timeDefault && !(c.name in row))
      .map((c) => sql`${sql.identifier(c.name)} = DEFAULT`),
  ];
  const target = sql.join(
    keys.map((k) => sql.identifier(k.name)),
    sql`, `,
  );
  if (updates.length === 0) return sql`${statement} ON CONFLICT (${target}) DO NOTHING`;
  return sql`${statement} ON CONFLICT (${target}) DO UPDATE SET ${sql.join(updates, sql`, `)} WHERE ${existing ? sql`true` : sql`false`}`;
}

function param(c: Column, value: unknown): SQL {
  return sql`${sql.param(toParam(c.type, c.element, value))}`;
}

function toParam(type: string, element: string | null, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (type === 'json' || type === 'jsonb') return JSON.stringify(value);
  if (type === 'bytea' && typeof value === 'string') return Buffer.from(value, 'base64');
  if (element === 'json' || element === 'jsonb')
    return (value as unknown[]).map((v) => (v === null ? null : JSON.stringify(v)));
  return value;
}
