// The client SDK (client/node.ts) against the real relay: live events typed
// per table, a cut connection and a relay restart survived with every row
// exactly once, recovered:false surfaced as a resync, typed refusals, and a
// silent peer detected by the heartbeat.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer } from 'ws';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { TEST_SECRET, token } from '../helpers/tokens.ts';
import {
  createClient,
  RelayError,
  type Rows,
  type StatusEvent,
  type TableEvent,
  type WalcastClient,
} from '../../client/node.ts';
import type { chatMessages, presence } from '../../relay/db/schema.ts';

type Chat = Rows<{ chat_messages: typeof chatMessages; presence: typeof presence }>;

const fx = relayFixture();
const { relay } = fx;
const clients: WalcastClient[] = [];
const fast = { backoff: { initialMs: 50, maxMs: 300 } };

function client(url: string, options = {}): WalcastClient {
  const c = createClient(url, { ...fast, ...options });
  clients.push(c);
  return c;
}

const chat = (channel: string, body: string) =>
  fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'sdk', $2)`, [channel, body]);

const bodies = (events: TableEvent<Chat>[]) =>
  events.map((e) =>
    e.op === 'truncate'
      ? `truncate:${e.table}`
      : e.table === 'chat_messages'
        ? e.row.body
        : `presence:${e.row.user_id}`,
  );

after(() => {
  for (const c of clients) c.close();
});

test('events arrive typed per table; status goes connecting → open, as events and as an iterator', async () => {
  const r = await relay();
  const rt = client(r.url);
  const iterated: string[] = [];
  const reading = (async () => {
    for await (const s of rt.statuses()) iterated.push(s.status);
  })();
  const heard: string[] = [];
  rt.on('status', (s) => heard.push(s.status));
  const events: TableEvent<Chat>[] = [];
  const sub = rt.subscribe<Chat>('live', {}, (e) => events.push(e));
  const reply = await sub.ready;
  assert.equal(reply.channel, 'live');
  await chat('live', 'hello');
  await fx.db.query(`insert into presence (channel_id, user_id, name) values ('live', 'u1', 'Ada')`);
  await waitFor(() => events.length === 2, 10_000, 'two events');
  const [msg, here] = events;
  assert.ok(
    msg?.table === 'chat_messages' && msg.op === 'insert' && msg.row.body === 'hello' && typeof msg.row.id === 'string',
  );
  assert.ok(here?.table === 'presence' && here.op === 'insert' && here.row.name === 'Ada');
  assert.equal(rt.status, 'open');
  rt.close();
  await reading;
  assert.deepEqual(iterated, ['open', 'closed'], 'the iterator started after connecting and ended with closed');
  assert.deepEqual(heard, ['open', 'closed']);
  assert.throws(() => rt.subscribe('late', {}, () => {}), { name: 'ClientClosedError', code: 'client_closed' });
});

test('a cut connection: it reconnects, resubscribes with since, and has every row exactly once', async () => {
  const r = await relay();
  const rt = client(r.url);
  const statuses: StatusEvent[] = [];
  rt.on('status', (s) => statuses.push(s));
  const events: TableEvent<Chat>[] = [];
  const sub = rt.subscribe<Chat>('cut', { tables: ['chat_messages'] }, (e) => events.push(e));
  const replies: (boolean | undefined)[] = [];
  sub.on('subscribed', (n) => replies.push(n.recovered));
  await sub.ready;
  await chat('cut', 'before');
  await waitFor(() => events.length === 1, 10_000, 'the first row');
  for (const conn of r.internals.ws.connections) conn.ws.terminate();
  for (const b of ['gap-1', 'gap-2', 'gap-3']) await chat('cut', b);
  await waitFor(() => replies.length === 2, 10_000, 'the resubscribe');
  await chat('cut', 'after');
  await waitFor(() => events.length >= 5, 10_000, 'all five rows');
  assert.deepEqual(bodies(events), ['before', 'gap-1', 'gap-2', 'gap-3', 'after']);
  assert.deepEqual(replies, [undefined, true], 'the resubscribe carried since and was recovered');
  const reconnecting = statuses.find((s) => s.status === 'reconnecting');
  assert.ok(
    reconnecting?.status === 'reconnecting' && reconnecting.error.code === 'connection_lost',
    JSON.stringify(statuses),
  );
  assert.deepEqual(statuses.map((s) => s.status).slice(-3), ['reconnecting', 'connecting', 'open']);
});

test('a relay restart on the same slot and port: the rows committed meanwhile are replayed', async () => {
  const first = await relay();
  const rt = client(first.url);
  const events: TableEvent<Chat>[] = [];
  const sub = rt.subscribe<Chat>('restart', {}, (e) => events.push(e));
  const replies: (boolean | undefined)[] = [];
  sub.on('subscribed', (n) => replies.push(n.recovered));
  await sub.ready;
  await chat('restart', 'one');
  await waitFor(() => events.length === 1, 10_000, 'the first row');
  await first.stop();
  await waitFor(() => rt.status !== 'open', 10_000, 'the client to notice');
  await chat('restart', 'two');
  await chat('restart', 'three');
  await relay({ slot: first.slot, port: first.port });
  await waitFor(() => replies.length === 2, 20_000, 'the resubscribe to the new relay');
  await chat('restart', 'four');
  await waitFor(() => events.length >= 4, 10_000, 'four rows');
  assert.deepEqual(bodies(events), ['one', 'two', 'three', 'four']);
  assert.deepEqual(replies, [undefined, true]);
});

test('recovered:false is a resync, followed by a fresh snapshot', async () => {
  const first = await relay({ recoveryEvents: 3 });
  const rt = client(first.url);
  const events: TableEvent<Chat>[] = [];
  const sub = rt.subscribe<Chat>('lost', { snapshot: true, limit: 2, tables: ['chat_messages'] }, (e) =>
    events.push(e),
  );
  const resyncs: string[] = [];
  const synced: number[] = [];
  sub.on('resync', (n) => resyncs.push(n.since));
  sub.on('synced', (n) => synced.push(n.rows));
  await sub.ready;
  await chat('lost', 'seen');
  await waitFor(() => events.length === 1, 10_000, 'the first row');
  const since = sub.position;
  await first.stop();
  for (let i = 1; i <= 6; i++) await chat('lost', `missed-${i}`);
  // A relay on another slot (another epoch) cannot resume the old position.
  // (On the same slot, a restarted relay that is still re-reading its window
  // routes the re-read events to a resumed subscription, so whether the gap
  // is recoverable would depend on timing.)
  await relay({ port: first.port, recoveryEvents: 3 });
  await waitFor(() => synced.length === 2, 20_000, 'the fresh snapshot');
  assert.deepEqual(resyncs, [since]);
  assert.deepEqual(synced, [0, 2]);
  assert.deepEqual(
    events.slice(1).map((e) => [e.op, e.table === 'chat_messages' && e.op !== 'truncate' && e.row.body]),
    [
      ['snapshot', 'missed-5'],
      ['snapshot', 'missed-6'],
    ],
  );
  assert.ok(sub.position && !sub.position.includes('~'), 'never resumes from a snapshot row');
});

test('refusals are typed with the protocol code; unsubscribe stops the events', async () => {
  const r = await relay();
  const rt = client(r.url);
  const bad = rt.subscribe('x', { tables: ['no_such_table'] }, () => {});
  const notices: RelayError[] = [];
  bad.on('error', (e) => notices.push(e));
  await assert.rejects(
    bad.ready,
    (err: unknown) => err instanceof RelayError && err.code === 'unknown_table' && !err.retryable,
  );
  assert.equal(notices[0]?.channel, 'x');
  assert.ok(bad.closed);
  assert.throws(
    () => {
      rt.subscribe('dup', {}, () => {});
      rt.subscribe('dup', {}, () => {});
    },
    { code: 'already_subscribed' },
  );
  const got: string[] = [];
  const sub = rt.subscribe<Chat>('gone', {}, (e) =>
    got.push(e.op === 'truncate' ? 'truncate' : String(e.row.channel_id)),
  );
  await sub.ready;
  sub.unsubscribe();
  await waitFor(
    () => [...r.internals.ws.connections].every((c) => !c.subscriptions.has('gone')),
    10_000,
    'the relay to drop it',
  );
  await chat('gone', 'unheard');
  const probe: string[] = [];
  await rt.subscribe('probe', {}, () => probe.push('seen')).ready;
  await chat('probe', 'after');
  await waitFor(() => probe.length === 1, 10_000, 'a later row on another channel');
  assert.deepEqual(got, []);
});

test('a peer that stops answering is detected by the heartbeat and the client reconnects', async () => {
  // A real WebSocket server that accepts and then says nothing, ever.
  const silent = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => silent.once('listening', r));
  let accepted = 0;
  silent.on('connection', () => accepted++);
  const { port } = silent.address() as { port: number };
  const rt = client(`ws://127.0.0.1:${port}/ws`, { heartbeat: { intervalMs: 100, timeoutMs: 100 } });
  const errors: string[] = [];
  rt.on('status', (s) => s.status === 'reconnecting' && errors.push(s.error.code));
  await waitFor(() => errors.length >= 1 && accepted >= 2, 10_000, 'a heartbeat timeout and a reconnect');
  assert.equal(errors[0], 'heartbeat_timeout');
  rt.close();
  for (const ws of silent.clients) ws.terminate();
  await new Promise((r) => silent.close(r));
});

test('with a token: the client authenticates with it at every connect; channels outside its claims are forbidden', async () => {
  const r = await relay({ jwtSecret: TEST_SECRET, authTimeoutMs: 300 });
  const jwt = await token({ sub: 'ada', channels: ['room-*'] });
  let asked = 0;
  const rt = client(r.url, {
    token: () => {
      asked++;
      return jwt;
    },
  });
  const got: string[] = [];
  await rt.subscribe<Chat>('room-1', {}, (e) =>
    got.push(e.table === 'chat_messages' && e.op !== 'truncate' ? e.row.body : ''),
  ).ready;
  await chat('room-1', 'hello');
  await waitFor(() => got.length === 1, 10_000, 'the row');
  assert.deepEqual(got, ['hello']);
  await assert.rejects(
    rt.subscribe('user-bob', {}, () => {}).ready,
    (err: unknown) => err instanceof RelayError && err.code === 'forbidden',
  );
  for (const c of r.internals.ws.connections) c.ws.terminate();
  await waitFor(() => asked === 2 && rt.status === 'open', 10_000, 'a reconnect with the token');
  await chat('room-1', 'again');
  await waitFor(() => got.length === 2, 10_000, 'the row after the reconnect');

  const anonymous = client(r.url, { backoff: { initialMs: 5_000, maxMs: 5_000 } });
  const refused = await new Promise<StatusEvent>((resolve) =>
    anonymous.on('status', (s) => s.status === 'reconnecting' && resolve(s)),
  );
  assert.match(
    String(refused.status === 'reconnecting' && refused.error.message),
    /token/i,
    'without a token the relay refuses, and says why',
  );
});
