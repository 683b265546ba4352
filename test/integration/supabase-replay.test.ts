// Broadcast replay (realtime-js `config.broadcast.replay`) and the
// `replication_ready` notice, with the real supabase-js against the relay's
// Supabase door: a private channel's join gets the newest broadcasts of its
// topic since a time, marked replayed, then live ones; what cannot be served
// is refused with supabase_replay_invalid.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { relayFixture } from '../helpers/relay.ts';
import { Inbox, openClients, subscribed } from '../helpers/supabase.ts';

const fx = relayFixture();
const client = openClients();

interface Received {
  event: string;
  payload: { n: number };
  meta?: { replayed: boolean; id: string };
}

for (const vsn of ['1.0.0', '2.0.0'] as const) {
  describe(`vsn ${vsn}`, () => {
    test('a private join with replay gets the newest broadcasts since a time, marked replayed, then live ones', async () => {
      const relay = await fx.relay();
      const topic = `replay-${vsn}`;
      const own = new Inbox<Received>();
      const sender = client(relay.url, vsn)
        .channel(topic, { config: { private: true, broadcast: { ack: true, self: true } } })
        .on('broadcast', { event: 'msg' }, (m) => own.push(m as unknown as Received));
      await subscribed(sender);
      const since = Date.now() - 1000;
      for (const n of [1, 2, 3])
        assert.equal(await sender.send({ type: 'broadcast', event: 'msg', payload: { n } }), 'ok');
      // The ack says committed; the sender's own copy says the relay routed it (so the window holds it).
      await own.until((i) => i.some((m) => m.payload.n === 3), "the sender's own third broadcast");

      const got = new Inbox<Received>();
      const system = new Inbox<{ extension: string; status: string; message: string }>();
      const receiver = client(relay.url, vsn)
        .channel(topic, {
          config: { private: true, broadcast: { replay: { since, limit: 2 }, replication_ready: true } },
        })
        .on('broadcast', { event: 'msg' }, (m) => got.push(m as unknown as Received))
        .on('system', {}, (m) => system.push(m as { extension: string; status: string; message: string }));
      await subscribed(receiver);
      // A live broadcast after the join: the marker that everything replayed has arrived before it.
      assert.equal(await sender.send({ type: 'broadcast', event: 'msg', payload: { n: 4 } }), 'ok');
      await got.until((i) => i.some((m) => m.payload.n === 4), 'the live broadcast');
      assert.deepEqual(
        got.items.map((m) => [m.payload.n, m.meta?.replayed ?? false]),
        [
          [2, true],
          [3, true],
          [4, false],
        ],
        'the two newest broadcasts replayed, in order, then the live one; the first one left out by the limit',
      );
      const [first, second] = got.items.map((m) => m.meta?.id ?? '');
      assert.match(first!, /^[0-9A-F]{16}-/, 'a replayed id is the broadcast position');
      assert.ok(first! < second!, 'replayed ids ascend with commit order');
      await system.until((i) => i.some((m) => m.extension === 'system'), 'the replication_ready notice');
      assert.deepEqual(
        system.items.filter((m) => m.extension === 'system').map((m) => [m.status, m.message]),
        [['ok', 'Replication connection established']],
      );
    });

    test('replay since a later time than every broadcast replays none; the live one still arrives', async () => {
      const relay = await fx.relay();
      const topic = `replay-none-${vsn}`;
      const sender = client(relay.url, vsn).channel(topic, { config: { private: true, broadcast: { ack: true } } });
      await subscribed(sender);
      assert.equal(await sender.send({ type: 'broadcast', event: 'msg', payload: { n: 1 } }), 'ok');
      const got = new Inbox<Received>();
      const receiver = client(relay.url, vsn)
        .channel(topic, { config: { private: true, broadcast: { replay: { since: Date.now() + 60_000 } } } })
        .on('broadcast', { event: 'msg' }, (m) => got.push(m as unknown as Received));
      await subscribed(receiver);
      assert.equal(await sender.send({ type: 'broadcast', event: 'msg', payload: { n: 2 } }), 'ok');
      await got.until((i) => i.some((m) => m.payload.n === 2), 'the live broadcast');
      assert.deepEqual(
        got.items.map((m) => [m.payload.n, m.meta?.replayed ?? false]),
        [[2, false]],
      );
    });
  });
}

test('replay on a public channel, or with a since that is not a time, is refused with supabase_replay_invalid', async () => {
  const relay = await fx.relay();
  const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/realtime/v1/websocket?apikey=anon&vsn=1.0.0`);
  const replies = new Inbox<{ ref: string; payload: { status: string; response: { reason?: string } } }>();
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f.event === 'phx_reply') replies.push(f);
  });
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  const join = (ref: string, topic: string, config: object) =>
    ws.send(JSON.stringify({ topic, event: 'phx_join', ref, join_ref: ref, payload: { config } }));
  join('1', 'realtime:public-replay', { broadcast: { replay: { since: 0 } } });
  join('2', 'realtime:bad-since', { private: true, broadcast: { replay: { since: 'yesterday' } } });
  join('3', 'realtime:fine', { private: true, broadcast: { replay: { since: 0, limit: 1000 } } });
  await replies.until((i) => i.length === 3, 'three join replies');
  const byRef = new Map(replies.items.map((r) => [r.ref, r.payload]));
  assert.equal(byRef.get('1')!.status, 'error');
  assert.match(byRef.get('1')!.response.reason!, /^supabase_replay_invalid: .*not allowed on public channels/);
  assert.equal(byRef.get('2')!.status, 'error');
  assert.match(byRef.get('2')!.response.reason!, /^supabase_replay_invalid: .*since must be milliseconds/);
  assert.equal(byRef.get('3')!.status, 'ok', 'a limit over 25 is clamped, as upstream does, not refused');
  ws.close();
});
