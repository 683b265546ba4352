// walcast.register_table / unregister_table (sql/001_walcast.sql) and
// relay/db/registry.ts, against a real PostgreSQL.
import assert from 'node:assert/strict';
import { relayFixture } from '../helpers/relay.ts';
import { before, test } from 'node:test';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from '../../relay/db/migrate.ts';
import { loadRegistrations, registrationFromRow } from '../../relay/db/registry.ts';

const fx = relayFixture();
const { db } = fx;

before(async () => {
  await fx.ready();
  await migrate(db.pool, {});
});

/** Runs `text` on one connection and returns the NOTICEs it raised. */
async function notices(text: string): Promise<string[]> {
  const client = await db.pool.connect();
  const seen: string[] = [];
  const listener = (n: { message?: string }) => seen.push(n.message ?? '');
  client.on('notice', listener);
  try {
    await client.query(text);
    return seen;
  } finally {
    client.off('notice', listener);
    client.release();
  }
}

async function published(table: string, pub = 'realtime_events'): Promise<boolean> {
  const rows = await db.query(
    `SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname || '.' || tablename = $2`,
    [pub, table],
  );
  return rows.length === 1;
}

async function registration(schema: string, table: string) {
  const rows = await db.query(
    `SELECT channel_column, ttl::text AS ttl, time_column FROM walcast.tables WHERE schema_name = $1 AND table_name = $2`,
    [schema, table],
  );
  return rows[0];
}

async function replicaIdentity(table: string): Promise<string> {
  const [row] = await db.query(`SELECT relreplident FROM pg_class WHERE oid = $1::regclass`, [table]);
  return row?.relreplident;
}

async function sqlStateOf(text: string): Promise<{ code: string; hint?: string }> {
  const err = await db.query(text).then(
    () => assert.fail(`expected ${text} to fail`),
    (e: { code: string; hint?: string }) => e,
  );
  return err;
}

test('register_table creates the publication, publishes the table and records it', async () => {
  await db.query('CREATE TABLE public.rooms_log (id bigint PRIMARY KEY, room text NOT NULL, at timestamptz NOT NULL)');
  assert.equal((await db.query(`SELECT 1 FROM pg_publication WHERE pubname = 'realtime_events'`)).length, 0);
  await db.query(
    `SELECT walcast.register_table('public.rooms_log', channel_column => 'room', ttl => interval '1 hour', time_column => 'at')`,
  );
  assert.ok(await published('public.rooms_log'));
  assert.ok(await published('walcast.tables'), 'the relay follows registrations through the stream');
  assert.deepEqual(await registration('public', 'rooms_log'), {
    channel_column: 'room',
    ttl: '01:00:00',
    time_column: 'at',
  });
});

test('registering twice is fine, and registering again updates', async () => {
  await db.query(`SELECT walcast.register_table('public.rooms_log', 'room', interval '1 hour', 'at')`);
  assert.equal((await db.query(`SELECT 1 FROM walcast.tables WHERE table_name = 'rooms_log'`)).length, 1);
  await db.query(`SELECT walcast.register_table('rooms_log', channel_column => 'id')`);
  assert.deepEqual(await registration('public', 'rooms_log'), { channel_column: 'id', ttl: null, time_column: null });
  assert.ok(await published('public.rooms_log'));
});

test('a missing channel column fails with 42703 and a hint listing the columns', async () => {
  const err = await sqlStateOf(`SELECT walcast.register_table('public.rooms_log', channel_column => 'Room')`);
  assert.equal(err.code, '42703');
  assert.match(err.hint ?? '', /its columns are: id, room, at/);
});

test('a missing table fails with 42P01', async () => {
  const err = await sqlStateOf(`SELECT walcast.register_table('public.no_such_table', channel_column => 'room')`);
  assert.equal(err.code, '42P01');
});

test('bad ttl arguments fail with 22023', async () => {
  await db.query('ALTER TABLE public.rooms_log ADD COLUMN label text');
  const cases = [
    `SELECT walcast.register_table('public.rooms_log', 'room', ttl => interval '1 day')`,
    `SELECT walcast.register_table('public.rooms_log', 'room', ttl => interval '-1 day', time_column => 'at')`,
    `SELECT walcast.register_table('public.rooms_log', 'room', ttl => interval '0', time_column => 'at')`,
    `SELECT walcast.register_table('public.rooms_log', 'room', ttl => interval '1 day', time_column => 'label')`,
  ];
  for (const text of cases) assert.equal((await sqlStateOf(text)).code, '22023', text);
  assert.equal(
    (await sqlStateOf(`SELECT walcast.register_table('public.rooms_log', 'room', interval '1 day', 'nope')`)).code,
    '42703',
  );
});

test('a view is refused with 42809', async () => {
  await db.query('CREATE VIEW public.rooms_view AS SELECT * FROM public.rooms_log');
  assert.equal((await sqlStateOf(`SELECT walcast.register_table('public.rooms_view', 'room')`)).code, '42809');
});

test('a primary key without the channel column gets REPLICA IDENTITY FULL, with a notice', async () => {
  await db.query('CREATE TABLE public.by_id (id bigint PRIMARY KEY, room text NOT NULL)');
  assert.equal(await replicaIdentity('public.by_id'), 'd');
  const seen = await notices(`SELECT walcast.register_table('public.by_id', 'room')`);
  assert.equal(await replicaIdentity('public.by_id'), 'f');
  assert.equal(seen.length, 1);
  assert.match(seen[0] ?? '', /REPLICA IDENTITY FULL on public\.by_id/);
});

test('a primary key that includes the channel column keeps the default identity', async () => {
  await db.query('CREATE TABLE public.by_room (room text, id bigint, PRIMARY KEY (room, id))');
  assert.deepEqual(await notices(`SELECT walcast.register_table('public.by_room', 'room')`), []);
  assert.equal(await replicaIdentity('public.by_room'), 'd');
});

test('a replica identity index that includes the channel column is kept', async () => {
  await db.query('CREATE TABLE public.by_index (id bigint PRIMARY KEY, room text NOT NULL)');
  await db.query('CREATE UNIQUE INDEX by_index_room_id ON public.by_index (room, id)');
  await db.query('ALTER TABLE public.by_index REPLICA IDENTITY USING INDEX by_index_room_id');
  await db.query(`SELECT walcast.register_table('public.by_index', 'room')`);
  assert.equal(await replicaIdentity('public.by_index'), 'i');
});

test('a table without a primary key gets REPLICA IDENTITY FULL', async () => {
  await db.query('CREATE TABLE public.no_key (room text NOT NULL, body text)');
  await db.query(`SELECT walcast.register_table('public.no_key', 'room')`);
  assert.equal(await replicaIdentity('public.no_key'), 'f');
});

test('a partitioned table is published, with FULL identity on every partition', async () => {
  await db.query('CREATE TABLE public.parted (id bigint PRIMARY KEY, room text NOT NULL) PARTITION BY HASH (id)');
  await db.query('CREATE TABLE public.parted_0 PARTITION OF public.parted FOR VALUES WITH (MODULUS 2, REMAINDER 0)');
  await db.query('CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES WITH (MODULUS 2, REMAINDER 1)');
  await db.query(`SELECT walcast.register_table('public.parted', 'room')`);
  for (const t of ['public.parted', 'public.parted_0', 'public.parted_1'])
    assert.equal(await replicaIdentity(t), 'f', t);
  assert.ok(await published('public.parted'), 'changes are published under the root name');
});

test('unregister_table removes the table from the publication and walcast.tables', async () => {
  await db.query(`SELECT walcast.unregister_table('public.by_id')`);
  await db.query(`SELECT walcast.unregister_table('public.by_id')`);
  assert.equal(await published('public.by_id'), false);
  assert.equal(await registration('public', 'by_id'), undefined);
  assert.ok(await published('public.by_room'), 'other tables stay');
});

test('names that need quoting work and are stored unquoted', async () => {
  await db.query('CREATE SCHEMA "My Schema"');
  await db.query('CREATE TABLE "My Schema"."Odd Name" ("Chan Col" text NOT NULL, "When" date NOT NULL)');
  await db.query(
    `SELECT walcast.register_table('"My Schema"."Odd Name"', channel_column => 'Chan Col', ttl => interval '1 day', time_column => 'When')`,
  );
  assert.deepEqual(await registration('My Schema', 'Odd Name'), {
    channel_column: 'Chan Col',
    ttl: '1 day',
    time_column: 'When',
  });
  assert.ok(await published('My Schema.Odd Name'));
  assert.equal(await replicaIdentity('"My Schema"."Odd Name"'), 'f');
  await db.query(`SELECT walcast.unregister_table('"My Schema"."Odd Name"')`);
  assert.equal(await published('My Schema.Odd Name'), false);
});

test('loadRegistrations reads walcast.tables with types', async () => {
  const regs = await loadRegistrations(drizzle(db.pool));
  const byName = new Map(regs.map((r) => [`${r.schema}.${r.table}`, r]));
  assert.deepEqual(byName.get('public.rooms_log'), {
    schema: 'public',
    table: 'rooms_log',
    channelColumn: 'id',
    ttl: null,
    timeColumn: null,
    kind: 'events',
    omitted: [],
  });
  await db.query(`SELECT walcast.register_table('public.rooms_log', 'room', interval '90 minutes', 'at')`);
  const again = await loadRegistrations(drizzle(db.pool));
  assert.equal(again.find((r) => r.table === 'rooms_log')?.ttl, '01:30:00');
  assert.equal(byName.has('public.by_id'), false);
});

test('registrationFromRow maps a decoded walcast.tables row', () => {
  assert.deepEqual(
    registrationFromRow({
      schema_name: 'public',
      table_name: 'chat_messages',
      channel_column: 'channel_id',
      ttl: '7 days',
      time_column: 'created_at',
      registered_at: '2025-01-01 00:00:00+00',
    }),
    {
      schema: 'public',
      table: 'chat_messages',
      channelColumn: 'channel_id',
      ttl: '7 days',
      timeColumn: 'created_at',
      kind: 'events',
      omitted: [],
    },
  );
  assert.deepEqual(
    registrationFromRow({
      schema_name: 'public',
      table_name: 'call_state',
      channel_column: 'session_id',
      ttl: null,
      time_column: null,
      kind: 'state',
      omitted_columns: ['total'],
    }),
    {
      schema: 'public',
      table: 'call_state',
      channelColumn: 'session_id',
      ttl: null,
      timeColumn: null,
      kind: 'state',
      omitted: ['total'],
    },
  );
  assert.equal(registrationFromRow({ schema_name: 'public', table_name: 'x' }), null, 'a key-only old row');
  assert.equal(registrationFromRow({}), null);
});
