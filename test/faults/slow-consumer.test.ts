// A subscriber that reads nothing: its send queue is capped (sendQueueBytes,
// default 1 MiB), it is closed with 4008 and a reason, and a subscriber of
// the same channel that reads receives every row.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { CLOSE } from '../../client/protocol.ts';
import { TestClient, waitFor, relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
const { db } = fx;
let relay: Relay;
before(async () => {
  relay = await fx.relay();
});
const ROWS = 2000;
const BODY = 'x'.repeat(8 * 1024); // 16 MiB in all: more than the kernel's socket buffers hold

test('a consumer that reads nothing is closed with 4008 at its queue cap; the others get every row', async () => {
  const slow = await TestClient.connect(relay.wsUrl);
  const fast = await TestClient.connect(relay.wsUrl);
  await slow.subscribe('firehose');
  await fast.subscribe('firehose');
  // Stop reading: TCP back-pressure fills the relay's queue for this socket.
  const socket = (slow.ws as unknown as { _socket: Socket })._socket;
  socket.pause();

  let peakQueued = 0;
  const sampler = setInterval(() => {
    for (const c of relay.internals.ws.wss.clients) peakQueued = Math.max(peakQueued, c.bufferedAmount);
  }, 5);
  const inserts = (async () => {
    for (let i = 0; i < ROWS; i += 100) {
      await db.query(
        `insert into chat_messages (channel_id, sender, body) select 'firehose', 's', $1 || g from generate_series(${i}, ${i + 99}) g`,
        [BODY],
      );
    }
  })();
  try {
    await waitFor(() => relay.internals.ws.slowConsumerCloses > 0, 60_000, 'the relay to close the slow consumer');
    // Reading again, the client drains what was queued and finds the close frame.
    socket.resume();
    const closed = await slow.waitClosed(15_000);
    assert.deepEqual(closed, { code: CLOSE.slowConsumer, reason: 'slow consumer: send queue over its limit' });
    await inserts;
    await fast.waitForEvents(ROWS, 60_000);
  } finally {
    clearInterval(sampler);
  }
  assert.equal(relay.internals.ws.slowConsumerCloses, 1, 'the slow consumer, and only it, was closed');
  assert.ok(peakQueued <= 1_048_576, `the relay queued at most the 1 MiB cap for a socket (peak ${peakQueued})`);
  const bodies = fast.events().map((e) => String(e.row.body).slice(BODY.length));
  assert.deepEqual(
    bodies,
    Array.from({ length: ROWS }, (_, i) => String(i)),
    'the reading subscriber got every row in order',
  );
  assert.ok(slow.events().length < ROWS, 'the slow consumer did not get everything');
  fast.close();
});
