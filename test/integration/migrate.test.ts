// relay/db/migrate.ts against a real PostgreSQL: idempotence, two relays
// starting at once, the example tables, the publication, and a failing file.
import assert from 'node:assert/strict';
import { relayFixture } from '../helpers/relay.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { WalcastError } from '../../relay/errors.ts';
import { ensurePublication, migrate } from '../../relay/db/migrate.ts';
import { chatMessages, presence, videoFrames } from '../../relay/db/schema.ts';

const fx = relayFixture();
const { db } = fx;

function assertNoLeakedClients(): void {
  assert.equal(db.pool.idleCount, db.pool.totalCount, 'every pool client was released');
}

test('two relays migrating at once both succeed and apply each file once', async () => {
  const [a, b] = await Promise.all([migrate(db.pool, {}), migrate(db.pool, {})]);
  assert.deepEqual([...a.applied, ...b.applied].sort(), [
    '001_walcast.sql',
    '002_delivery.sql',
    '003_publish.sql',
    '004_generated_columns.sql',
    '005_mqtt.sql',
    '006_webhooks.sql',
    '007_ingest.sql',
    '008_supabase_presence.sql',
  ]);
  const rows = await db.query('SELECT name FROM walcast.migrations ORDER BY name');
  assert.deepEqual(
    rows.map((r) => r.name),
    [
      '001_walcast.sql',
      '002_delivery.sql',
      '003_publish.sql',
      '004_generated_columns.sql',
      '005_mqtt.sql',
      '006_webhooks.sql',
      '007_ingest.sql',
      '008_supabase_presence.sql',
    ],
  );
  assertNoLeakedClients();
});

test('example tables come with example: true, and a second run applies nothing', async () => {
  const first = await migrate(db.pool, { example: true });
  assert.deepEqual(first.applied, ['example/001_example.sql', 'example/002_state_tables.sql']);
  const second = await migrate(db.pool, { example: true });
  assert.deepEqual(second.applied, []);
  assertNoLeakedClients();
});

test('the example tables are registered and published', async () => {
  const rows = await db.query(
    `SELECT schema_name, table_name, channel_column, ttl::text AS ttl, time_column
     FROM walcast.tables ORDER BY table_name`,
  );
  assert.deepEqual(rows, [
    { schema_name: 'public', table_name: 'call_state', channel_column: 'session_id', ttl: null, time_column: null },
    {
      schema_name: 'public',
      table_name: 'chat_messages',
      channel_column: 'channel_id',
      ttl: '7 days',
      time_column: 'created_at',
    },
    {
      schema_name: 'public',
      table_name: 'presence',
      channel_column: 'channel_id',
      ttl: '00:02:00',
      time_column: 'updated_at',
    },
    {
      schema_name: 'public',
      table_name: 'video_frames',
      channel_column: 'to_id',
      ttl: '00:00:30',
      time_column: 'created_at',
    },
  ]);
  const published = await db.query(
    `SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables
     WHERE pubname = 'realtime_events' ORDER BY 1`,
  );
  assert.deepEqual(
    published.map((r) => r.t),
    ['public.call_state', 'public.chat_messages', 'public.presence', 'public.video_frames', 'walcast.tables'],
  );
});

test('every example table has a replica identity that carries its channel column', async () => {
  const rows = await db.query(
    `SELECT relname, relreplident FROM pg_class
     WHERE relname IN ('chat_messages', 'presence', 'call_state', 'video_frames') ORDER BY relname`,
  );
  // i: the (channel, id) unique index; d: a primary key that starts with the channel.
  assert.deepEqual(
    rows.map((r) => `${r.relname}:${r.relreplident}`),
    ['call_state:d', 'chat_messages:i', 'presence:d', 'video_frames:i'],
  );
});

test('the Drizzle schema matches the SQL tables', async () => {
  const orm = drizzle(db.pool);
  const [msg] = await orm.insert(chatMessages).values({ channelId: 'room-1', sender: 'ann', body: 'hi' }).returning();
  assert.ok(msg);
  assert.equal(typeof msg.id, 'number');
  assert.ok(msg.createdAt instanceof Date);
  await orm.insert(presence).values({ channelId: 'room-1', userId: 'u1', meta: { typing: true } });
  const [who] = await orm.select().from(presence).where(eq(presence.userId, 'u1'));
  assert.deepEqual(who?.meta, { typing: true });
  assert.equal(who?.status, 'online');
  const payload = Buffer.from([0, 1, 2, 255]);
  const [frame] = await orm.insert(videoFrames).values({ toId: 'peer-2', payload }).returning();
  assert.ok(frame?.payload.equals(payload), 'bytea round-trips as a Buffer');
});

test('ensurePublication creates a publication with walcast.tables and every registered table', async () => {
  await ensurePublication(db.pool, 'walcast_other');
  await ensurePublication(db.pool, 'walcast_other');
  const published = await db.query(
    `SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = 'walcast_other' ORDER BY 1`,
  );
  assert.deepEqual(
    published.map((r) => r.t),
    ['public.call_state', 'public.chat_messages', 'public.presence', 'public.video_frames', 'walcast.tables'],
  );
  const [config] = await db.query(`SELECT value FROM walcast.config WHERE key = 'publication'`);
  assert.equal(config?.value, 'walcast_other');
  await ensurePublication(db.pool, 'realtime_events');
});

test('ensurePublication rejects a name that is not a plain identifier', async () => {
  await assert.rejects(ensurePublication(db.pool, 'Bad-Name; drop table x'), (err: unknown) => {
    assert.ok(err instanceof WalcastError);
    assert.equal(err.code, 'config_invalid');
    assert.match(err.message, /invalid publication name/);
    return true;
  });
  const [config] = await db.query(`SELECT value FROM walcast.config WHERE key = 'publication'`);
  assert.equal(config?.value, 'realtime_events');
});

test('a failing file rolls back, is not recorded, and names itself in the error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'walcast-migrate-'));
  try {
    await writeFile(join(dir, '001_ok.sql'), 'CREATE TABLE fixture_ok (id int);');
    await writeFile(
      join(dir, '002_bad.sql'),
      'CREATE TABLE fixture_partial (id int);\nSELECT no_such_column FROM fixture_ok;',
    );
    const url = pathToFileURL(`${dir}/`);
    await assert.rejects(migrate(db.pool, { dir: url }), (err: unknown) => {
      assert.ok(err instanceof WalcastError);
      assert.equal(err.code, 'migration_failed');
      assert.equal(err.params.file, '002_bad.sql');
      assert.match(err.message, /no_such_column/);
      assert.match(err.message, /42703/);
      return true;
    });
    const names = (await db.query(`SELECT name FROM walcast.migrations WHERE name LIKE '00%\\_%.sql'`)).map(
      (r) => r.name,
    );
    assert.ok(names.includes('001_ok.sql'));
    assert.ok(!names.includes('002_bad.sql'));
    const [partial] = await db.query(`SELECT to_regclass('fixture_partial') AS t`);
    assert.equal(partial?.t, null, 'the failed file left nothing behind');
    assertNoLeakedClients();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
