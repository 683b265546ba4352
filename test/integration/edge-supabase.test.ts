// The Supabase door on edge relays, with the real supabase-js (realtime-js
// 2.109.0): a slot relay with the JetStream sink, two `walcast edge`
// processes on a real nats-server, a client on each edge. postgres_changes
// arrive on both edges with the slot relay's frames; broadcasts sent on one
// edge reach the other edge and the slot relay (and back); presence joins
// and leaves cross edges, a client's disconnect leaves, and an edge killed
// with SIGKILL leaves after its lease; a resume position from one edge is
// valid on the other. An edge without WALCAST_PUBLISH_DATABASE_URL refuses
// broadcast and track with supabase_read_only and still delivers.
// Absence (nothing twice) is checked against a marker sent last.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RealtimeChannel, SupabaseClient } from '@supabase/supabase-js';
import { uniqueName } from '../helpers/postgres.ts';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { edgeFixture, spawnEdge } from '../helpers/edge.ts';
import type { RelayProcess } from '../helpers/process.ts';
import { Inbox, phoenix, subscribed, supabaseClient, type Vsn } from '../helpers/supabase.ts';

const fx = relayFixture();
const { db } = fx;
const deployment = edgeFixture(fx);
const LEASE_MS = 1500;
const clients: SupabaseClient[] = [];
const spawned: RelayProcess[] = [];
after(async () => {
  for (const c of clients) await c.removeAllChannels();
});
fx.cleanup(() => {
  for (const p of spawned) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

/** A `walcast edge` process on the fixture's slot, writing broadcasts and presence through the primary. */
async function edgeProcess(): Promise<RelayProcess> {
  await deployment.ready();
  const p = await spawnEdge(['--database-url', db.url, '--slot', deployment.relay.slot, '--mqtt-port', 'off'], {
    WALCAST_NATS_URL: deployment.nats.url,
    WALCAST_PUBLISH_DATABASE_URL: db.url,
    WALCAST_PRESENCE_LEASE_MS: String(LEASE_MS),
  });
  spawned.push(p);
  return p;
}

let pair: Promise<[RelayProcess, RelayProcess]> | undefined;
/** Edges A and B, shared by the tests that do not kill them. */
const edges = () => (pair ??= Promise.all([edgeProcess(), edgeProcess()]));

function client(url: string, vsn: Vsn): SupabaseClient {
  const c = supabaseClient(url, 'anon-key-unused-in-open-mode', { vsn });
  clients.push(c);
  return c;
}

interface Change {
  eventType: string;
  commit_timestamp: string;
  new: Record<string, unknown>;
  old: Record<string, unknown>;
}

function changes(sb: SupabaseClient, topic: string, filter: string): { ch: RealtimeChannel; inbox: Inbox<Change> } {
  const inbox = new Inbox<Change>();
  const ch = sb
    .channel(topic)
    .on('postgres_changes', { event: '*', schema: 'public', table: 'presence', filter }, (p) =>
      inbox.push(p as unknown as Change),
    );
  return { ch, inbox };
}

test('postgres_changes on two edges: the same changes as on the slot relay, in commit order, none twice', async () => {
  const [a, b] = await edges();
  const watchers = [
    changes(client(a.url, '2.0.0'), 'pc-a', 'channel_id=eq.spc'),
    changes(client(b.url, '1.0.0'), 'pc-b', 'channel_id=eq.spc'),
    changes(client(deployment.relay.url, '2.0.0'), 'pc-slot', 'channel_id=eq.spc'),
  ];
  for (const w of watchers) await subscribed(w.ch);
  await db.query(`insert into presence (channel_id, user_id, name, meta) values ('spc', 'ada', 'Ada', '{"k":[1]}')`);
  await db.query(`insert into presence (channel_id, user_id, name) values ('other', 'x', 'not watched')`);
  await db.query(`update presence set name = 'Ada L' where channel_id = 'spc'`);
  await db.query(`delete from presence where channel_id = 'spc'`);
  await db.query(`insert into presence (channel_id, user_id, name) values ('spc', 'mark', 'marker')`);
  const seen = [];
  for (const w of watchers) {
    const got = await w.inbox.until((i) => i.some((c) => c.new.name === 'marker'), 'the marker row');
    seen.push(got.map((c) => [c.eventType, c.new.name, c.old.user_id, c.new.meta, c.commit_timestamp]));
  }
  assert.deepEqual(
    seen[0]!.map(([type, name, old]) => [type, name, old]),
    [
      ['INSERT', 'Ada', undefined],
      ['UPDATE', 'Ada L', undefined],
      ['DELETE', undefined, 'ada'],
      ['INSERT', 'marker', undefined],
    ],
  );
  assert.deepEqual(seen[0]![0]![3], { k: [1] });
  assert.deepEqual(seen[1], seen[0], 'edge B: the same changes');
  assert.deepEqual(seen[2], seen[0], 'the slot relay: the same changes');
});

test('broadcast crosses edges both ways and reaches the slot relay; ack once committed; each once, in order', async () => {
  const [a, b] = await edges();
  const topic = uniqueName('bc');
  const inboxes = new Map<string, Inbox<{ payload: { from: string } }>>();
  const channels = new Map<string, RealtimeChannel>();
  for (const [name, url, vsn] of [
    ['a', a.url, '2.0.0'],
    ['b', b.url, '1.0.0'],
    ['slot', deployment.relay.url, '2.0.0'],
  ] as const) {
    const inbox = new Inbox<{ payload: { from: string } }>();
    const ch = client(url, vsn)
      .channel(topic, { config: { broadcast: { self: true, ack: true } } })
      .on('broadcast', { event: 'note' }, (m) => inbox.push(m as unknown as { payload: { from: string } }));
    await subscribed(ch);
    inboxes.set(name, inbox);
    channels.set(name, ch);
  }
  for (const from of ['a', 'b', 'slot', 'a'])
    assert.equal(await channels.get(from)!.send({ type: 'broadcast', event: 'note', payload: { from } }), 'ok');
  assert.equal(await channels.get('b')!.send({ type: 'broadcast', event: 'note', payload: { from: 'marker' } }), 'ok');
  for (const [name, inbox] of inboxes) {
    const got = await inbox.until((i) => i.some((m) => m.payload.from === 'marker'), `the marker at ${name}`);
    assert.deepEqual(
      got.map((m) => m.payload.from),
      ['a', 'b', 'slot', 'a', 'marker'],
      `at ${name}`,
    );
  }
});

type Seen = { event: 'sync' | 'join' | 'leave'; key?: string };

function watching(sb: SupabaseClient, topic: string, key: string): { ch: RealtimeChannel; seen: Inbox<Seen> } {
  const seen = new Inbox<Seen>();
  const ch = sb
    .channel(topic, { config: { presence: { key } } })
    .on('presence', { event: 'sync' }, () => seen.push({ event: 'sync' }))
    .on('presence', { event: 'join' }, ({ key: k }) => seen.push({ event: 'join', key: k }))
    .on('presence', { event: 'leave' }, ({ key: k }) => seen.push({ event: 'leave', key: k }));
  return { ch, seen };
}

const saw = (event: 'join' | 'leave', key: string) => (i: Seen[]) => i.some((e) => e.event === event && e.key === key);
const keysOf = (ch: RealtimeChannel) => Object.keys(ch.presenceState()).sort();

test('presence across edges: joins cross, a later join gets both in presence_state, a disconnect on an edge leaves', async () => {
  const [a, b] = await edges();
  const topic = uniqueName('room');
  const adaClient = client(a.url, '2.0.0');
  const ada = watching(adaClient, topic, 'ada');
  const bob = watching(client(b.url, '1.0.0'), topic, 'bob');
  await subscribed(ada.ch);
  await subscribed(bob.ch);
  assert.equal(await ada.ch.track({ on: 'edge A' }), 'ok');
  assert.equal(await bob.ch.track({ on: 'edge B' }), 'ok');
  await bob.seen.until(saw('join', 'ada'), 'ada joining, seen on edge B');
  await ada.seen.until(saw('join', 'bob'), 'bob joining, seen on edge A');
  const cyd = watching(client(deployment.relay.url, '2.0.0'), topic, 'cyd');
  await subscribed(cyd.ch);
  await cyd.seen.until((i) => i.some((e) => e.event === 'sync'), "cyd's first sync");
  assert.deepEqual(keysOf(cyd.ch), ['ada', 'bob'], 'presence_state on the slot relay has both edges');
  assert.deepEqual(keysOf(ada.ch), ['ada', 'bob']);
  assert.deepEqual(keysOf(bob.ch), ['ada', 'bob']);
  // Ada's socket closes: edge A untracks her, and the leave reaches edge B and the slot relay.
  adaClient.realtime.disconnect();
  await bob.seen.until(saw('leave', 'ada'), 'ada leaving, on edge B');
  await cyd.seen.until(saw('leave', 'ada'), 'ada leaving, on the slot relay');
  assert.deepEqual(keysOf(bob.ch), ['bob']);
  assert.deepEqual(keysOf(cyd.ch), ['bob']);
});

test('an edge killed with SIGKILL: its presences leave the other edge after the lease', async (t) => {
  const [, b] = await edges();
  const doomed = await edgeProcess();
  const topic = uniqueName('room');
  const ada = watching(client(b.url, '2.0.0'), topic, 'ada');
  const ghost = watching(client(doomed.url, '1.0.0'), topic, 'ghost');
  await subscribed(ada.ch);
  await subscribed(ghost.ch);
  assert.equal(await ghost.ch.track({ doomed: true }), 'ok');
  await ada.seen.until(saw('join', 'ghost'), 'ghost joining');
  // Past the ghost's first lease: the doomed edge renews it, so it is still there.
  await new Promise((r) => setTimeout(r, LEASE_MS * 2));
  assert.deepEqual(keysOf(ada.ch), ['ghost'], 'a living edge keeps its presences');
  const killedAt = Date.now();
  doomed.child.kill('SIGKILL');
  await doomed.exited;
  await ada.seen.until(saw('leave', 'ghost'), 'the ghost leaving', 15_000);
  t.diagnostic(`the killed edge's presence left ${Date.now() - killedAt} ms after SIGKILL (lease ${LEASE_MS} ms)`);
  assert.deepEqual(keysOf(ada.ch), []);
  // The leave and the row's delete commit together, but PostgreSQL may send a
  // commit to the slot a moment before other sessions see it (the WAL record is
  // flushed before the transaction leaves the proc array): read until the row
  // is gone, for at most 5 s, rather than once.
  const rows = () => db.query('select key from walcast.supabase_presence where topic = $1', [topic]);
  await waitFor(async () => (await rows()).length === 0, 5_000, "the ghost's row to be deleted");
  assert.deepEqual(await rows(), []);
});

test('resume extension across edges: a position seen on edge A resumes on edge B with what was missed, then live', async () => {
  const [a, b] = await edges();
  const binding = { event: 'INSERT', table: 'presence', filter: 'channel_id=eq.eres' };
  const first = await phoenix(a.url, 'apikey=anon&vsn=1.0.0', binding);
  first.join({});
  await first.frames.until((i) => i.some((f) => f.event === 'phx_reply'), 'the join reply');
  await db.query(`insert into presence (channel_id, user_id) values ('eres', 'seen')`);
  const [seen] = await first.frames.until(() => first.changes().length === 1, 'the first change').then(first.changes);
  first.ws.close();
  await db.query(`insert into presence (channel_id, user_id) values ('eres', 'missed-1'), ('other', 'eres-x')`);
  await db.query(`insert into presence (channel_id, user_id) values ('eres', 'missed-2')`);
  const again = await phoenix(b.url, 'apikey=anon&vsn=1.0.0', binding);
  again.join({ since: seen!.walcast_position });
  await again.frames.until(() => again.changes().length === 2, 'the missed changes');
  await db.query(`insert into presence (channel_id, user_id) values ('eres', 'live')`);
  await again.frames.until(() => again.changes().length === 3, 'the live change');
  assert.deepEqual(
    again.changes().map((c) => c.data.record.user_id),
    ['missed-1', 'missed-2', 'live'],
  );
  again.ws.close();
});

test('an edge without a publish URL: broadcast and track get supabase_read_only, REST broadcast 503; receiving works', async () => {
  const readOnly = await deployment.edge();
  const [a] = await edges();
  const topic = uniqueName('ro');
  const got = new Inbox<{ payload: { n: number } }>();
  const ch = client(readOnly.url, '2.0.0')
    .channel(topic, { config: { broadcast: { ack: true }, presence: { key: 'ro' } } })
    .on('broadcast', { event: 'e' }, (m) => got.push(m as unknown as { payload: { n: number } }));
  await subscribed(ch);
  const errors: string[] = [];
  const refusals = new Inbox<string>();
  const raw = await phoenix(readOnly.url, 'apikey=anon&vsn=1.0.0');
  raw.join({});
  await raw.frames.until((i) => i.some((f) => f.event === 'phx_reply'), 'the join reply');
  for (const [ref, event, payload] of [
    ['2', 'broadcast', { type: 'broadcast', event: 'e', payload: { n: 0 } }],
    ['3', 'presence', { type: 'presence', event: 'track', payload: { hi: 1 } }],
  ] as const)
    raw.ws.send(JSON.stringify({ topic: 'realtime:resume', event, ref, join_ref: '1', payload }));
  const replies = await raw.frames.until(
    (i) => i.filter((f) => f.event === 'phx_reply' && f.ref !== '1').length === 2,
    'two replies',
  );
  for (const f of replies.filter((x) => x.event === 'phx_reply' && x.ref !== '1')) {
    const p = f.payload as unknown as { status: string; response: { reason: string } };
    errors.push(`${p.status} ${p.response.reason.split(':')[0]}`);
    refusals.push(p.response.reason);
  }
  assert.deepEqual(errors, ['error supabase_read_only', 'error supabase_read_only']);
  assert.match(refusals.items[0]!, /WALCAST_PUBLISH_DATABASE_URL/);
  raw.ws.close();
  const rest = await fetch(`${readOnly.url}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ topic, event: 'e', payload: { n: 0 } }] }),
  });
  assert.equal(rest.status, 503);
  assert.match(((await rest.json()) as { error: string }).error, /^supabase_read_only: /);
  // What others send still arrives: a broadcast through edge A, then a marker.
  const sender = client(a.url, '2.0.0').channel(topic, { config: { broadcast: { ack: true } } });
  await subscribed(sender);
  for (const n of [1, 2]) assert.equal(await sender.send({ type: 'broadcast', event: 'e', payload: { n } }), 'ok');
  const all = await got.until((i) => i.some((m) => m.payload.n === 2), 'the marker broadcast');
  assert.deepEqual(
    all.map((m) => m.payload.n),
    [1, 2],
  );
});
