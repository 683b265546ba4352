// TRUNCATE reaches subscribers: one `truncate` event per table to every
// subscription that admits the table, whatever its channel, in commit order;
// CASCADE gives one per registered table; a resume replays it; the SDK
// hands it over typed.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { relayFixture, waitFor, type TestClient } from '../helpers/relay.ts';
import { createClient, type TableEvent, type WalcastClient } from '../../client/node.ts';

const fx = relayFixture();
const sdks: WalcastClient[] = [];
after(() => {
  for (const c of sdks) c.close();
});

const chat = (channel: string, body: string) =>
  fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 't', $2)`, [channel, body]);
const hasBody = (c: TestClient, body: string) =>
  c.waitFor(
    (ms) => ms.some((m) => m.type === 'event' && m.op !== 'truncate' && m.row.body === body),
    10_000,
    `the row "${body}"`,
  );
/** The event stream as "op:table:body" strings. */
const ops = (c: TestClient) =>
  c.messages.flatMap((m) =>
    m.type !== 'event'
      ? []
      : m.op === 'truncate'
        ? [`truncate:${m.table}:${m.channel}`]
        : [`${m.op}:${m.table}:${String(m.row.body ?? '')}`],
  );

test('a TRUNCATE reaches every subscription that admits the table, once, in commit order; a resume replays it', async () => {
  const relay = await fx.relay();
  const all = await fx.client(relay);
  const chatOnly = await fx.client(relay);
  const presenceOnly = await fx.client(relay);
  const start = await all.subscribe('room-t');
  await chatOnly.subscribe('elsewhere', { tables: ['chat_messages'] });
  await presenceOnly.subscribe('room-t', { tables: ['presence'] });
  const sdk = createClient(relay.url);
  sdks.push(sdk);
  const got: TableEvent[] = [];
  await sdk.subscribe('room-t', {}, (e) => got.push(e)).ready;

  await chat('room-t', 'before');
  await fx.db.query('truncate chat_messages');
  await chat('room-t', 'after');
  await fx.db.query(`insert into presence (channel_id, user_id, name) values ('room-t', 'u1', 'marker')`);
  await all.waitFor(
    (ms) => ms.some((m) => m.type === 'event' && m.table === 'presence'),
    10_000,
    'the presence marker',
  );
  assert.deepEqual(ops(all), [
    'insert:chat_messages:before',
    'truncate:chat_messages:room-t',
    'insert:chat_messages:after',
    'insert:presence:',
  ]);
  await chat('elsewhere', 'marker');
  await hasBody(chatOnly, 'marker');
  assert.deepEqual(
    ops(chatOnly),
    ['truncate:chat_messages:elsewhere', 'insert:chat_messages:marker'],
    'whatever the channel',
  );
  await presenceOnly.waitForEvents(1);
  assert.deepEqual(ops(presenceOnly), ['insert:presence:'], 'not to a subscription whose tables leave the table out');

  const truncate = all.truncates()[0]!;
  assert.deepEqual(
    Object.keys(truncate).sort(),
    ['channel', 'commit_time', 'op', 'position', 'table', 'type'],
    'no row',
  );
  await waitFor(() => got.length === 4, 10_000, 'the SDK to get four events');
  assert.deepEqual(
    got.map((e) => (e.op === 'truncate' ? `truncate:${e.table}` : e.op)),
    ['insert', 'truncate:chat_messages', 'insert', 'insert'],
  );

  const again = await fx.client(relay);
  const reply = await again.subscribe('room-t', { since: start.type === 'subscribed' ? start.position : '' });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
  await again.waitFor(
    (ms) => ms.some((m) => m.type === 'event' && m.table === 'presence'),
    10_000,
    'the replayed presence marker',
  );
  assert.deepEqual(ops(again), ops(all), 'the replay has the truncate in its place');
  assert.equal(again.truncates()[0]!.position, truncate.position);
});

test('TRUNCATE … CASCADE over registered tables gives one event per table', async () => {
  await fx.db.query(`create table t_parent (id int primary key, ch text not null)`);
  await fx.db.query(`create table t_child (id int primary key, parent_id int references t_parent, ch text not null)`);
  await fx.db.query(`select walcast.register_table('t_parent', channel_column => 'ch')`);
  await fx.db.query(`select walcast.register_table('t_child', channel_column => 'ch')`);
  const relay = await fx.relay();
  const c = await fx.client(relay);
  await c.subscribe('fam');
  await fx.db.query(`insert into t_parent values (1, 'fam')`);
  await fx.db.query(`insert into t_child values (1, 1, 'fam')`);
  await fx.db.query('truncate t_parent cascade');
  await chat('fam', 'marker');
  await hasBody(c, 'marker');
  const truncates = c.truncates();
  assert.deepEqual(truncates.map((t) => t.table).sort(), ['t_child', 't_parent']);
  assert.notEqual(truncates[0]!.position, truncates[1]!.position, 'each has its own position');
  assert.ok(truncates[0]!.position < truncates[1]!.position);
});
