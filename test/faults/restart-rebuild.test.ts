// A relay restarted after a busy period re-reads at most
// WALCAST_RECOVERY_REBUILD_BYTES of WAL before live rows flow: the running
// relay holds the slot's confirmed position back by at most that much (so
// PostgreSQL has no more to decode at the next start), and a starting relay
// starts no further back. The newest part of the window stays resumable,
// older positions get recovered:false (never a partial replay), and live
// rows arrive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relayFixture } from '../helpers/relay.ts';
import type { RelayConfig } from '../../relay/relay.ts';

const fx = relayFixture();
const MiB = 1024 * 1024;

async function busyThenRestart(channel: string, first: Partial<RelayConfig>, second: Partial<RelayConfig>): Promise<void> {
  const a = await fx.relay(first);
  const c = await fx.client(a);
  const start = await c.subscribe(channel);
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'load', 'old')`, [channel]);
  // About 4 MB of WAL: more than the 1 MiB bound.
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) select $1, 'load', repeat('x', 400) || g from generate_series(1, 8000) g`, [channel]);
  await c.waitForEvents(8001, 30_000);
  const lastBulk = c.events().at(-1)!.position;
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'load', 'recent')`, [channel]);
  await c.waitForEvents(8002, 10_000);
  await a.stop();

  const b = await fx.relay({ ...second, slot: a.slot });
  const late = await fx.client(b);
  const stale = await late.subscribe(channel, { since: start.type === 'subscribed' ? start.position : '' });
  assert.equal(stale.type === 'subscribed' && stale.recovered, false, 'a position older than the re-read part is not resumable');
  const fresh = await fx.client(b);
  const resumed = await fresh.subscribe(channel, { since: lastBulk });
  assert.equal(resumed.type === 'subscribed' && resumed.recovered, true, 'the newest part of the window is resumable');
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'load', 'live')`, [channel]);
  const events = await fresh.waitForEvents(2, 10_000);
  assert.deepEqual(events.map((e) => e.row.body), ['recent', 'live'], 'the missed row, then the live one');
}

test('the running relay holds at most the bound of WAL for the window: the next start re-reads only that', async () => {
  await busyThenRestart('held', { recoveryRebuildBytes: MiB }, {});
});

test('a starting relay re-reads at most the bound, even when the slot holds more', async () => {
  await busyThenRestart('started', {}, { recoveryRebuildBytes: MiB });
});
