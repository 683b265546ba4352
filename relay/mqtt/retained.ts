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
import { convertRows, inSnapshot, type Visibility } from '../db/snapshot.ts';
import { shortName } from '../table-names.ts';
import { snapshotPosition } from '../replication/position.ts';
import { channelOfTopic, matches, rowTopic, type FilterPlan } from './topics.ts';
import { decodeProperties, type MessageProperties } from './messages.ts';
import { keyText, type TableTopic } from './keys.ts';
import { rowProperties, type OutMessage } from './outgoing.ts';

export interface RetainedRead {
  /** Per plan, in the order given: its rows as messages, oldest first. */
  messages: OutMessage[][];
  /** Per plan: more rows matched than the limit. */
  truncated: boolean[];
  visible: Visibility;
}

const rawText = { getTypeParser: () => (value: string) => value };

export class RetainedReader {
  private readonly pool: pg.Pool;

  constructor(connectionString: string) {
    this.pool = new pg.Pool({ connectionString, options: TEXT_FORMAT_OPTIONS, max: 2, types: rawText as never });
    this.pool.on('error', () => {}); // an idle connection dropped; the next read reconnects
  }

  /** Read the rows (and stored retained messages) matching each plan; `canSee(channel)` applies the grants to wildcard channels. */
  async read(
    plans: FilterPlan[],
    tables: TableTopic[],
    limit: number,
    base: string,
    canSee: (channel: string) => boolean,
  ): Promise<RetainedRead> {
    const read = await inSnapshot(this.pool, async (client) => {
      const perPlan: { items: Item[]; more: boolean }[] = [];
      for (const plan of plans) {
        const items: Item[] = [];
        let more = false;
        const sources: (TableTopic | 'generic')[] = tables.filter(
          (t) => plan.table === null || plan.table === shortName(t.reg),
        );
        // Topics that are not rows: any filter whose first level is not a registered table.
        if (plan.table === null || sources.length === 0) sources.push('generic');
        for (const source of sources) {
          const left = limit - items.length;
          if (left <= 0) {
            more = true;
            break;
          }
          const found: Item[] =
            source === 'generic'
              ? await readStored(client, plan.filter, left + 1)
              : (await readRows(client, source, plan, left + 1)).map((row) => ({ t: source, row }));
          if (found.length > left) more = true;
          // Oldest first: the extra item read to tell truncation is the oldest one.
          items.push(...found.slice(Math.max(0, found.length - left)));
        }
        perPlan.push({ items, more });
      }
      return perPlan;
    });
    let n = 0;
    const messages = read.rows.map(({ items }, i) => {
      const out: OutMessage[] = [];
      for (const item of items) {
        const m = 'topic' in item ? item : rowMessage(item.t, item.row);
        if (!matches(plans[i]!.filter, m.topic) || !canSee(channelOfTopic(m.topic))) continue;
        const position = snapshotPosition(base, ++n);
        const properties =
          'topic' in item ? (item.properties ?? {}) : rowProperties('snapshot', position, read.readAtIso, true);
        out.push({
          topic: m.topic,
          payload: m.payload,
          qos: m.qos,
          table: m.topic.split('/', 1)[0]!,
          position,
          xid: 0,
          row: !('topic' in item),
          stored: true,
          properties,
        });
      }
      return out;
    });
    return { messages, truncated: read.rows.map((r) => r.more), visible: read.visible };
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

type Item = { t: TableTopic; row: Record<string, unknown> } | StoredMessage;

interface StoredMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  properties?: MessageProperties;
}

function rowMessage(t: TableTopic, row: Record<string, unknown>): { topic: string; payload: Buffer; qos: 0 | 1 } {
  const topic = rowTopic(
    shortName(t.reg),
    keyText(row[t.channelColumn]),
    t.keys.map((k) => keyText(row[k])),
  );
  return { topic, payload: Buffer.from(JSON.stringify(row)), qos: 1 };
}

/** The newest `limit` retained messages of walcast.mqtt_retained whose topic can match `filter`, oldest first. */
async function readStored(client: pg.PoolClient, filter: string, limit: number): Promise<StoredMessage[]> {
  const wildcard = filter.search(/[+#]/);
  const values: unknown[] = [];
  let where = '';
  if (wildcard < 0) {
    values.push(filter);
    where = 'WHERE topic = $1';
  } else if (wildcard > 0) {
    values.push(`${filter.slice(0, wildcard).replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where = `WHERE topic LIKE $1 ESCAPE '\\'`;
  }
  const { rows } = await client.query<{ topic: string; payload: string; qos: string; properties: string | null }>(
    `SELECT * FROM (SELECT topic, encode(payload, 'base64') AS payload, qos, properties::text AS properties, updated_at
       FROM walcast.mqtt_retained ${where} ORDER BY updated_at DESC, topic LIMIT ${limit}) s ORDER BY updated_at, topic`,
    values,
  );
  return rows.map((r) => {
    const m: StoredMessage = {
      topic: r.topic,
      payload: Buffer.from(r.payload, 'base64'),
      qos: Number(r.qos) === 1 ? 1 : 0,
    }; // the pool reads every value as text
    const props = decodeProperties(
      r.properties === null ? null : (JSON.parse(r.properties) as Record<string, unknown>),
    );
    if (props) m.properties = props;
    return m;
  });
}

/** The newest `limit` rows of one table that the plan's literal levels select, oldest first. */
async function readRows(
  client: pg.PoolClient,
  t: TableTopic,
  plan: FilterPlan,
  limit: number,
): Promise<Record<string, unknown>[]> {
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
