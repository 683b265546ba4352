// Events larger than the send queue (1 MiB): a 2 MB text row and a 5 MB
// bytea row reach a raw WebSocket client and the SDK, live and on resume; a
// row over WALCAST_MAX_EVENT_BYTES becomes an event_too_large error in its
// place and the rows after it still arrive; a client that reads nothing is
// still closed with 4008.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { CLOSE, type ErrorMessage } from '../../client/protocol.ts';
import { relayFixture, waitFor, type TestClient } from '../helpers/relay.ts';
import { createClient, type SkippedNotice, type TableEvent, type WalcastClient } from '../../client/node.ts';

const fx = relayFixture();
const MAX_EVENT = 8 * 1024 * 1024;
const TEXT = 'é'.repeat(1024 * 1024); // 2 MB of UTF-8
const BYTES = Buffer.alloc(5 * 1024 * 1024, 7); // 6.7 MB as base64
const HUGE = 'x'.repeat(MAX_EVENT + 1);
const sdks: WalcastClient[] = [];
after(() => {
  for (const c of sdks) c.close();
});

async function insertRows(channel: string): Promise<void> {
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'big', $2)`, [channel, TEXT]);
  await fx.db.query(`insert into video_frames (to_id, payload) values ($1, $2)`, [channel, BYTES]);
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'huge', $2)`, [channel, HUGE]);
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'marker', 'after')`, [channel]);
}

/** What a raw client must have seen: the two large events, the notice, the marker, in order, and no close. */
function checkRaw(c: TestClient): ErrorMessage {
  const seen = c.messages.filter((m) => m.type === 'event' || m.type === 'error');
  assert.equal(seen.length, 4, JSON.stringify(seen.map((m) => m.type)));
  const [text, frame, notice, marker] = seen;
  assert.ok(
    text?.type === 'event' && text.op === 'insert' && text.row.body === TEXT,
    'the 2 MB text row arrived whole',
  );
  assert.ok(
    frame?.type === 'event' && frame.op === 'insert' && frame.row.payload === BYTES.toString('base64'),
    'the 5 MB bytea row arrived whole',
  );
  assert.ok(notice?.type === 'error' && notice.code === 'event_too_large');
  assert.ok(
    marker?.type === 'event' && marker.op === 'insert' && marker.row.body === 'after',
    'the row after the skipped one arrived',
  );
  assert.equal(c.closed, undefined, 'the client was not closed');
  return notice;
}

test('2 MB and 5 MB rows reach a raw client and the SDK; a row over the maximum is an event_too_large error; resume replays them', async () => {
  const relay = await fx.relay({ maxEventBytes: MAX_EVENT });
  const raw = await fx.client(relay);
  const subscribed = await raw.subscribe('big');
  const sdk = createClient(relay.url, { backoff: { initialMs: 50, maxMs: 300 } });
  sdks.push(sdk);
  const got: TableEvent[] = [];
  const skipped: SkippedNotice[] = [];
  const sub = sdk.subscribe('big', {}, (e) => got.push(e));
  sub.on('skipped', (n) => skipped.push(n));
  await sub.ready;

  await insertRows('big');
  await raw.waitFor(
    (ms) => ms.some((m) => m.type === 'event' && m.op === 'insert' && m.row.body === 'after'),
    30_000,
    'the marker row',
  );
  const notice = checkRaw(raw);
  assert.equal(notice.channel, 'big');
  assert.equal(notice.table, 'chat_messages');
  assert.ok(notice.bytes! > MAX_EVENT);
  assert.match(notice.message, /WALCAST_MAX_EVENT_BYTES/);
  const metrics = await fetch(`${relay.url}/metrics`).then((r) => r.text());
  assert.match(metrics, /^walcast_events_too_large_total 1$/m);

  await waitFor(() => got.length === 3, 30_000, 'the SDK to get three events');
  assert.deepEqual(
    got.map((e) => (e.op === 'truncate' ? '' : String(e.row.body ?? e.row.payload).length)),
    [TEXT.length, BYTES.toString('base64').length, 5],
  );
  assert.deepEqual(
    skipped.map((n) => [n.table, n.position, n.error.code]),
    [['chat_messages', notice.position, 'event_too_large']],
  );
  assert.equal(sub.position, got[2]!.position, 'the SDK resumes after the marker');
  assert.equal(sdk.status, 'open');

  // Resume from before the large rows: the replay holds them all.
  const again = await fx.client(relay);
  const reply = await again.subscribe('big', { since: subscribed.type === 'subscribed' ? subscribed.position : '' });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
  await again.waitFor(
    (ms) => ms.some((m) => m.type === 'event' && m.op === 'insert' && m.row.body === 'after'),
    30_000,
    'the replayed marker',
  );
  checkRaw(again);
});

test('a paused client is still closed with 4008 within the grace period, after what was queued before the close', async () => {
  const relay = await fx.relay({ maxEventBytes: MAX_EVENT, slowConsumerMs: 500 });
  const paused = await fx.client(relay);
  const reading = await fx.client(relay);
  await paused.subscribe('stall');
  await reading.subscribe('stall');
  (paused.ws as unknown as { _socket: Socket })._socket.pause();
  for (let i = 0; i < 4; i++) {
    await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('stall', 'big', $1)`, [TEXT]);
  }
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('stall', 'marker', 'after')`);
  await waitFor(() => relay.internals.ws.slowConsumerCloses > 0, 30_000, 'the paused client to be closed as slow');
  (paused.ws as unknown as { _socket: Socket })._socket.resume();
  assert.deepEqual(await paused.waitClosed(15_000), {
    code: CLOSE.slowConsumer,
    reason: 'slow consumer: send queue over its limit',
  });
  assert.ok(
    paused.events().length >= 1,
    'the large event admitted before the close was delivered before the close frame',
  );
  await reading.waitFor(
    (ms) => ms.some((m) => m.type === 'event' && m.op === 'insert' && m.row.body === 'after'),
    30_000,
    'the marker',
  );
  assert.equal(reading.events().length, 5, 'the reading client got every row');
});
