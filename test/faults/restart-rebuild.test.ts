// WALCAST_RECOVERY_REBUILD_BYTES bounds what a restarted relay re-reads
// before live rows flow: the running relay holds the slot's confirmed
// position at most that much WAL behind what it delivered, and a starting
// relay starts no further back. Positions older than that get
// recovered:false after the restart (never a partial replay), and live rows
// arrive. (The bound counts the server's WAL, other databases' included, so
// only what is older than the bound is asserted here.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relayFixture } from '../helpers/relay.ts';
import type { RelayConfig } from '../../relay/relay.ts';

const fx = relayFixture();
const MiB = 1024 * 1024;

async function busyThenRestart(
  channel: string,
  first: Partial<RelayConfig>,
  second: Partial<RelayConfig>,
): Promise<void> {
  const a = await fx.relay(first);
  const c = await fx.client(a);
  const start = await c.subscribe(channel);
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'load', 'old')`, [channel]);
  // About 4 MB of WAL: more than the 1 MiB bound.
  await fx.db.query(
    `insert into chat_messages (channel_id, sender, body) select $1, 'load', repeat('x', 400) || g from generate_series(1, 8000) g`,
    [channel],
  );
  await c.waitForEvents(8001, 30_000);
  await a.stop();

  const b = await fx.relay({ ...second, slot: a.slot });
  const late = await fx.client(b);
  const stale = await late.subscribe(channel, { since: start.type === 'subscribed' ? start.position : '' });
  assert.equal(
    stale.type === 'subscribed' && stale.recovered,
    false,
    'a position older than the bound is not resumable: no partial replay',
  );
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'load', 'live')`, [channel]);
  const events = await late.waitForEvents(1, 10_000);
  assert.deepEqual(
    events.map((e) => e.row.body),
    ['live'],
    'live rows flow',
  );
}

test('the running relay holds at most the bound of WAL for the window', async () => {
  await busyThenRestart('held', { recoveryRebuildBytes: MiB }, {});
});

test('a starting relay re-reads at most the bound, even when the slot holds more', async () => {
  await busyThenRestart('started', {}, { recoveryRebuildBytes: MiB });
});

test('without a bound (the default) the whole window survives the restart', async () => {
  const a = await fx.relay();
  const c = await fx.client(a);
  const start = await c.subscribe('whole');
  await fx.db.query(
    `insert into chat_messages (channel_id, sender, body) select 'whole', 'load', repeat('x', 400) || g from generate_series(1, 8000) g`,
  );
  await c.waitForEvents(8000, 30_000);
  await a.stop();
  const b = await fx.relay({ slot: a.slot });
  const again = await fx.client(b);
  const reply = await again.subscribe('whole', { since: start.type === 'subscribed' ? start.position : '' });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
  await again.waitForEvents(8000, 30_000);
});
