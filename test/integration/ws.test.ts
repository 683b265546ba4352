// The WebSocket endpoint against hostile and mistaken clients: each kind of
// bad input gets its error, and the connection (and everyone else) carries on.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { type TestClient, waitFor, relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
const { db } = fx;
let relay: Relay;

async function client(): Promise<TestClient> {
  return fx.client(relay);
}

before(async () => {
  relay = await fx.relay({ maxSubscriptions: 3, maxFrameBytes: 4096, heartbeatMs: 300 });
});

test('each kind of bad input gets an error frame with a stable code; the connection stays usable', async () => {
  const c = await client();
  const cases: [string | Buffer, string][] = [
    ['{oops', 'invalid_json'],
    ['[]', 'bad_request'],
    ['{"type":"frobnicate","id":"u"}', 'unknown_type'],
    ['{"type":"subscribe","id":"m"}', 'bad_request'],
    ['{"type":"subscribe","id":"c","channel":""}', 'invalid_channel'],
    ['{"type":"subscribe","id":"t","channel":"x","tables":["no_such_table"]}', 'unknown_table'],
    ['{"type":"unsubscribe","id":"n","channel":"never"}', 'not_subscribed'],
    [Buffer.from([1, 2, 3]), 'binary_not_supported'],
  ];
  for (const [frame, code] of cases) {
    const before = c.messages.length;
    c.ws.send(frame);
    const reply = await c.waitFor((m) => (m.length > before ? m[before] : undefined));
    assert.equal(reply.type, 'error', String(frame));
    assert.equal(reply.type === 'error' && reply.code, code, String(frame));
    assert.ok(reply.type === 'error' && reply.message.length > 0);
  }
  const pong = await c.request({ type: 'ping', id: 'still-here' });
  assert.deepEqual(pong, { type: 'pong', id: 'still-here' });
});

test('errors carry the id of the request that caused them', async () => {
  const c = await client();
  const reply = await c.request({ type: 'subscribe', id: 'abc', channel: 'x'.repeat(201) });
  assert.deepEqual(reply.type === 'error' && [reply.id, reply.code], ['abc', 'invalid_channel']);
});

test('subscribing twice, and past the subscription limit, is refused', async () => {
  const c = await client();
  await c.subscribe('a');
  const again = await c.request({ type: 'subscribe', id: 'again', channel: 'a' });
  assert.equal(again.type === 'error' && again.code, 'already_subscribed');
  await c.subscribe('b');
  await c.subscribe('c');
  const over = await c.request({ type: 'subscribe', id: 'over', channel: 'd' });
  assert.equal(over.type === 'error' && over.code, 'too_many_subscriptions');
  const un = await c.request({ type: 'unsubscribe', id: 'un', channel: 'a' });
  assert.deepEqual(un, { type: 'unsubscribed', id: 'un', channel: 'a' });
  await c.subscribe('d'); // room again
});

test('an unsubscribed channel no longer delivers', async () => {
  const c = await client();
  await c.subscribe('gone');
  await c.subscribe('kept');
  await c.request({ type: 'unsubscribe', id: 'u', channel: 'gone' });
  await db.query(
    `insert into chat_messages (channel_id, sender, body) values ('gone', 's', 'no'), ('kept', 's', 'yes')`,
  );
  const events = await c.waitForEvents(1);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('kept', 's', 'yes2')`);
  await c.waitForEvents(2);
  assert.deepEqual(
    c.events().map((e) => e.row.body),
    ['yes', 'yes2'],
  );
  assert.equal(events[0]?.channel, 'kept');
});

test('a frame over the size limit closes the connection with 1009; others are unaffected', async () => {
  const bystander = await client();
  await bystander.subscribe('bystander');
  const c = await client();
  c.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(5000) }));
  const closed = await c.waitClosed();
  assert.equal(closed.code, 1009);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('bystander', 's', 'fine')`);
  const [e] = await bystander.waitForEvents(1);
  assert.equal(e?.row.body, 'fine');
});

test('a client that stops answering pings is dropped within two heartbeat intervals', async () => {
  const ws = new WebSocket(relay.wsUrl, { autoPong: false });
  await new Promise((r) => ws.once('open', r));
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  await waitFor(() => relay.internals.ws.connections.size > 0);
  // The bound is two heartbeat intervals (600 ms here); the wait allows for
  // a loaded machine, and fails rather than hangs when nothing drops it.
  const code = await Promise.race([
    closed,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('the dead client was never dropped')), 10_000).unref(),
    ),
  ]);
  assert.equal(code, 1006); // terminated: no close frame for a dead peer
});

test('other paths are not WebSocket endpoints; /healthz reports the stream', async () => {
  const bad = new WebSocket(`${relay.url.replace('http', 'ws')}/nope`);
  const err = await new Promise<Error>((r) => bad.once('error', r));
  assert.match(err.message, /404/);
  const res = await fetch(`${relay.url}/healthz`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { status: string; replication: string };
  assert.equal(body.status, 'ok');
  assert.equal(body.replication, 'streaming');
});
