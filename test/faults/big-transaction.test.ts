// One transaction of 1,000,000 rows reaches a subscriber completely, and the
// relay process's memory stays under a stated bound while it streams: the
// decoder handles one message at a time, the recovery window is capped
// (recoveryMaxBytes), and each socket's send queue is capped (sendQueueBytes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { uniqueName } from '../helpers/postgres.ts';
import { relayFixture, waitFor } from '../helpers/relay.ts';

const ROWS = 1_000_000;
/**
 * The stated bound for the relay's resident memory while it delivers the
 * transaction: the 64 MiB recovery window plus the runtime (about 120 MiB
 * for node, tsx, fastify and pg), with head-room for the garbage collector.
 */
const RSS_BOUND = 384 * 1024 * 1024;

const fx = relayFixture();
const { db } = fx;

test(`a transaction of ${ROWS.toLocaleString('en')} rows is delivered completely, with relay RSS under ${RSS_BOUND / 2 ** 20} MiB`, {
  timeout: 300_000,
}, async () => {
  const relay = await fx.spawn(['--database-url', db.url, '--slot', uniqueName('big_slot'), '--example', 'true']);
  const baseline = relay.rss();

  // A lean subscriber: it reads the body of each frame without parsing JSON,
  // so that it keeps up with the relay (a slow one would be closed, 4008).
  const ws = new WebSocket(relay.wsUrl);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let events = 0;
  let inOrder = true;
  let last = -1;
  let closed: number | undefined;
  ws.on('close', (code) => (closed = code));
  const marker = Buffer.from('"body":"');
  ws.on('message', (data: Buffer) => {
    const at = data.indexOf(marker);
    if (at < 0) return;
    if (data.indexOf('"type":"event"') < 0) return;
    const n = Number(data.toString('latin1', at + marker.length, data.indexOf('"', at + marker.length)));
    if (n !== last + 1) inOrder = false;
    last = n;
    events++;
  });
  ws.send(JSON.stringify({ type: 'subscribe', id: 's', channel: 'big' }));
  await new Promise((r) => ws.once('message', r)); // subscribed

  await db.query(
    `insert into chat_messages (channel_id, sender, body) select 'big', 'bulk', (g - 1)::text from generate_series(1, ${ROWS}) g`,
  );
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, relay!.rss())), 100);
  try {
    await waitFor(() => events >= ROWS || closed !== undefined, 240_000, `${ROWS} events`);
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, relay.rss());
  console.log(`# ${events} events; relay RSS ${mib(baseline)} MiB before, peak ${mib(peak)} MiB`);
  assert.equal(closed, undefined, 'the subscriber stayed connected');
  assert.equal(events, ROWS);
  assert.ok(inOrder, 'in commit order, none missing, none twice');
  assert.ok(peak < RSS_BOUND, `relay RSS peaked at ${mib(peak)} MiB, over the ${mib(RSS_BOUND)} MiB bound`);
  ws.close();
  relay.child.kill('SIGTERM');
  assert.equal(await relay.exited, 0);
});

function mib(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}
