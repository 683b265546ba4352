// Snapshot requests that starved other clients (issue 18, item 6), at a
// small scale. The snapshot reads are held up by a lock a test transaction
// holds on chat_messages, so the queue is seen full: per-connection and
// per-subject limits refuse at once, a bounded queue refuses the rest, a
// waiting read whose socket closed is dropped, and statement_timeout ends a
// read that waits too long.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { ServerMessage } from '../../client/protocol.ts';
import { TestClient, relayFixture, waitFor } from '../helpers/relay.ts';
import { TEST_SECRET, token } from '../helpers/tokens.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
let seq = 0;

async function as(relay: Relay, sub: string): Promise<TestClient> {
  const c = await TestClient.connect(`${relay.wsUrl}?token=${await token({ sub, channels: ['*'] })}`);
  return c;
}

/** Send a snapshot subscribe; its reply is awaited later. */
function snapshot(c: TestClient, channel: string): Promise<ServerMessage> {
  const id = `snap-${++seq}`;
  return c.request({ type: 'subscribe', id, channel, snapshot: true, tables: ['chat_messages'] });
}

const code = (m: ServerMessage) => (m.type === 'error' ? m.code : m.type);

async function lockMessages(): Promise<pg.Client> {
  const locker = new pg.Client({ connectionString: fx.db.url });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE chat_messages IN ACCESS EXCLUSIVE MODE');
  return locker;
}

test('snapshot limits: per connection, per subject, a bounded queue, and reads of closed sockets dropped', async () => {
  const relay = await fx.relay({
    jwtSecret: TEST_SECRET,
    snapshotsPerConnection: 1,
    snapshotsPerSubject: 2,
    snapshotQueue: 1,
    snapshotTimeoutMs: 60_000,
  });
  const queue = relay.internals.ws.opts.snapshots.queue;
  const locker = await lockMessages();
  const [a1, a2, a3, b, c] = [
    await as(relay, 'a'),
    await as(relay, 'a'),
    await as(relay, 'a'),
    await as(relay, 'b'),
    await as(relay, 'c'),
  ];
  const first = snapshot(a1, 'snap-1');
  await waitFor(() => queue.runningCount === 1, 5000, 'the first read to start');
  assert.equal(code(await snapshot(a1, 'snap-2')), 'snapshot_busy'); // a1 has one in flight
  const second = snapshot(a2, 'snap-3');
  await waitFor(() => queue.runningCount === 2, 5000, 'the second read to start');
  const bySubject = await snapshot(a3, 'snap-4');
  assert.equal(code(bySubject), 'snapshot_busy');
  assert.match(bySubject.type === 'error' ? bySubject.message : '', /WALCAST_SNAPSHOTS_PER_SUBJECT/);
  b.send({ type: 'subscribe', id: 'snap-b', channel: 'snap-5', snapshot: true, tables: ['chat_messages'] }); // waits: both connections are held
  await waitFor(() => queue.waitingCount === 1, 5000, 'the third read to wait');
  const full = await snapshot(c, 'snap-6');
  assert.equal(code(full), 'snapshot_busy');
  assert.match(full.type === 'error' ? full.message : '', /WALCAST_SNAPSHOT_QUEUE/);
  // b goes away while its read waits: when a connection frees up, that read is dropped, not run.
  b.close();
  await b.waitClosed();
  await waitFor(() => relay.internals.ws.connections.size === 4, 5000, 'the relay to see b close');
  await locker.query('COMMIT');
  await locker.end();
  assert.equal(code(await first), 'subscribed');
  assert.equal(code(await second), 'subscribed');
  await waitFor(() => queue.waitingCount === 0 && queue.runningCount === 0, 5000, 'the queue to drain');
  assert.equal(queue.counters.dropped, 1);
  assert.equal(queue.counters.started, 2);
  // The others are served again.
  assert.equal(code(await snapshot(c, 'snap-7')), 'subscribed');
  for (const x of [a1, a2, a3, c]) x.close();
});

test('a snapshot read that waits longer than WALCAST_SNAPSHOT_TIMEOUT_MS fails with snapshot_failed', async () => {
  const relay = await fx.relay({ jwtSecret: TEST_SECRET, snapshotTimeoutMs: 200 });
  const locker = await lockMessages();
  try {
    const c = await as(relay, 'd');
    // Answered while the lock is still held: the statement timed out.
    assert.equal(code(await snapshot(c, 'snap-8')), 'snapshot_failed');
    c.close();
  } finally {
    await locker.query('COMMIT');
    await locker.end();
  }
});
