// The Supabase door with a JWT key (HS256, as a Supabase project signs its
// anon key and user tokens): the apikey checked at connect, a join's
// access_token, the mapping of RLS onto walcast's channel grants, refresh
// and refusal with the shapes realtime-js shows.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import type { SupabaseClient } from '@supabase/supabase-js';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { TEST_SECRET, token } from '../helpers/tokens.ts';
import { Inbox, subscribed, supabaseClient } from '../helpers/supabase.ts';

const fx = relayFixture();
const clients: SupabaseClient[] = [];
after(async () => {
  for (const c of clients) await c.removeAllChannels();
});

function client(url: string, key: string, accessToken?: () => Promise<string | null>): SupabaseClient {
  const c = supabaseClient(url, key, { vsn: '2.0.0', accessToken });
  clients.push(c);
  return c;
}

/** A channel with INSERTs of presence on `channel`, collecting rows, system messages and subscribe states. */
function watched(sb: SupabaseClient, name: string, channel: string) {
  const rows = new Inbox<Row>();
  const system = new Inbox<{ status: string; message: string }>();
  const states = new Inbox<string>();
  sb.channel(name)
    .on('system', {}, (m) => system.push(m as { status: string; message: string }))
    .on(
      'postgres_changes',
      { event: 'INSERT', schema: 'public', table: 'presence', filter: `channel_id=eq.${channel}` },
      (p) => rows.push(p as unknown as Row),
    )
    .subscribe((s) => states.push(s));
  return { rows, system, states };
}

const secured = () => fx.relay({ jwtSecret: TEST_SECRET });
type Row = { new: Record<string, unknown> };

test('an apikey that is not a valid walcast JWT is refused at connect with 401 and the code', async () => {
  const relay = await secured();
  const forged = await token(
    { channels: ['*'] },
    { key: new TextEncoder().encode('another-secret-of-at-least-32-characters!') },
  );
  for (const key of ['', forged]) {
    const status = await new Promise<{ code: number; body: string }>((resolve) => {
      const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/realtime/v1/websocket?apikey=${key}&vsn=1.0.0`);
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
      });
      ws.on('error', () => {});
    });
    assert.equal(status.code, 401);
    assert.match(status.body, /supabase_invalid_token/);
  }
});

test('an eq filter on the channel column naming a granted channel streams; another channel is CHANNEL_ERROR', async () => {
  const relay = await secured();
  const anon = await token({ sub: 'ada', channels: ['room-*'] });
  const sb = client(relay.url, anon);
  const rows = new Inbox<Row>();
  const ok = sb
    .channel('granted')
    .on(
      'postgres_changes',
      { event: 'INSERT', schema: 'public', table: 'presence', filter: 'channel_id=eq.room-1' },
      (p) => rows.push(p as unknown as Row),
    );
  await subscribed(ok);
  await fx.db.query(`insert into presence (channel_id, user_id) values ('room-1', 'ada')`);
  await rows.until((i) => i.length === 1, 'the granted row');
  const refused = sb
    .channel('refused')
    .on(
      'postgres_changes',
      { event: '*', schema: 'public', table: 'presence', filter: 'channel_id=eq.secret' },
      () => {},
    );
  await assert.rejects(
    subscribed(refused),
    /CHANNEL_ERROR: supabase_forbidden: the token may not read channel secret of presence/,
  );
  await sb.removeChannel(refused);
});

test('a table-wide binding gets only the rows of granted channels (RLS mapped onto grants)', async () => {
  const relay = await secured();
  const sb = client(relay.url, await token({ sub: 'bob', channels: ['team-*'] }));
  const rows = new Inbox<Row>();
  const ch = sb
    .channel('wide')
    .on(
      'postgres_changes',
      { event: 'INSERT', schema: 'public', table: 'chat_messages', filter: 'sender=eq.wide' },
      (p) => rows.push(p as unknown as Row),
    );
  await subscribed(ch);
  await fx.db.query(
    `insert into chat_messages (channel_id, sender, body) values ('hidden', 'wide', 'no'), ('team-1', 'wide', 'yes'), ('other', 'wide', 'no'), ('team-2', 'wide', 'marker')`,
  );
  await rows.until((i) => i.some((r) => r.new.body === 'marker'), 'the marker');
  assert.deepEqual(
    rows.items.map((r) => [r.new.channel_id, r.new.body]),
    [
      ['team-1', 'yes'],
      ['team-2', 'marker'],
    ],
  );
  const none = client(relay.url, await token({ sub: 'eve' }));
  const refused = none
    .channel('nothing')
    .on('postgres_changes', { event: '*', schema: 'public', table: 'chat_messages' }, () => {});
  await assert.rejects(subscribed(refused), /supabase_forbidden: .*the token grants no channels/);
  await none.removeChannel(refused);
});

test("a user's access_token overrides the anon key; setAuth refreshes it, and a narrower one closes the channel", async () => {
  const relay = await secured();
  const anon = await token({ role: 'anon' }); // no channels at all
  let user = await token({ sub: 'cy', channels: ['cy-*'] });
  const sb = client(relay.url, anon, async () => user);
  const { rows, system, states } = watched(sb, 'mine', 'cy-1');
  await states.until((i) => i.includes('SUBSCRIBED'), 'SUBSCRIBED with the user token');
  user = await token({ sub: 'cy', channels: ['cy-*'] }, { expiresIn: 7200 });
  await sb.realtime.setAuth(user);
  await fx.db.query(`insert into presence (channel_id, user_id) values ('cy-1', 'after-refresh')`);
  await rows.until((i) => i.length === 1, 'a row after the refresh');
  await sb.realtime.setAuth(await token({ sub: 'cy', channels: ['elsewhere'] }));
  await system.until((i) => i.some((m) => m.status === 'error'), 'the channel closed');
  assert.match(
    system.items.find((m) => m.status === 'error')!.message,
    /supabase_forbidden: the token may not read channel cy-1/,
  );
  await states.until((i) => i.includes('CLOSED'), 'CLOSED');
});

test('broadcast and presence need the topic granted: receiving with channels, sending with publish_channels', async () => {
  const relay = await secured();
  const reader = client(relay.url, await token({ sub: 'r', channels: ['lobby'], publish_channels: [] }));
  const writer = client(relay.url, await token({ sub: 'w', channels: ['lobby'] }));
  const got = new Inbox<unknown>();
  const cr = reader
    .channel('lobby', { config: { broadcast: { ack: true } } })
    .on('broadcast', { event: 'hi' }, (m) => got.push(m));
  const cw = writer.channel('lobby', { config: { broadcast: { ack: true } } });
  await subscribed(cr);
  await subscribed(cw);
  assert.equal(await cr.send({ type: 'broadcast', event: 'hi', payload: { from: 'reader' } }), 'error');
  assert.equal(await cw.send({ type: 'broadcast', event: 'hi', payload: { from: 'writer' } }), 'ok');
  await got.until((i) => i.length === 1, 'the writer broadcast');
  assert.deepEqual(got.items, [{ type: 'broadcast', event: 'hi', payload: { from: 'writer' } }]);
  const res = await fetch(`${relay.url}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      apikey: await token({ channels: ['lobby'], publish_channels: ['other'] }),
    },
    body: JSON.stringify({ messages: [{ topic: 'lobby', event: 'hi', payload: {} }] }),
  });
  assert.equal(res.status, 403);
  assert.match(((await res.json()) as { error: string }).error, /supabase_forbidden/);
});

test('private channels: joining needs the topic in channels, tracking presence in publish_channels; refused with CHANNEL_ERROR', async () => {
  const relay = await secured();
  const member = client(relay.url, await token({ sub: 'm', channels: ['team-1'] }));
  const reader = client(relay.url, await token({ sub: 'r', channels: ['team-*'], publish_channels: [] }));
  const outsider = client(relay.url, await token({ sub: 'o', channels: ['lobby'] }));
  const got = new Inbox<unknown>();
  const cm = member.channel('team-1', { config: { private: true, broadcast: { ack: true } } });
  const cr = reader
    .channel('team-1', { config: { private: true } })
    .on('broadcast', { event: 'hi' }, (m) => got.push(m));
  await subscribed(cm);
  await subscribed(cr);
  const refused = outsider.channel('team-1', { config: { private: true } });
  await assert.rejects(
    subscribed(refused),
    /CHANNEL_ERROR: supabase_private_forbidden: the token may not join private channel team-1: add team-1 .* to the token's channels claim/,
  );
  assert.equal(await cm.track({ online: true }), 'ok');
  assert.equal(await cr.track({ online: true }), 'error', 'tracking on a private channel needs publish_channels');
  assert.equal(await cm.send({ type: 'broadcast', event: 'hi', payload: { n: 1 } }), 'ok');
  await got.until((i) => i.length === 1, 'the broadcast on the private channel');
  assert.deepEqual(got.items, [{ type: 'broadcast', event: 'hi', payload: { n: 1 } }]);
  // presence_state is read from the database after the join, so it may reach the reader after the broadcast.
  await waitFor(
    () => Object.keys(cr.presenceState()).length > 0,
    5000,
    "the member's presence on the reader's channel",
  );
  assert.equal(Object.keys(cr.presenceState()).length, 1, "the member's presence, and not the reader's");
  // The same topic without private joins, as upstream's public channels do (its broadcasts and presence stay hidden: topicAllowed).
  await outsider.removeChannel(refused);
  await subscribed(outsider.channel('team-1'));
  // A refreshed token without team-1 closes the private channel, saying why.
  const system = new Inbox<{ status: string; message: string }>();
  cm.on('system', {}, (m) => system.push(m as { status: string; message: string }));
  await member.realtime.setAuth(await token({ sub: 'm', channels: ['lobby'] }));
  await system.until((i) => i.some((m) => m.status === 'error'), 'the private channel closed');
  assert.match(system.items.find((m) => m.status === 'error')!.message, /supabase_private_forbidden/);
  await waitFor(() => cm.state === 'closed', 5000, 'the channel closed');
});

test('a token that expires closes the channels joined with it, with a system error saying so', async () => {
  const relay = await secured();
  const sb = client(relay.url, await token({ sub: 'dee', channels: ['dee-*'] }, { expiresIn: 2 }));
  const { system, states } = watched(sb, 'short', 'dee-1');
  await states.until((i) => i.includes('SUBSCRIBED'), 'SUBSCRIBED');
  await states.until((i) => i.includes('CLOSED'), 'CLOSED once the token expired', 8000);
  assert.match(system.items.find((m) => m.status === 'error')!.message, /token expired/);
});
