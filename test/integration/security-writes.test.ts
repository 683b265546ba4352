// Attacks on the write path (issue 18), against a relay with a JWT key: the
// demo's routes, a state-table upsert that takes over a row of a forbidden
// channel, a channel column default that lands a row in a forbidden channel,
// a row moved between channels, and a numeric that expands into pages of
// digits. Each asserts what the attacker sees and what the database holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerMessage } from '../../client/protocol.ts';
import { TestClient, relayFixture, waitFor } from '../helpers/relay.ts';
import { TEST_SECRET, token } from '../helpers/tokens.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
let relay: Relay;
let seq = 0;
let setUp: Promise<void> | undefined;

/** The tables and the relay, once for the file (the fixture's database exists once a test runs). */
const ready = () =>
  (setUp ??= (async () => {
    relay = await fx.relay({ jwtSecret: TEST_SECRET }); // installs the walcast schema and the example tables
    await fx.db.query(`
    create table docs (id text primary key, room text not null default 'secret-1', body text);
    alter table docs replica identity full;
    select walcast.register_table('docs', channel_column => 'room', kind => 'state');
    create table defaulted (id serial primary key, room text not null default 'secret-1', body text);
    select walcast.register_table('defaulted', channel_column => 'room');
    create table amounts (id serial primary key, room text not null, amount numeric);
    select walcast.register_table('amounts', channel_column => 'room');`);
    await waitFor(
      () => ['docs', 'defaulted', 'amounts'].every((t) => relay.internals.dispatcher.hasTable(t)),
      10_000,
      'registrations',
    );
  })());

async function attacker(claims: Record<string, unknown> = {}): Promise<TestClient> {
  await ready();
  const t = await token({
    sub: `mallory-${++seq}`,
    channels: ['room-*'],
    publish: ['docs', 'defaulted', 'amounts'],
    ...claims,
  });
  const c = await TestClient.connect(`${relay.wsUrl}?token=${t}`);
  return c;
}

const publish = (c: TestClient, table: string, row: Record<string, unknown>) =>
  c.request({ type: 'publish', id: `p${++seq}`, table, row });
const code = (reply: ServerMessage) => (reply.type === 'error' ? reply.code : reply.type);

test('the demo routes do not exist with a key configured: no write without a token', async () => {
  await ready();
  const post = await fetch(`${relay.url}/demo/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room: 'secret-room', name: 'x', body: 'written without a token' }),
  });
  assert.equal(post.status, 404);
  const put = await fetch(`${relay.url}/demo/presence`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room: 'secret-room', user: 'u', name: 'x' }),
  });
  assert.equal(put.status, 404);
  await fx.db.query(`insert into presence (channel_id, user_id, name) values ('secret-room', 'victim', 'Victim')`);
  const del = await fetch(`${relay.url}/demo/presence?room=secret-room&user=victim`, { method: 'DELETE' });
  assert.equal(del.status, 404);
  assert.deepEqual(await fx.db.query(`select count(*)::int as n from chat_messages where channel_id = 'secret-room'`), [
    { n: 0 },
  ]);
  assert.deepEqual(await fx.db.query(`select user_id from presence where channel_id = 'secret-room'`), [
    { user_id: 'victim' },
  ]);
});

test('a state-table upsert cannot take over a row of a forbidden channel, nor leak its old contents', async () => {
  await fx.db.query(`insert into docs values ('d1', 'secret-1', 'top secret')`);
  const c = await attacker();
  await c.subscribe('room-1');
  // Moving it into an allowed channel, and overwriting it in place (channel omitted): both refused.
  for (const row of [
    { id: 'd1', room: 'room-1', body: 'mine now' },
    { id: 'd1', body: 'overwritten' },
  ]) {
    const reply = await publish(c, 'docs', row);
    assert.equal(code(reply), 'forbidden', JSON.stringify(reply));
    assert.ok(reply.type === 'error' && !reply.message.includes('secret'), reply.type === 'error' ? reply.message : '');
  }
  assert.deepEqual(await fx.db.query(`select room, body from docs where id = 'd1'`), [
    { room: 'secret-1', body: 'top secret' },
  ]);
  // A marker row through the same path: once it arrives, nothing about d1 came before it.
  assert.equal(code(await publish(c, 'docs', { id: 'd2', room: 'room-1', body: 'marker' })), 'published');
  await c.waitFor(
    (m) => m.find((x) => x.type === 'event' && x.op !== 'truncate' && x.row.id === 'd2'),
    10_000,
    'the marker',
  );
  assert.deepEqual(
    c.events().map((e) => e.row.id),
    ['d2'],
  );
  assert.ok(!JSON.stringify(c.messages).includes('top secret'));
  // The attacker's own row in an allowed channel may still be upserted.
  assert.equal(code(await publish(c, 'docs', { id: 'd2', room: 'room-2', body: 'moved by its writer' })), 'published');
  c.close();
});

test('a default on the channel column does not bypass the channel grant', async () => {
  const c = await attacker();
  const reply = await publish(c, 'defaulted', { body: 'lands in the default channel' });
  assert.equal(code(reply), 'forbidden', JSON.stringify(reply));
  assert.equal(code(await publish(c, 'defaulted', { room: 'room-3', body: 'explicit' })), 'published');
  assert.deepEqual(await fx.db.query(`select room, body from defaulted order by id`), [
    { room: 'room-3', body: 'explicit' },
  ]);
  // A token that may publish on the default channel may still omit the column.
  const ok = await attacker({ publish_channels: ['secret-*'] });
  assert.equal(code(await publish(ok, 'defaulted', { body: 'allowed' })), 'published');
  c.close();
  ok.close();
});

test('a row moved between channels: each channel sees only its own side of the move', async () => {
  await fx.db.query(`insert into docs values ('m1', 'room-5', 'public text'), ('m2', 'secret-2', 'secret text')`);
  const c = await attacker();
  await c.subscribe('room-5');
  const watcher = await TestClient.connect(
    `${relay.wsUrl}?token=${await token({ sub: 'ops', channels: ['secret-*'] })}`,
  );
  await watcher.subscribe('secret-1');
  await fx.db.query(`update docs set room = 'secret-1', body = 'new secret text' where id = 'm1'`); // leaves room-5
  await fx.db.query(`update docs set room = 'room-5', body = 'declassified' where id = 'm2'`); // enters room-5 from secret-2
  const events = await c.waitForEvents(2);
  assert.deepEqual(
    events.map((e) => [e.op, e.moved, e.row.id, e.row.body, e.row.room]),
    [
      ['delete', 'out', 'm1', 'public text', 'room-5'],
      ['insert', 'in', 'm2', 'declassified', 'room-5'],
    ],
  );
  assert.ok(events.every((e) => e.old === undefined));
  assert.ok(!JSON.stringify(c.messages).includes('secret'));
  const [into] = await watcher.waitForEvents(1);
  assert.deepEqual([into!.op, into!.moved, into!.row.body, into!.old], ['insert', 'in', 'new secret text', undefined]);
  c.close();
  watcher.close();
});

test('a numeric that would expand to more than 1000 digits is refused before it is stored', async () => {
  const c = await attacker();
  for (const amount of ['1e131071', '-1e-131071', ['1', '9e5000'], `1${'0'.repeat(1001)}`]) {
    const reply = await publish(c, 'amounts', { room: 'room-6', amount: Array.isArray(amount) ? amount[1] : amount });
    assert.equal(code(reply), 'invalid_row', JSON.stringify(reply));
    assert.ok(
      reply.type === 'error' && reply.errors?.some((e) => e.path === '/amount' && /1000 digits/.test(e.message)),
      JSON.stringify(reply),
    );
  }
  assert.equal(code(await publish(c, 'amounts', { room: 'room-6', amount: '12.5e3' })), 'published');
  assert.equal(code(await publish(c, 'amounts', { room: 'room-6', amount: 1e308 })), 'published');
  assert.deepEqual(await fx.db.query(`select count(*)::int as n from amounts`), [{ n: 2 }]);
  c.close();
});

test('concurrent upserts of one new key by allowed writers all succeed (the row that appears meanwhile is locked and checked)', async () => {
  const [a, b] = [await attacker(), await attacker()];
  const replies = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      publish(i % 2 ? a : b, 'docs', { id: 'race-1', room: 'room-7', body: `v${i}` }),
    ),
  );
  assert.deepEqual(replies.map(code), Array(10).fill('published'));
  assert.deepEqual(await fx.db.query(`select count(*)::int as n from docs where id = 'race-1'`), [{ n: 1 }]);
  a.close();
  b.close();
});
