// A relay restarted after a busy period re-reads at most
// WALCAST_RECOVERY_REBUILD_BYTES of WAL before live rows flow: the newest
// part of the window stays resumable, positions older than it get
// recovered:false (never a partial replay), and live rows arrive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relayFixture } from '../helpers/relay.ts';

const fx = relayFixture();

test('after a busy period only the newest part of the window is re-read; it resumes, older positions get recovered:false', async () => {
  const first = await fx.relay();
  const c = await fx.client(first);
  const start = await c.subscribe('busy');
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('busy', 'load', 'old')`);
  // About 4 MB of WAL: more than the 1 MiB the next relay may re-read.
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) select 'busy', 'load', repeat('x', 400) || g from generate_series(1, 8000) g`);
  await c.waitForEvents(8001, 30_000);
  const lastBulk = c.events().at(-1)!.position;
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('busy', 'load', 'recent')`);
  await c.waitForEvents(8002, 10_000);
  await first.stop();

  const second = await fx.relay({ slot: first.slot, recoveryRebuildBytes: 1024 * 1024 });
  const late = await fx.client(second);
  const stale = await late.subscribe('busy', { since: start.type === 'subscribed' ? start.position : '' });
  assert.equal(stale.type === 'subscribed' && stale.recovered, false, 'a position older than the re-read part is not resumable');
  const fresh = await fx.client(second);
  const resumed = await fresh.subscribe('busy', { since: lastBulk });
  assert.equal(resumed.type === 'subscribed' && resumed.recovered, true, 'the newest part of the window is resumable');
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('busy', 'load', 'live')`);
  const events = await fresh.waitForEvents(2, 10_000);
  assert.deepEqual(events.map((e) => e.row.body), ['recent', 'live'], 'the missed row, then the live one');
});
