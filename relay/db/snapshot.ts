// Current rows of a channel, read for `snapshot: true`. The read runs in one
// REPEATABLE READ transaction and returns that transaction's snapshot, so the
// caller can tell which streamed transactions the rows already include
// (visible in the snapshot) and which must still be sent. Values go through
// the same converters as streamed rows, so both look the same to clients.
// Reads are admitted by a SnapshotQueue (per connection, per subject, a
// bounded wait) and each query has a statement_timeout.
import pg from 'pg';
import { SQLSTATE_CLASS, sqlState } from '../errors.ts';
import type { Registration } from './registry.ts';
import { shortName } from '../table-names.ts';
import { converterFor, TEXT_FORMAT_OPTIONS } from '../replication/values.ts';
import { SnapshotQueue, type SnapshotTicket } from './snapshot-queue.ts';

/** Database connections for snapshot reads. */
export const SNAPSHOT_CONNECTIONS = 2;

export interface SnapshotReaderOptions {
  perConnection: number;
  perSubject: number;
  queue: number;
  /** statement_timeout of each query, in ms. */
  timeoutMs: number;
}

/** At most this many rows of one state table are sent per snapshot. */
export const MAX_STATE_ROWS = 10_000;
export const DEFAULT_SNAPSHOT_LIMIT = 100;

export interface SnapshotRow {
  table: string;
  row: Record<string, unknown>;
  /** Generated columns left out, as live events of the table leave them out. */
  omitted?: string[];
}

export interface Snapshot {
  rows: SnapshotRow[];
  /** Was the transaction with this (32-bit) id visible to the read? */
  visible: Visibility;
  readAtIso: string;
}

const rawText = { getTypeParser: () => (value: string) => value };

export class SnapshotReader {
  private readonly pool: pg.Pool;
  readonly queue: SnapshotQueue;

  constructor(
    connectionString: string,
    private readonly registrations: () => Registration[],
    opts: SnapshotReaderOptions,
  ) {
    this.pool = new pg.Pool({
      connectionString,
      options: TEXT_FORMAT_OPTIONS,
      max: SNAPSHOT_CONNECTIONS,
      types: rawText as never,
      statement_timeout: opts.timeoutMs,
    });
    this.pool.on('error', () => {}); // an idle connection dropped; the next read reconnects
    this.queue = new SnapshotQueue({ ...opts, concurrency: SNAPSHOT_CONNECTIONS });
  }

  /** Read when admitted (throws SnapshotBusy, or SnapshotDropped when `ticket` is no longer alive at its turn). */
  read(channel: string, tables: ReadonlySet<string> | null, limit: number, ticket: SnapshotTicket): Promise<Snapshot> {
    return this.queue.run(ticket, () => this.readNow(channel, tables, limit));
  }

  /** The read itself, once admitted (an edge's reader waits for its replica first: relay/edge/snapshots.ts). */
  protected async readNow(channel: string, tables: ReadonlySet<string> | null, limit: number): Promise<Snapshot> {
    const regs = this.registrations().filter((r) => tables === null || tables.has(shortName(r)));
    return inSnapshot(this.pool, async (client) => {
      const rows: SnapshotRow[] = [];
      for (const reg of regs) rows.push(...(await readTable(client, reg, channel, limit)));
      return rows;
    });
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/**
 * Run `body` in one REPEATABLE READ transaction and return what it read with
 * that transaction's snapshot (also used by relay/mqtt/retained.ts).
 */
export async function inSnapshot<T>(
  pool: pg.Pool,
  body: (client: pg.PoolClient) => Promise<T>,
): Promise<{ rows: T; visible: Visibility; readAtIso: string }> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows: snap } = await client.query<{ s: string; t: string }>(
      `SELECT pg_current_snapshot()::text AS s, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`,
    );
    const rows = await body(client);
    await client.query('COMMIT');
    return { rows, visible: visibility(snap[0]!.s), readAtIso: snap[0]!.t };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** A query's rows with values converted as streamed rows are (raw text in, event values out). */
export function convertRows(result: pg.QueryResult, omit?: ReadonlySet<string>): Record<string, unknown>[] {
  const converters = result.fields.map((f) => converterFor(f.dataTypeID));
  return result.rows.map((r: Record<string, string | null>) => {
    const row: Record<string, unknown> = {};
    result.fields.forEach((f, i) => {
      if (omit?.has(f.name)) return;
      const v = r[f.name];
      row[f.name] = v === null || v === undefined ? null : converters[i]!(v);
    });
    return row;
  });
}

async function readTable(
  client: pg.PoolClient,
  reg: Registration,
  channel: string,
  limit: number,
): Promise<SnapshotRow[]> {
  const table = `${pg.escapeIdentifier(reg.schema)}.${pg.escapeIdentifier(reg.table)}`;
  const where = `${pg.escapeIdentifier(reg.channelColumn)} = $1`;
  let sql: string;
  if (reg.kind === 'state') {
    sql = `SELECT * FROM ${table} WHERE ${where} LIMIT ${MAX_STATE_ROWS}`;
  } else {
    const order = await orderColumns(client, reg, table);
    const desc = order.map((c) => `${c} DESC`).join(', ');
    const asc = order.map((c) => `${c} ASC`).join(', ');
    sql = order.length
      ? `SELECT * FROM (SELECT * FROM ${table} WHERE ${where} ORDER BY ${desc} LIMIT ${limit}) s ORDER BY ${asc}`
      : `SELECT * FROM ${table} WHERE ${where} LIMIT ${limit}`;
  }
  await client.query('SAVEPOINT snapshot_table');
  let result: pg.QueryResult;
  try {
    result = await client.query({ text: sql, values: [channel] });
  } catch (err) {
    // A channel that cannot be a value of the column (text into an integer
    // column, say) has no rows there.
    if (sqlState(err)?.startsWith(SQLSTATE_CLASS.dataException)) {
      await client.query('ROLLBACK TO SAVEPOINT snapshot_table');
      return [];
    }
    throw err;
  }
  const name = shortName(reg);
  // The same shape as the table's live events: without the columns they omit.
  const omitted = reg.omitted.length ? new Set(reg.omitted) : undefined;
  const rows = convertRows(result, omitted);
  return rows.map((row) => (omitted ? { table: name, row, omitted: reg.omitted } : { table: name, row }));
}

/** Newest first by the time column, else by the primary key; none: any order. */
async function orderColumns(client: pg.PoolClient, reg: Registration, table: string): Promise<string[]> {
  if (reg.timeColumn) return [pg.escapeIdentifier(reg.timeColumn)];
  const { rows } = await client.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_index i
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
    [table],
  );
  return rows.map((r) => pg.escapeIdentifier(r.name));
}

/** Was the transaction with this (32-bit) id visible to a read's snapshot? */
export interface Visibility {
  (xid: number): boolean;
  /**
   * It started after the snapshot (id ≥ xmax), so it commits after every
   * transaction the snapshot saw: in a stream in commit order, nothing after
   * it was visible to the read.
   */
  startedAfter(xid: number): boolean;
}

/** Visibility of a transaction id in a pg_snapshot ("xmin:xmax:xip,…", 64-bit ids). */
export function visibility(text: string): Visibility {
  const [xminText, xmaxText, xipText] = text.split(':');
  const xmin = BigInt(xminText!);
  const xmax = BigInt(xmaxText!);
  const xip = new Set(
    (xipText ?? '')
      .split(',')
      .filter(Boolean)
      .map((x) => BigInt(x)),
  );
  const epochBase = xmax & ~0xffffffffn;
  // pgoutput sends 32-bit ids; place them in the 64-bit space next to xmax.
  const widen = (xid: number) => {
    const full = epochBase | BigInt(xid >>> 0);
    return full > xmax + 0x7fffffffn ? full - 0x100000000n : full;
  };
  const visible = (xid: number) => {
    const full = widen(xid);
    if (full < xmin) return true;
    return full < xmax && !xip.has(full);
  };
  return Object.assign(visible, { startedAfter: (xid: number) => widen(xid) >= xmax });
}
