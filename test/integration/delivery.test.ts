// The core path: rows written with SQL reach the WebSocket subscribers of
// their channel, through the real slot and the real relay.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type TestClient, relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
const { db } = fx;
let relay: Relay;

async function client(): Promise<TestClient> {
  return fx.client(relay);
}

before(async () => {
  relay = await fx.relay();
});

test('an INSERT reaches the subscribers of its channel and no one else', async () => {
  const a = await client();
  const b = await client();
  const other = await client();
  await a.subscribe('room-1');
  await b.subscribe('room-1');
  await other.subscribe('room-2');
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('room-1', 'ada', 'hello')`);
  const [ea] = await a.waitForEvents(1);
  const [eb] = await b.waitForEvents(1);
  assert.equal(ea?.channel, 'room-1');
  assert.equal(ea?.table, 'chat_messages');
  assert.equal(ea?.op, 'insert');
  assert.equal(ea?.row.sender, 'ada');
  assert.equal(ea?.row.body, 'hello');
  assert.match(String(ea?.row.id), /^\d+$/);
  assert.match(ea!.commit_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.match(ea!.position, /^[0-9A-F]{16}-[0-9A-F]{8}-[0-9a-z]+$/);
  assert.deepEqual(eb, ea);
  // room-2's subscriber gets room-2's row and never room-1's.
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('room-2', 'bob', 'other')`);
  const [eo] = await other.waitForEvents(1);
  assert.equal(eo?.row.body, 'other');
  assert.equal(other.events().length, 1);
  assert.equal(a.events().length, 1);
});

test('the subscribed reply carries a position below every later event', async () => {
  const c = await client();
  const reply = await c.subscribe('pos-1');
  assert.equal(reply.type, 'subscribed');
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('pos-1', 'a', 'x')`);
  const [e] = await c.waitForEvents(1);
  assert.ok(reply.type === 'subscribed' && e!.position > reply.position, `${e!.position} > ${JSON.stringify(reply)}`);
});

test('several tables share one channel; the table filter narrows it', async () => {
  const all = await client();
  const chatOnly = await client();
  await all.subscribe('call-7');
  await chatOnly.subscribe('call-7', { tables: ['chat_messages'] });
  await db.query(`insert into call_state (session_id, key, value) values ('call-7', 'muted', 'true')`);
  await db.query(`insert into presence (channel_id, user_id, name) values ('call-7', 'u1', 'Ada')`);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('call-7', 'ada', 'hi')`);
  const events = await all.waitForEvents(3);
  assert.deepEqual(
    events.map((e) => e.table),
    ['call_state', 'presence', 'chat_messages'],
  );
  const chat = await chatOnly.waitForEvents(1);
  assert.deepEqual(
    chat.map((e) => e.table),
    ['chat_messages'],
  );
  // Wait for a later event so a stray non-chat event would have arrived.
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('call-7', 'ada', 'again')`);
  await chatOnly.waitForEvents(2);
  assert.deepEqual(
    chatOnly.events().map((e) => e.table),
    ['chat_messages', 'chat_messages'],
  );
});

test('commit order holds inside a transaction and across channels; positions increase', async () => {
  const c = await client();
  await c.subscribe('order-a');
  await c.subscribe('order-b');
  const tx = await db.pool.connect();
  try {
    await tx.query('begin');
    for (let i = 0; i < 50; i++) {
      await tx.query(`insert into chat_messages (channel_id, sender, body) values ($1, 's', $2)`, [
        i % 2 ? 'order-a' : 'order-b',
        `m${i}`,
      ]);
    }
    await tx.query('commit');
  } finally {
    tx.release();
  }
  for (let i = 50; i < 60; i++) {
    await db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 's', $2)`, [
      i % 2 ? 'order-a' : 'order-b',
      `m${i}`,
    ]);
  }
  const events = await c.waitForEvents(60);
  assert.deepEqual(
    events.map((e) => e.row.body),
    Array.from({ length: 60 }, (_, i) => `m${i}`),
  );
  const positions = events.map((e) => e.position);
  assert.deepEqual([...positions].sort(), positions);
  assert.equal(new Set(positions).size, 60);
  // The first 50 share one commit: one commit time, one LSN prefix.
  assert.equal(new Set(events.slice(0, 50).map((e) => e.commit_time)).size, 1);
  assert.equal(new Set(events.slice(0, 50).map((e) => e.position.slice(0, 16))).size, 1);
});

test('a rolled-back transaction is never delivered', async () => {
  const c = await client();
  await c.subscribe('rb');
  const tx = await db.pool.connect();
  try {
    await tx.query('begin');
    await tx.query(`insert into chat_messages (channel_id, sender, body) values ('rb', 's', 'rolled back')`);
    await tx.query('rollback');
  } finally {
    tx.release();
  }
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('rb', 's', 'committed')`);
  await c.waitForEvents(1);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('rb', 's', 'after')`);
  const events = await c.waitForEvents(2);
  assert.deepEqual(
    events.map((e) => e.row.body),
    ['committed', 'after'],
  );
});

test('a multi-row transaction arrives complete and in order', async () => {
  const c = await client();
  await c.subscribe('bulk');
  await db.query(
    `insert into chat_messages (channel_id, sender, body) select 'bulk', 's', 'row ' || g from generate_series(1, 2000) g`,
  );
  const events = await c.waitForEvents(2000, 20_000);
  assert.equal(events.length, 2000);
  assert.deepEqual(
    events.map((e) => e.row.body),
    Array.from({ length: 2000 }, (_, i) => `row ${i + 1}`),
  );
});

test('updates and deletes reach the channel; a row moved to another channel: out of the old one, into the new one', async () => {
  // chat_messages' replica identity is an index on (id, channel_id), which
  // register_table chose: the old key carries the channel, the WAL stays lean.
  const c = await client();
  await c.subscribe('upd-1');
  const moved = await client();
  await moved.subscribe('upd-2');
  const [{ id }] = (await db.query<{ id: string }>(
    `insert into chat_messages (channel_id, sender, body) values ('upd-1', 's', 'v1') returning id`,
  )) as [{ id: string }];
  await db.query(`update chat_messages set body = 'v2' where id = $1`, [id]);
  await db.query(`update chat_messages set channel_id = 'upd-2', body = 'v3' where id = $1`, [id]);
  await db.query(`delete from chat_messages where id = $1`, [id]);
  const events = await c.waitForEvents(3);
  assert.deepEqual(
    events.map((e) => [e.op, e.channel, e.moved]),
    [
      ['insert', 'upd-1', undefined],
      ['update', 'upd-1', undefined],
      ['delete', 'upd-1', 'out'],
    ],
  );
  assert.equal(events[1]?.old, undefined); // the key did not change: PostgreSQL sends no old key
  // The old channel learns only that its row left: its key, not the new contents nor the new channel.
  assert.deepEqual(events[2]?.row, { id, channel_id: 'upd-1' });
  assert.equal(events[2]?.old, undefined);
  const m = await moved.waitForEvents(2);
  assert.deepEqual(
    m.map((e) => [e.op, e.channel, e.moved]),
    [
      ['insert', 'upd-2', 'in'],
      ['delete', 'upd-2', undefined],
    ],
  );
  assert.equal(m[0]?.row.body, 'v3');
  assert.equal(m[0]?.old, undefined); // nothing of the row as it was in upd-1
  assert.deepEqual(m[1]?.row, { id, channel_id: 'upd-2' }); // a delete carries the old key
  assert.equal(events[2]?.position, m[0]?.position);
});

test('with REPLICA IDENTITY FULL, updates carry the whole old row and deletes the whole row', async () => {
  await db.query(`create table notes (id int primary key, room text not null, body text)`);
  await db.query(`alter table notes replica identity full`);
  await db.query(`select walcast.register_table('notes', channel_column => 'room')`);
  const c = await client();
  await c.subscribe('full');
  await db.query(`insert into notes values (1, 'full', 'a')`);
  await db.query(`update notes set body = 'b' where id = 1`);
  await db.query(`delete from notes where id = 1`);
  const events = await c.waitForEvents(3);
  assert.deepEqual(events[1]?.old, { id: 1, room: 'full', body: 'a' });
  assert.deepEqual(events[2]?.row, { id: 1, room: 'full', body: 'b' });
});

test('deletes with the default REPLICA IDENTITY reach the channel when the key includes it', async () => {
  // presence's primary key is (channel_id, user_id): register_table keeps DEFAULT.
  const c = await client();
  await c.subscribe('pres-1');
  await db.query(`insert into presence (channel_id, user_id, name) values ('pres-1', 'u1', 'Ada')`);
  await db.query(
    `insert into presence (channel_id, user_id, name) values ('pres-1', 'u1', 'Ada L') on conflict (channel_id, user_id) do update set name = excluded.name`,
  );
  await db.query(`delete from presence where channel_id = 'pres-1' and user_id = 'u1'`);
  const events = await c.waitForEvents(3);
  assert.deepEqual(
    events.map((e) => e.op),
    ['insert', 'update', 'delete'],
  );
  assert.equal(events[1]?.row.name, 'Ada L');
  assert.deepEqual(events[2]?.row, { channel_id: 'pres-1', user_id: 'u1' });
});

test('unchanged TOASTed values are filled from a FULL old row, or listed in "unchanged"', async () => {
  const big = Array.from({ length: 4000 }, (_, i) => i.toString(36)).join('') + Math.random().toString(36);
  await db.query(`create table docs (id int primary key, room text not null, tag text, body text)`);
  await db.query(`alter table docs alter column body set storage external`); // out of line, uncompressed
  await db.query(`create unique index docs_key on docs (id, room)`);
  await db.query(`alter table docs replica identity using index docs_key`);
  await db.query(`create table docs_full (id int primary key, room text not null, tag text, body text)`);
  await db.query(`alter table docs_full alter column body set storage external`);
  await db.query(`alter table docs_full replica identity full`);
  await db.query(`select walcast.register_table('docs', channel_column => 'room')`);
  await db.query(`select walcast.register_table('docs_full', channel_column => 'room')`);
  const c = await client();
  await c.subscribe('toast');
  for (const t of ['docs', 'docs_full']) {
    await db.query(`insert into ${t} values (1, 'toast', 'a', $1)`, [big]);
    await db.query(`update ${t} set tag = 'b' where id = 1`);
  }
  const events = await c.waitForEvents(4);
  const [, keyed, , full] = events;
  assert.equal(keyed?.row.tag, 'b');
  assert.equal('body' in (keyed?.row ?? {}), false);
  assert.deepEqual(keyed?.unchanged, ['body']); // not sent by PostgreSQL, and said so
  assert.equal(full?.row.tag, 'b');
  assert.ok(full?.row.body === big, `body kept (${String(full?.row.body).length} of ${big.length} characters)`);
  assert.equal(full?.unchanged, undefined);
});
