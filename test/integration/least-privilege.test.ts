// The relay as a least-privilege role: the SQL of docs/security.md creates
// it (run as written, with the names of this test), the relay streams,
// snapshots and publishes as it, and what the role may not do fails safely.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { serverUrl, uniqueName } from '../helpers/postgres.ts';
import { relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
const { db } = fx;
let relay: Relay | undefined;
const role = uniqueName('walcast_relay');
const password = uniqueName('pw');

/** The SQL block of docs/security.md after its least-privilege marker. */
function documentedSql(): string {
  const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
  const start = doc.indexOf('<!-- least-privilege-sql');
  assert.ok(start >= 0, 'docs/security.md has the least-privilege SQL');
  const m = /```sql\n([\s\S]*?)```/.exec(doc.slice(start));
  return m![1]!;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: serverUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

before(async () => {
  // The owner installs the schema and the example tables once.
  const owner = await fx.relay();
  await owner.stop();
  const sql = documentedSql()
    .replaceAll('walcast_relay', role)
    .replaceAll("'change-me'", `'${password}'`)
    .replace('ON DATABASE app', `ON DATABASE ${db.name}`);
  await db.query(sql);
});

after(async () => {
  await admin((c) => c.query(`DROP ROLE IF EXISTS ${role}`));
});

test('the relay streams, snapshots and publishes as the documented role', async () => {
  const url = new URL(db.url);
  url.username = role;
  url.password = password;
  const [attrs] = await db.query(`select rolsuper, rolreplication from pg_roles where rolname = $1`, [role]);
  assert.deepEqual(attrs, { rolsuper: false, rolreplication: true });

  await db.query("insert into chat_messages (channel_id, sender, body) values ('room-lp', 'ada', 'before')");
  relay = await fx.relay({ example: false }, url.toString());
  const c = await fx.client(relay);
  const sub = await c.subscribe('room-lp', { snapshot: true });
  assert.equal(sub.type === 'subscribed' && sub.snapshot, 1);
  await db.query("insert into chat_messages (channel_id, sender, body) values ('room-lp', 'ada', 'live')");
  const published = await c.request({
    type: 'publish',
    id: 'p',
    table: 'chat_messages',
    row: { channel_id: 'room-lp', sender: 'ada', body: 'via relay' },
  });
  assert.equal(published.type, 'published');
  const events = await c.waitForEvents(3);
  assert.deepEqual(
    events.map((e) => [e.op, e.row.body]),
    [
      ['snapshot', 'before'],
      ['insert', 'live'],
      ['insert', 'via relay'],
    ],
  );

  // No INSERT on presence: the publish fails, safely, and says nothing of privileges to the client.
  const refused = await c.request({
    type: 'publish',
    id: 'q',
    table: 'presence',
    row: { channel_id: 'room-lp', user_id: 'ada' },
  });
  assert.equal(refused.type === 'error' && refused.code, 'publish_failed');
  assert.ok(refused.type === 'error' && !/permission|privilege/i.test(refused.message));
  // And the role itself cannot change what it serves.
  const asRole = new pg.Client({ connectionString: url.toString() });
  await asRole.connect();
  try {
    await assert.rejects(asRole.query('drop table chat_messages'), (e: { code?: string }) => e.code === '42501');
    await assert.rejects(
      asRole.query("update chat_messages set body = 'x'"),
      (e: { code?: string }) => e.code === '42501',
    );
  } finally {
    await asRole.end();
  }
});
