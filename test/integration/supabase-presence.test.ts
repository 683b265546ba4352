// Supabase presence across relays, with the real supabase-js: clients of
// two relays on one database see each other's joins and leaves, a channel
// joining later gets the other relay's presences in presence_state, a relay
// that stops gracefully takes its presences with it at once, and one
// killed with SIGKILL leaves none behind after its lease.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RealtimeChannel, SupabaseClient } from '@supabase/supabase-js';
import { uniqueName } from '../helpers/postgres.ts';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { Inbox, subscribed, supabaseClient, type Vsn } from '../helpers/supabase.ts';

const fx = relayFixture();
const clients: SupabaseClient[] = [];
after(async () => {
  for (const c of clients) await c.removeAllChannels();
});

function client(url: string, vsn: Vsn): SupabaseClient {
  const c = supabaseClient(url, 'anon-key-unused-in-open-mode', { vsn });
  clients.push(c);
  return c;
}

type Seen = { event: 'sync' | 'join' | 'leave'; key?: string; state?: string[] };

/** A channel on `topic` with presence key `key`, recording syncs (with the keys present), joins and leaves. */
function watching(sb: SupabaseClient, topic: string, key: string): { ch: RealtimeChannel; seen: Inbox<Seen> } {
  const seen = new Inbox<Seen>();
  const ch = sb.channel(topic, { config: { presence: { key } } });
  ch.on('presence', { event: 'sync' }, () =>
    seen.push({ event: 'sync', state: Object.keys(ch.presenceState()).sort() }),
  )
    .on('presence', { event: 'join' }, ({ key: k }) => seen.push({ event: 'join', key: k }))
    .on('presence', { event: 'leave' }, ({ key: k }) => seen.push({ event: 'leave', key: k }));
  return { ch, seen };
}

const keysOf = (ch: RealtimeChannel) => Object.keys(ch.presenceState()).sort();

async function rows(topic: string): Promise<string[]> {
  const r = await fx.db.query<{ key: string }>(
    'select key from walcast.supabase_presence where topic = $1 order by key',
    [topic],
  );
  return r.map((x) => x.key);
}

/** A presence row and its join, as a relay writes them, that no relay renews: the next sweep removes it. */
async function markerPresence(topic: string): Promise<void> {
  const meta = { phx_ref: uniqueName('marker') };
  const diff = { topic, presence: { joins: { marker: { metas: [meta] } }, leaves: {} } };
  await fx.db.query(
    `with added as (insert into walcast.supabase_presence (topic, key, presence_ref, meta, node, expires_at)
                    values ($1, 'marker', $2, $3, 'no-relay', now()))
     select pg_logical_emit_message(true, 'walcast.supabase', $4)`,
    [topic, meta.phx_ref, meta, JSON.stringify(diff)],
  );
}

test('two relays: joins and leaves cross, and a later join gets the other relay in presence_state', async () => {
  const one = await fx.relay();
  const two = await fx.relay();
  const topic = uniqueName('room');
  const ada = watching(client(one.url, '2.0.0'), topic, 'ada');
  const bob = watching(client(two.url, '1.0.0'), topic, 'bob');
  await subscribed(ada.ch);
  await subscribed(bob.ch);
  await bob.seen.until((i) => i.some((e) => e.event === 'sync'), "bob's first sync (empty presence_state)");
  assert.equal(await ada.ch.track({ at: 'relay one' }), 'ok');
  await bob.seen.until((i) => i.some((e) => e.event === 'join' && e.key === 'ada'), 'ada joining, seen on relay two');
  assert.deepEqual(
    (bob.ch.presenceState().ada as unknown as { at: string }[]).map((m) => m.at),
    ['relay one'],
  );

  // A channel joining relay two now: its first sync already has ada (presence_state read from the shared table).
  const cyd = watching(client(two.url, '2.0.0'), topic, 'cyd');
  await subscribed(cyd.ch);
  const seen = await cyd.seen.until((i) => i.some((e) => e.event === 'sync'), "cyd's first sync");
  assert.deepEqual(seen.find((e) => e.event === 'sync')!.state, ['ada']);

  assert.equal(await bob.ch.track({ at: 'relay two' }), 'ok');
  await ada.seen.until((i) => i.some((e) => e.event === 'join' && e.key === 'bob'), 'bob joining, seen on relay one');
  assert.equal(await ada.ch.untrack(), 'ok');
  await bob.seen.until((i) => i.some((e) => e.event === 'leave' && e.key === 'ada'), 'ada leaving, on relay two');
  await cyd.seen.until((i) => i.some((e) => e.event === 'leave' && e.key === 'ada'), 'ada leaving, for cyd');
  assert.deepEqual(keysOf(cyd.ch), ['bob']);
  assert.deepEqual(await rows(topic), ['bob']);
});

test('a relay that stops gracefully takes its presences with it at once (not after the lease)', async () => {
  const one = await fx.relay(); // the default lease, 30 s: a leave within the test's wait is not the lease
  const two = await fx.relay();
  const topic = uniqueName('room');
  const ada = watching(client(one.url, '2.0.0'), topic, 'ada');
  const bob = watching(client(two.url, '2.0.0'), topic, 'bob');
  await subscribed(ada.ch);
  await subscribed(bob.ch);
  assert.equal(await bob.ch.track({}), 'ok');
  await ada.seen.until((i) => i.some((e) => e.event === 'join' && e.key === 'bob'), 'bob joining');
  await two.stop();
  await ada.seen.until((i) => i.some((e) => e.event === 'leave' && e.key === 'bob'), 'bob leaving', 10_000);
  assert.deepEqual(keysOf(ada.ch), []);
  assert.deepEqual(await rows(topic), []);
});

test('a relay killed with SIGKILL leaves no ghost: its presences leave after the lease', async (t) => {
  const lease = 1500;
  const survivor = await fx.relay({ presenceLeaseMs: lease });
  const killed = await fx.spawn(['--database-url', fx.db.url, '--slot', uniqueName('kill_slot')], {
    WALCAST_PRESENCE_LEASE_MS: String(lease),
  });
  const topic = uniqueName('room');
  const ada = watching(client(survivor.url, '2.0.0'), topic, 'ada');
  const ghost = watching(client(killed.url, '1.0.0'), topic, 'ghost');
  await subscribed(ada.ch);
  await subscribed(ghost.ch);
  assert.equal(await ghost.ch.track({ doomed: true }), 'ok');
  await ada.seen.until((i) => i.some((e) => e.event === 'join' && e.key === 'ghost'), 'ghost joining');
  // Past the ghost's first lease, a presence written as a relay writes it, by no relay (so never renewed): once
  // its leave arrives, a sweep ran after the ghost's first lease ended, and the living relay had renewed it.
  await new Promise((r) => setTimeout(r, lease * 2));
  await markerPresence(topic);
  await ada.seen.until((i) => i.some((e) => e.event === 'leave' && e.key === 'marker'), 'the marker swept');
  assert.deepEqual(keysOf(ada.ch), ['ghost'], 'a living relay keeps its presences');
  const killedAt = Date.now();
  killed.child.kill('SIGKILL');
  await killed.exited;
  await ada.seen.until((i) => i.some((e) => e.event === 'leave' && e.key === 'ghost'), 'the ghost leaving', 15_000);
  const took = Date.now() - killedAt;
  t.diagnostic(`the killed relay's presence left ${took} ms after SIGKILL (lease ${lease} ms)`);
  assert.ok(took <= (lease * 4) / 3 + 3000, `left ${took} ms after the kill (lease ${lease} ms)`);
  assert.deepEqual(keysOf(ada.ch), []);
  // The sweep's delete and the leave commit together, but the commit can reach the slot a moment before other
  // sessions see it (its WAL record is flushed before the transaction leaves the proc array): read until gone.
  await waitFor(async () => (await rows(topic)).length === 0, 5_000, "the killed relay's row to be deleted");
  assert.deepEqual(await rows(topic), []);
  // A channel joining now does not see the ghost either.
  const late = watching(client(survivor.url, '2.0.0'), topic, 'late');
  await subscribed(late.ch);
  const seen = await late.seen.until((i) => i.some((e) => e.event === 'sync'), "late's first sync");
  assert.deepEqual(seen.find((e) => e.event === 'sync')!.state, []);
});
