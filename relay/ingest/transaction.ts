// The SQL of one batch, in one transaction the caller opened: messages are
// grouped by flow and by the columns they set, and each group is one
// INSERT … SELECT FROM json_populate_recordset (the fast path). A group the
// table refuses is rolled back to its savepoint and written again row by
// row, each under its own savepoint, so a bad row becomes a dead letter and
// the others commit. Dedup keys go into walcast.ingest_dedup in the same
// transaction as their rows; dead letters and the flows' counters too, so
// a commit covers everything a message's acknowledgement stands for.
import pg from 'pg';
import { SQLSTATE_CLASS, WalcastError, sqlState, type RelayErrorCode } from '../errors.ts';
import type { Flow, TableInfo } from './catalog.ts';
import type { Decoded, Row } from './decode.ts';

export interface WriteItem {
  flow: Flow;
  topic: string;
  payload: Buffer;
  receivedAt: number;
  /** The row, or why the message is a dead letter already (bad JSON, schema, a POST that failed). */
  decoded: Decoded;
}

export type Outcome = 'committed' | 'duplicate' | 'dead';

export interface DeadLetter {
  item: WriteItem;
  code: RelayErrorCode;
  params: Record<string, string>;
}

export interface BatchResult {
  outcomes: Outcome[];
  dead: DeadLetter[];
}

/** Counts added to walcast.flow_stats beside the batch's own (POST outcomes). */
export type ExtraCounts = Map<string, { committed: number; dead: number }>;

export interface Group {
  flow: Flow;
  table: TableInfo;
  columns: string[];
  members: { index: number; row: Row; dedup: string | undefined }[];
}

export interface Grouped {
  /** Per item: 'committed' unless decoding made it a dead letter or a duplicate within the batch. */
  outcomes: Outcome[];
  dead: DeadLetter[];
  groups: Map<string, Group>;
}

export async function writeBatch(client: pg.ClientBase, items: WriteItem[], extra: ExtraCounts): Promise<BatchResult> {
  const { outcomes, dead, groups } = groupBatch(items);
  for (const group of groups.values()) await writeGroup(client, group, items, outcomes, dead);
  await recordDeadLetters(client, dead);
  const counts = countsStatement(items, outcomes, extra, 1);
  if (counts) await client.query(counts.text, counts.values);
  return { outcomes, dead };
}

/** The batch's messages by flow and by the columns they set; dead letters and in-batch duplicates set aside. */
export function groupBatch(items: WriteItem[]): Grouped {
  const outcomes: Outcome[] = new Array(items.length).fill('committed');
  const dead: DeadLetter[] = [];
  const groups = new Map<string, Group>();
  const seen = new Map<string, Set<string>>();
  // Messages of one flow mostly come with the same keys: the group of the message before is reused
  // without filtering and sorting its columns again.
  let last: { flow: Flow; keys: string[]; group: Group } | undefined;
  for (let index = 0; index < items.length; index++) {
    const item = items[index]!;
    const d = item.decoded;
    if (!d.ok) {
      outcomes[index] = 'dead';
      dead.push({ item, code: d.code, params: d.params });
      continue;
    }
    // A key twice in one batch: the first is written, the second is its redelivery.
    if (d.dedup !== undefined) {
      const keys = seen.get(item.flow.name) ?? seen.set(item.flow.name, new Set()).get(item.flow.name)!;
      if (keys.has(d.dedup)) {
        outcomes[index] = 'duplicate';
        continue;
      }
      keys.add(d.dedup);
    }
    const keys = Object.keys(d.row);
    if (!last || last.flow !== item.flow || !sameKeys(last.keys, keys)) {
      last = { flow: item.flow, keys, group: groupOf(groups, item.flow, keys) };
    }
    last.group.members.push({ index, row: d.row, dedup: d.dedup });
  }
  return { outcomes, dead, groups };
}

/** The group of a row with these keys: its flow and the keys that name columns of the table, sorted. */
function groupOf(groups: Map<string, Group>, flow: Flow, keys: string[]): Group {
  const table = flow.table!;
  const columns = keys.filter((c) => table.columns.has(c)).sort();
  const key = `${flow.name}\0${columns.join('\0')}`;
  return groups.get(key) ?? groups.set(key, { flow, table, columns, members: [] }).get(key)!;
}

function sameKeys(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function writeGroup(
  client: pg.ClientBase,
  group: Group,
  items: WriteItem[],
  outcomes: Outcome[],
  dead: DeadLetter[],
): Promise<void> {
  const { members } = group;
  if (group.columns.length === 0) {
    for (const m of members) {
      outcomes[m.index] = 'dead';
      const detail = `no key of the payload names a column of ${group.table.sql}`;
      dead.push({
        item: items[m.index]!,
        code: 'ingest_insert_failed',
        params: params(group, items[m.index]!, detail),
      });
    }
    return;
  }
  await client.query('SAVEPOINT walcast_group');
  try {
    const fresh = await claimKeys(client, group.flow.name, members);
    for (const m of members) if (m.dedup !== undefined && !fresh.has(m.dedup)) outcomes[m.index] = 'duplicate';
    const live = members.filter((m) => m.dedup === undefined || fresh.has(m.dedup));
    const rows = (group.flow.action === 'upsert' ? lastPerKey(group, live) : live).map((m) => m.row);
    if (rows.length) await client.query(insertSql(group), [JSON.stringify(rows)]);
    await client.query('RELEASE SAVEPOINT walcast_group');
    return;
  } catch (err) {
    if (!isRowError(err)) throw err;
    await client.query('ROLLBACK TO SAVEPOINT walcast_group');
  }
  // One by one, in order: an upsert's last message wins here too.
  for (const m of members) await writeOne(client, group, m, items, outcomes, dead);
}

/** The slow path: one row under its own savepoint. */
async function writeOne(
  client: pg.ClientBase,
  group: Group,
  m: Group['members'][number],
  items: WriteItem[],
  outcomes: Outcome[],
  dead: DeadLetter[],
): Promise<void> {
  await client.query('SAVEPOINT walcast_row');
  try {
    outcomes[m.index] = 'committed';
    if ((await claimKeys(client, group.flow.name, [m])).size === 0 && m.dedup !== undefined) {
      outcomes[m.index] = 'duplicate';
    } else {
      await client.query(insertSql(group), [JSON.stringify([m.row])]);
    }
    await client.query('RELEASE SAVEPOINT walcast_row');
  } catch (err) {
    if (!isRowError(err)) throw err;
    await client.query('ROLLBACK TO SAVEPOINT walcast_row');
    outcomes[m.index] = 'dead';
    const item = items[m.index]!;
    dead.push({ item, code: rowErrorCode(err), params: params(group, item, describe(err)) });
  }
}

/**
 * Upsert: of several rows for one primary key in one statement, the last
 * wins (the others are superseded, as if applied in order; ON CONFLICT DO
 * UPDATE cannot touch a row twice in one statement).
 */
export function lastPerKey(group: Group, members: Group['members']): Group['members'] {
  const pk = group.table.primaryKey;
  if (!pk.every((c) => group.columns.includes(c))) return members;
  const last = new Map<string, Group['members'][number]>();
  for (const m of members) {
    const key = JSON.stringify(pk.map((c) => m.row[c]));
    last.delete(key); // re-inserted: the Map keeps the order of the last ones
    last.set(key, m);
  }
  return [...last.values()];
}

/** Inserts the members' dedup keys; returns those that were new. */
async function claimKeys(client: pg.ClientBase, flow: string, members: Group['members']): Promise<Set<string>> {
  const keys = members.flatMap((m) => (m.dedup === undefined ? [] : [m.dedup]));
  if (keys.length === 0) return new Set();
  const { rows } = await client.query<{ key: string }>(
    `INSERT INTO walcast.ingest_dedup (flow, key) SELECT $1, k FROM unnest($2::text[]) AS k
     ON CONFLICT DO NOTHING RETURNING key`,
    [flow, keys],
  );
  return new Set(rows.map((r) => r.key));
}

export function insertSql(group: Group): string {
  const cols = group.columns.map((c) => pg.escapeIdentifier(c)).join(', ');
  const t = group.table.sql;
  const insert = `INSERT INTO ${t} (${cols}) SELECT ${cols} FROM json_populate_recordset(NULL::${t}, $1::json)`;
  if (group.flow.action !== 'upsert') return insert;
  const pk = group.table.primaryKey.map((c) => pg.escapeIdentifier(c)).join(', ');
  const set = group.columns
    .filter((c) => !group.table.primaryKey.includes(c))
    .map((c) => `${pg.escapeIdentifier(c)} = excluded.${pg.escapeIdentifier(c)}`);
  return `${insert} ON CONFLICT (${pk}) DO ${set.length ? `UPDATE SET ${set.join(', ')}` : 'NOTHING'}`;
}

async function recordDeadLetters(client: pg.ClientBase, dead: DeadLetter[]): Promise<void> {
  if (dead.length === 0) return;
  await client.query(
    `INSERT INTO walcast.dead_letters (flow, topic, payload, code, detail, received_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::timestamptz[])`,
    [
      dead.map((d) => d.item.flow.name),
      dead.map((d) => d.item.topic),
      dead.map((d) => d.item.payload),
      dead.map((d) => d.code),
      dead.map((d) => new WalcastError(d.code, d.params).message),
      dead.map((d) => new Date(d.item.receivedAt)),
    ],
  );
}

/**
 * The statement that adds the batch's outcomes (and `extra`) to
 * walcast.flow_stats, its parameters numbered from `first`; undefined when
 * there is nothing to add.
 */
export function countsStatement(
  items: WriteItem[],
  outcomes: Outcome[],
  extra: ExtraCounts,
  first: number,
): { text: string; values: unknown[] } | undefined {
  const counts = new Map<string, [number, number, number]>();
  const bump = (flow: string, i: 0 | 1 | 2, n = 1) => {
    const c = counts.get(flow) ?? counts.set(flow, [0, 0, 0]).get(flow)!;
    c[i] += n;
  };
  for (let i = 0; i < items.length; i++) bump(items[i]!.flow.name, OUTCOME_COLUMN[outcomes[i]!]);
  for (const [flow, c] of extra) {
    bump(flow, 0, c.committed);
    bump(flow, 2, c.dead);
  }
  if (counts.size === 0) return undefined;
  const flows = [...counts.keys()];
  const col = (i: number) => flows.map((f) => counts.get(f)![i]!);
  const [a, b, c, d] = [first, first + 1, first + 2, first + 3];
  // A flow removed meanwhile has no stats row to add to (and its foreign key would refuse one).
  return {
    text: `INSERT INTO walcast.flow_stats AS s (flow, committed, duplicates, dead_lettered, last_at)
     SELECT u.flow, u.c, u.d, u.x, now() FROM unnest($${a}::text[], $${b}::bigint[], $${c}::bigint[], $${d}::bigint[]) AS u(flow, c, d, x)
     WHERE EXISTS (SELECT 1 FROM walcast.flows f WHERE f.name = u.flow)
     ON CONFLICT (flow) DO UPDATE SET committed = s.committed + excluded.committed,
       duplicates = s.duplicates + excluded.duplicates, dead_lettered = s.dead_lettered + excluded.dead_lettered,
       last_at = now()`,
    values: [flows, col(0), col(1), col(2)],
  };
}

const OUTCOME_COLUMN = { committed: 0, duplicate: 1, dead: 2 } as const;

/**
 * A refusal of the row itself (a constraint, a value, a privilege), as
 * opposed to the connection or the server failing, which fails the batch
 * (it is retried whole, nothing acknowledged).
 */
export function isRowError(err: unknown): boolean {
  const code = sqlState(err);
  if (!code) return false;
  return !['08', '40', '53', '54', '55', '57', '58', 'XX', '25'].includes(code.slice(0, 2));
}

function rowErrorCode(err: unknown): RelayErrorCode {
  const cls = sqlState(err)?.slice(0, 2);
  if (cls === SQLSTATE_CLASS.integrityConstraintViolation) return 'ingest_constraint_violation';
  if (cls === SQLSTATE_CLASS.dataException) return 'ingest_invalid_value';
  return 'ingest_insert_failed';
}

function describe(err: unknown): string {
  const e = err as Error & { detail?: string };
  return [e.message, e.detail, `(SQLSTATE ${sqlState(err)})`].filter(Boolean).join(' ');
}

function params(group: Group, item: WriteItem, detail: string): Record<string, string> {
  return { flow: group.flow.name, topic: item.topic, table: group.table.sql, detail };
}
