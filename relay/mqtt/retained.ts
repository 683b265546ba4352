// The rows a new subscription gets first, as retained messages: for each
// filter, the current rows of the tables and channels it can match, read in
// one REPEATABLE READ transaction (like `snapshot: true` on WebSocket,
// relay/hub/snapshot.ts), which returns its snapshot so the caller can drop
// the held live events the rows already include. Each filter gets the newest
// `limit` rows (by the table's time column, else its primary key); more
// matching rows are reported as truncated. Values go through the same
// converters as streamed rows.
import pg from 'pg';
import { TEXT_FORMAT_OPTIONS } from '../replication/values.ts';
import { convertRows, displayName, inSnapshot } from '../hub/snapshot.ts';
import { snapshotPosition } from '../replication/position.ts';
import { matches, rowTopic, type FilterPlan } from './topics.ts';
import { keyText, type TableTopic } from './keys.ts';
import { rowProperties, type OutMessage } from './outgoing.ts';

export interface RetainedRead {
  /** Per plan, in the order given: its rows as messages, oldest first. */
  messages: OutMessage[][];
  /** Per plan: more rows matched than the limit. */
  truncated: boolean[];
  visible(xid: number): boolean;
}

const rawText = { getTypeParser: () => (value: string) => value };

export class RetainedReader {
  private readonly pool: pg.Pool;

  constructor(connectionString: string) {
    this.pool = new pg.Pool({ connectionString, options: TEXT_FORMAT_OPTIONS, max: 2, types: rawText as never });
    this.pool.on('error', () => {}); // an idle connection dropped; the next read reconnects
  }

  /** Read the rows matching each plan; `canSee(channel)` applies the grants to wildcard channels. */
  async read(plans: FilterPlan[], tables: TableTopic[], limit: number, base: string, canSee: (channel: string) => boolean): Promise<RetainedRead> {
    const read = await inSnapshot(this.pool, async (client) => {
      const perPlan: { rows: { t: TableTopic; row: Record<string, unknown> }[]; more: boolean }[] = [];
      for (const plan of plans) {
        const rows: { t: TableTopic; row: Record<string, unknown> }[] = [];
        let more = false;
        for (const t of tables) {
          if (plan.table !== null && plan.table !== displayName(t.reg)) continue;
          const left = limit - rows.length;
          if (left <= 0) {
            more = true;
            break;
          }
          const found = await readRows(client, t, plan, left + 1);
          if (found.length > left) more = true;
          // Oldest first: the extra row read to tell truncation is the oldest one.
          for (const row of found.slice(Math.max(0, found.length - left))) rows.push({ t, row });
        }
        perPlan.push({ rows, more });
      }
      return perPlan;
    });
    let n = 0;
    const messages = read.rows.map(({ rows }, i) => {
      const out: OutMessage[] = [];
      for (const { t, row } of rows) {
        const channel = keyText(row[t.channelColumn]);
        const topic = rowTopic(displayName(t.reg), channel, t.keys.map((k) => keyText(row[k])));
        if (!matches(plans[i]!.filter, topic) || !canSee(channel)) continue;
        const position = snapshotPosition(base, ++n);
        out.push({ topic, payload: Buffer.from(JSON.stringify(row)), qos: 1, table: displayName(t.reg), position, xid: 0, row: true, properties: rowProperties('snapshot', position, read.readAtIso, true) });
      }
      return out;
    });
    return { messages, truncated: read.rows.map((r) => r.more), visible: read.visible };
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/** The newest `limit` rows of one table that the plan's literal levels select, oldest first. */
async function readRows(client: pg.PoolClient, t: TableTopic, plan: FilterPlan, limit: number): Promise<Record<string, unknown>[]> {
  // Without a trailing #, the filter's key levels must be as many as the table's key.
  if (!plan.filter.endsWith('#') && plan.key.length !== t.keys.length) return [];
  const where: string[] = [];
  const values: unknown[] = [];
  if (plan.channel !== null) {
    values.push(plan.channel);
    where.push(`${pg.escapeIdentifier(t.channelColumn)} = $${values.length}`);
  }
  plan.key.forEach((k, i) => {
    if (k === '+' || k === '#' || i >= t.keys.length) return;
    values.push(k);
    where.push(`${pg.escapeIdentifier(t.keys[i]!)} = $${values.length}`);
  });
  const table = `${pg.escapeIdentifier(t.reg.schema)}.${pg.escapeIdentifier(t.reg.table)}`;
  // Newest by the time column, ties (rows of one transaction) by the key.
  const order = [...(t.reg.timeColumn ? [t.reg.timeColumn] : []), ...t.keys];
  if (order.length === 0) order.push(t.channelColumn);
  const cols = order.map((c) => pg.escapeIdentifier(c));
  const sql = `SELECT * FROM (SELECT * FROM ${table}${where.length ? ` WHERE ${where.join(' AND ')}` : ''}
    ORDER BY ${cols.map((c) => `${c} DESC`).join(', ')} LIMIT ${limit}) s ORDER BY ${cols.map((c) => `${c} ASC`).join(', ')}`;
  await client.query('SAVEPOINT retained_table');
  let result: pg.QueryResult;
  try {
    result = await client.query({ text: sql, values });
  } catch (err) {
    // A level that cannot be a value of its column (text for an integer key) selects no rows.
    if ((err as { code?: string }).code?.startsWith('22')) {
      await client.query('ROLLBACK TO SAVEPOINT retained_table');
      return [];
    }
    throw err;
  }
  return convertRows(result);
}
