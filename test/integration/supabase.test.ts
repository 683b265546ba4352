// Supabase Realtime compatibility with the real supabase-js (realtime-js
// 2.109.0), over both serializers: postgres_changes with every event kind
// and filter, broadcast and presence between clients, heartbeats, against
// the real relay and PostgreSQL.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SupabaseClient } from '@supabase/supabase-js';
import { relayFixture } from '../helpers/relay.ts';
import { Inbox, phoenix, subscribed, supabaseClient, type Vsn } from '../helpers/supabase.ts';

const fx = relayFixture();
const clients: SupabaseClient[] = [];
after(async () => {
  for (const c of clients) await c.removeAllChannels();
});

function client(url: string, vsn: Vsn, heartbeatIntervalMs?: number): SupabaseClient {
  const c = supabaseClient(url, 'anon-key-unused-in-open-mode', { vsn, heartbeatIntervalMs });
  clients.push(c);
  return c;
}

interface Change {
  eventType: string;
  table: string;
  schema: string;
  commit_timestamp: string;
  new: Record<string, unknown>;
  old: Record<string, unknown>;
  errors: unknown;
}

for (const vsn of ['1.0.0', '2.0.0'] as const) {
  // Rows of each serializer's tests apart (one database for the file).
  const v = vsn === '1.0.0' ? 'v1' : 'v2';
  describe(`vsn ${vsn}`, () => {
    test('INSERT, UPDATE and DELETE with event "*" and an eq filter; values as upstream encodes them', async () => {
      const relay = await fx.relay();
      const sb = client(relay.url, vsn);
      const inbox = new Inbox<Change>();
      const ch = sb
        .channel(`room-a-${vsn}`)
        .on(
          'postgres_changes',
          { event: '*', schema: 'public', table: 'presence', filter: `channel_id=eq.a${v}` },
          (p) => inbox.push(p as unknown as Change),
        );
      await subscribed(ch);
      await fx.db.query(`insert into presence (channel_id, user_id, name, meta) values ('b${v}', 'x', 'other', '{}')`);
      await fx.db.query(
        `insert into presence (channel_id, user_id, name, meta) values ('a${v}', 'ada', 'Ada', '{"k":[1,2]}')`,
      );
      await fx.db.query(`update presence set name = 'Ada L' where channel_id = 'a${v}'`);
      await fx.db.query(`delete from presence where channel_id = 'a${v}'`);
      const got = await inbox.until((i) => i.length >= 3, 'three changes');
      assert.deepEqual(
        got.map((c) => [c.eventType, c.table, c.schema, c.new.name, c.old.user_id]),
        [
          ['INSERT', 'presence', 'public', 'Ada', undefined],
          ['UPDATE', 'presence', 'public', 'Ada L', undefined],
          ['DELETE', 'presence', 'public', undefined, 'ada'],
        ],
      );
      assert.deepEqual(got[0]!.new.meta, { k: [1, 2] });
      assert.match(String(got[0]!.new.updated_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$/);
      assert.match(got[0]!.commit_timestamp, /^\d{4}-\d\d-\d\dT/);
      assert.equal(got[0]!.errors, null);
    });

    test('per-event bindings, an in filter and several bindings on one channel; a row right after SUBSCRIBED arrives', async () => {
      const relay = await fx.relay();
      const sb = client(relay.url, vsn);
      const inserts = new Inbox<Change>();
      const deletes = new Inbox<Change>();
      const chat = new Inbox<Change>();
      const ch = sb
        .channel(`multi-${vsn}`)
        .on(
          'postgres_changes',
          { event: 'INSERT', schema: 'public', table: 'presence', filter: `channel_id=in.(m1${v},m2${v})` },
          (p) => inserts.push(p as unknown as Change),
        )
        .on(
          'postgres_changes',
          { event: 'DELETE', schema: 'public', table: 'presence', filter: `channel_id=eq.m1${v}` },
          (p) => deletes.push(p as unknown as Change),
        )
        .on(
          'postgres_changes',
          { event: 'INSERT', schema: 'public', table: 'chat_messages', filter: `sender=eq.ada${v}` },
          (p) => chat.push(p as unknown as Change),
        );
      await subscribed(ch);
      // At once: the subscription is live before SUBSCRIBED (upstream's race, realtime-js #525).
      await fx.db.query(`insert into presence (channel_id, user_id) values ('m1${v}', 'first')`);
      await fx.db.query(`insert into presence (channel_id, user_id) values ('m3${v}', 'no'), ('m2${v}', 'two')`);
      await fx.db.query(`update presence set name = 'not watched' where channel_id = 'm1${v}'`);
      await fx.db.query(`delete from presence where channel_id = 'm1${v}'`);
      await fx.db.query(
        `insert into chat_messages (channel_id, sender, body) values ('c1', 'bob${v}', 'no'), ('c2', 'ada${v}', 'yes')`,
      );
      await chat.until((i) => i.length >= 1, 'the chat insert');
      await deletes.until((i) => i.length >= 1, 'the delete');
      assert.deepEqual(
        inserts.items.map((c) => [c.eventType, c.new.user_id]),
        [
          ['INSERT', 'first'],
          ['INSERT', 'two'],
        ],
      );
      assert.deepEqual(
        deletes.items.map((c) => [c.eventType, c.old.user_id]),
        [['DELETE', 'first']],
      );
      assert.deepEqual(
        chat.items.map((c) => [c.new.body, typeof c.new.id]),
        [['yes', 'number']],
      );
    });

    test('broadcast reaches the other client and the sender with self; ack is replied', async () => {
      const relay = await fx.relay();
      const a = client(relay.url, vsn);
      const b = client(relay.url, vsn);
      const toA = new Inbox<unknown>();
      const toB = new Inbox<unknown>();
      const ca = a
        .channel(`bc-${vsn}`, { config: { broadcast: { self: true, ack: true } } })
        .on('broadcast', { event: 'cursor' }, (m) => toA.push(m));
      const cb = b.channel(`bc-${vsn}`).on('broadcast', { event: 'cursor' }, (m) => toB.push(m));
      await subscribed(ca);
      await subscribed(cb);
      assert.equal(await ca.send({ type: 'broadcast', event: 'cursor', payload: { x: 1 } }), 'ok');
      await cb.send({ type: 'broadcast', event: 'cursor', payload: { x: 2 } });
      await toA.until((i) => i.length >= 2, 'both broadcasts at a');
      await toB.until((i) => i.length >= 1, 'a broadcast at b');
      assert.deepEqual(toA.items, [
        { type: 'broadcast', event: 'cursor', payload: { x: 1 } },
        { type: 'broadcast', event: 'cursor', payload: { x: 2 } },
      ]);
      // b has no self: its own x:2 is not echoed; a marker after it shows nothing else came.
      await ca.send({ type: 'broadcast', event: 'cursor', payload: { marker: true } });
      await toB.until((i) => i.length >= 2, 'the marker at b');
      assert.deepEqual(toB.items, [
        { type: 'broadcast', event: 'cursor', payload: { x: 1 } },
        { type: 'broadcast', event: 'cursor', payload: { marker: true } },
      ]);
    });

    test('presence: sync, join and leave between two clients', async () => {
      const relay = await fx.relay();
      const a = client(relay.url, vsn);
      const b = client(relay.url, vsn);
      const events = new Inbox<{ event: string; key?: string }>();
      const ca = a
        .channel(`pr-${vsn}`, { config: { presence: { key: 'ada' } } })
        .on('presence', { event: 'sync' }, () => events.push({ event: 'sync' }))
        .on('presence', { event: 'join' }, ({ key }) => events.push({ event: 'join', key }))
        .on('presence', { event: 'leave' }, ({ key }) => events.push({ event: 'leave', key }));
      await subscribed(ca);
      await events.until((i) => i.some((e) => e.event === 'sync'), 'the first sync (empty presence_state)');
      assert.deepEqual(ca.presenceState(), {});
      const cb = b.channel(`pr-${vsn}`, { config: { presence: { key: 'bob' } } });
      await subscribed(cb);
      await cb.track({ online: true });
      await events.until((i) => i.some((e) => e.event === 'join' && e.key === 'bob'), 'bob joining');
      assert.deepEqual(
        Object.entries(ca.presenceState()).map(([k, v]) => [k, (v as { online?: boolean }[])[0]?.online]),
        [['bob', true]],
      );
      await b.removeChannel(cb);
      await events.until((i) => i.some((e) => e.event === 'leave' && e.key === 'bob'), 'bob leaving');
      assert.deepEqual(ca.presenceState(), {});
    });
  });
}

test('a filter the door cannot serve: a system error naming it and CHANNEL_ERROR, not silence', async () => {
  const relay = await fx.relay();
  const sb = client(relay.url, '2.0.0');
  const system = new Inbox<{ status: string; message: string }>();
  const ch = sb
    .channel('bad-filter')
    .on('system', {}, (m) => system.push(m as { status: string; message: string }))
    .on('postgres_changes', { event: '*', schema: 'public', table: 'presence', filter: 'name=fts.ada' }, () => {});
  await assert.rejects(subscribed(ch), /CHANNEL_ERROR: supabase_filter_unsupported: filter name=fts.ada on presence/);
  await system.until((i) => i.length > 0, 'the system error');
  assert.equal(system.items[0]!.status, 'error');
  assert.match(system.items[0]!.message, /supported: eq, neq, lt, lte, gt, gte, in, like, ilike, is/);
  await sb.removeChannel(ch);
});

test('a table walcast does not stream is refused with CHANNEL_ERROR and the fix', async () => {
  const relay = await fx.relay();
  await fx.db.query('create table if not exists not_streamed (id int primary key)');
  const sb = client(relay.url, '1.0.0');
  const ch = sb
    .channel('refused')
    .on('postgres_changes', { event: '*', schema: 'public', table: 'not_streamed' }, () => {});
  await assert.rejects(
    subscribed(ch),
    /CHANNEL_ERROR: supabase_table_not_registered: table public.not_streamed is not registered.*walcast.register_table/,
  );
  await sb.removeChannel(ch);
});

test('REST broadcast (POST /realtime/v1/api/broadcast) reaches subscribers; httpSend too', async () => {
  const relay = await fx.relay();
  const sb = client(relay.url, '2.0.0');
  const got = new Inbox<unknown>();
  const ch = sb.channel('from-server').on('broadcast', { event: 'news' }, (m) => got.push(m));
  await subscribed(ch);
  const res = await fetch(`${relay.url}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', apikey: 'anon' },
    body: JSON.stringify({ messages: [{ topic: 'from-server', event: 'news', payload: { n: 1 } }] }),
  });
  assert.equal(res.status, 202);
  assert.deepEqual(await ch.httpSend('news', { n: 2 }), { success: true });
  await got.until((i) => i.length >= 2, 'two broadcasts');
  assert.deepEqual(got.items, [
    { type: 'broadcast', event: 'news', payload: { n: 1 } },
    { type: 'broadcast', event: 'news', payload: { n: 2 } },
  ]);
  const metrics = await (await fetch(`${relay.url}/metrics`)).text();
  assert.match(metrics, /^walcast_supabase_connections 1$/m);
  assert.match(metrics, /^walcast_supabase_broadcasts_total 2$/m);
  const bad = await fetch(`${relay.url}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"messages":[]}',
  });
  assert.equal(bad.status, 400);
});

test('heartbeats for more than a minute: every one answered, the socket still delivers', async () => {
  const relay = await fx.relay({ heartbeatMs: 5000 });
  const sb = client(relay.url, '2.0.0', 1000);
  const beats = new Inbox<string>();
  sb.realtime.onHeartbeat((status) => beats.push(status));
  const rows = new Inbox<Change>();
  const ch = sb
    .channel('long')
    .on(
      'postgres_changes',
      { event: 'INSERT', schema: 'public', table: 'presence', filter: 'channel_id=eq.long' },
      (p) => rows.push(p as unknown as Change),
    );
  await subscribed(ch);
  const started = Date.now();
  await beats.until(() => Date.now() - started > 61_000, 'a minute of heartbeats', 70_000);
  const ok = beats.items.filter((s) => s === 'ok').length;
  assert.ok(ok >= 50, `${ok} heartbeats answered in 61 s`);
  assert.deepEqual(
    beats.items.filter((s) => s !== 'ok' && s !== 'sent'),
    [],
  );
  await fx.db.query(`insert into presence (channel_id, user_id) values ('long', 'still-here')`);
  await rows.until((i) => i.length === 1, 'a row after a minute');
});

test('resume extension: a client rejoining with walcast.since gets the changes it missed, then live, none twice', async () => {
  const relay = await fx.relay();
  const first = await phoenix(relay.url);
  first.join({});
  await first.frames.until((i) => i.some((f) => f.event === 'phx_reply'), 'the join reply');
  await fx.db.query(`insert into presence (channel_id, user_id) values ('res-1', 'seen')`);
  const [seen] = await first.frames.until(() => first.changes().length === 1, 'the first change').then(first.changes);
  assert.equal(seen!.data.record.user_id, 'seen');
  assert.match(seen!.walcast_position, /^[0-9A-F]{16}-[0-9A-F]{8}-/);
  first.ws.close();
  await fx.db.query(`insert into presence (channel_id, user_id) values ('res-1', 'missed-1'), ('res-2', 'other')`);
  await fx.db.query(`insert into presence (channel_id, user_id) values ('res-1', 'missed-2')`);
  const again = await phoenix(relay.url);
  again.join({ since: seen!.walcast_position });
  await again.frames.until(() => again.changes().length === 2, 'the missed changes');
  await fx.db.query(`insert into presence (channel_id, user_id) values ('res-1', 'live')`);
  await again.frames.until(() => again.changes().length === 3, 'the live change');
  assert.deepEqual(
    again.changes().map((c) => c.data.record.user_id),
    ['missed-1', 'missed-2', 'live'],
  );
  const events = again.frames.items.map((f) => f.event);
  assert.ok(events.indexOf('phx_reply') < events.indexOf('postgres_changes'), 'the reply comes before the replay');
  again.ws.close();
});

test('unmodified clients get exactly the upstream payload: no walcast_position; no vsn means 1.0.0', async () => {
  const relay = await fx.relay();
  const raw = await phoenix(relay.url, 'apikey=anon');
  raw.ws.send(
    JSON.stringify({
      topic: 'realtime:plain',
      event: 'phx_join',
      ref: '1',
      join_ref: '1',
      payload: {
        config: {
          postgres_changes: [{ event: '*', schema: 'public', table: 'presence', filter: 'channel_id=eq.plain' }],
        },
      },
    }),
  );
  await raw.frames.until((i) => i.some((f) => f.event === 'phx_reply'), 'the join reply');
  await fx.db.query(`insert into presence (channel_id, user_id) values ('plain', 'p')`);
  await raw.frames.until(() => raw.changes().length === 1, 'the change');
  assert.deepEqual(Object.keys(raw.changes()[0]!).sort(), ['data', 'ids']);
  raw.ws.close();
});

test("a row over WALCAST_MAX_EVENT_BYTES arrives with upstream's errors entry and its small values; the socket stays up", async () => {
  const relay = await fx.relay({ maxEventBytes: 65_536 });
  const sb = client(relay.url, '2.0.0');
  const rows = new Inbox<Change>();
  const ch = sb
    .channel('large')
    .on(
      'postgres_changes',
      { event: 'INSERT', schema: 'public', table: 'chat_messages', filter: 'channel_id=eq.large' },
      (p) => rows.push(p as unknown as Change),
    );
  await subscribed(ch);
  await fx.db.query(
    `insert into chat_messages (channel_id, sender, body) values ('large', 'big', repeat('x', 100000))`,
  );
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('large', 'small', 'after')`);
  await rows.until((i) => i.length === 2, 'both rows');
  assert.deepEqual(rows.items[0]!.errors, ['Error 413: Payload Too Large']);
  assert.equal(rows.items[0]!.new.sender, 'big');
  assert.equal(rows.items[0]!.new.body, undefined);
  assert.deepEqual([rows.items[1]!.errors, rows.items[1]!.new.body], [null, 'after']);
});

test('a broadcast is carried on the stream: it reaches a client of another relay on the same database', async () => {
  const one = await fx.relay();
  const two = await fx.relay();
  const a = client(one.url, '2.0.0');
  const b = client(two.url, '1.0.0');
  const got = new Inbox<unknown>();
  const ca = a.channel('across', { config: { broadcast: { ack: true } } });
  const cb = b.channel('across').on('broadcast', { event: 'hello' }, (m) => got.push(m));
  await subscribed(ca);
  await subscribed(cb);
  assert.equal(await ca.send({ type: 'broadcast', event: 'hello', payload: { from: 'relay one' } }), 'ok');
  await got.until((i) => i.length === 1, 'the broadcast on the other relay');
  assert.deepEqual(got.items, [{ type: 'broadcast', event: 'hello', payload: { from: 'relay one' } }]);
});
