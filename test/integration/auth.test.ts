// Authentication and channel authorisation against a live relay with an
// HS256 key: the three ways to give a token, bad tokens, expiry while
// connected and refresh, forbidden channels (live, snapshot, resume, HTTP
// replay) and the Origin allow-list.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { CLOSE, type ServerMessage } from '../../client/protocol.ts';
import { type TestClient, waitFor, relayFixture } from '../helpers/relay.ts';
import { TEST_SECRET, token, unsignedToken } from '../helpers/tokens.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
const { db } = fx;
let relay: Relay;

async function client(query = '', protocols?: string[], headers?: Record<string, string>): Promise<TestClient> {
  return fx.client({ wsUrl: relay.wsUrl + query }, protocols, headers ? { headers } : undefined);
}

const ada = () => token({ sub: 'ada', channels: ['room-*', 'user-{sub}'] });

before(async () => {
  relay = await fx.relay({
    jwtSecret: TEST_SECRET,
    authTimeoutMs: 500,
    allowedOrigins: ['https://app.example.com'],
  });
});

const insert = (channel: string, body: string) =>
  db.query("insert into chat_messages (channel_id, sender, body) values ($1, 'x', $2)", [channel, body]);

test('a token on the URL authenticates: allowed channels subscribe, others are forbidden', async () => {
  const c = await client(`?token=${await ada()}`);
  await c.subscribe('room-1');
  await c.subscribe('user-ada');
  for (const channel of ['user-bob', 'lobby', 'room']) {
    const reply = await c.request({ type: 'subscribe', id: channel, channel });
    assert.equal(reply.type === 'error' && reply.code, 'forbidden', channel);
  }
});

test('a token as the bearer.<token> subprotocol: the relay selects walcast.v1 and never echoes the token', async () => {
  const t = await ada();
  let offered: string | undefined;
  const ws = new WebSocket(relay.wsUrl, ['walcast.v1', `bearer.${t}`]);
  ws.on('upgrade', (res) => (offered = String(res.headers['sec-websocket-protocol'])));
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  assert.equal(ws.protocol, 'walcast.v1');
  assert.equal(offered, 'walcast.v1');
  const reply = await new Promise<ServerMessage>((resolve) => {
    ws.once('message', (d) => resolve(JSON.parse(String(d))));
    ws.send(JSON.stringify({ type: 'subscribe', id: 's', channel: 'room-2' }));
  });
  assert.equal(reply.type, 'subscribed');
  ws.close();
});

test('without a token only auth and ping are accepted; an auth message authenticates', async () => {
  const c = await client();
  assert.deepEqual(await c.request({ type: 'ping', id: 'p' }), { type: 'pong', id: 'p' });
  const refused = await c.request({ type: 'subscribe', id: 's1', channel: 'room-1' });
  assert.equal(refused.type === 'error' && refused.code, 'unauthenticated');
  const ok = await c.request({ type: 'auth', id: 'a', token: await ada() });
  assert.equal(ok.type, 'authenticated');
  assert.equal(ok.type === 'authenticated' && ok.sub, 'ada');
  assert.ok(ok.type === 'authenticated' && ok.expires_at && Date.parse(ok.expires_at) > Date.now());
  assert.equal((await c.request({ type: 'subscribe', id: 's2', channel: 'room-1' })).type, 'subscribed');
});

test('no token within the auth timeout closes with 4002', async () => {
  const c = await client();
  const closed = await c.waitClosed();
  assert.equal(closed.code, CLOSE.authTimeout);
});

test('bad tokens close with 4003 and say why: wrong key, alg none, expired, garbage', async () => {
  const { SignJWT } = await import('jose');
  const wrongKey = await new SignJWT({ sub: 'eve', channels: ['*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode('another-secret-that-is-long-enough-000000'));
  const cases: [string, RegExp][] = [
    [wrongKey, /signature/],
    [unsignedToken({ sub: 'eve', channels: ['*'] }), /algorithm|malformed/],
    [await token({ sub: 'eve', channels: ['*'] }, { expiresIn: -60 }), /expired/],
    ['not.a.jwt', /malformed/],
  ];
  for (const [t, why] of cases) {
    const viaUrl = await client(`?token=${encodeURIComponent(t)}`);
    const closed = await viaUrl.waitClosed();
    assert.equal(closed.code, CLOSE.authFailed, t);
    assert.match(closed.reason, why);
    const viaMessage = await client();
    const reply = await viaMessage.request({ type: 'auth', id: 'a', token: t });
    assert.equal(reply.type === 'error' && reply.code, 'invalid_token');
    assert.equal((await viaMessage.waitClosed()).code, CLOSE.authFailed);
  }
});

test('exp is enforced while connected: the connection closes with 4001', async () => {
  // 3 s: long enough for the subscribe to be answered on a loaded machine before the token expires.
  const c = await client(`?token=${await token({ sub: 'ada', channels: ['room-*'] }, { expiresIn: 3 })}`);
  await c.subscribe('room-exp');
  const closed = await c.waitClosed(15_000);
  assert.equal(closed.code, CLOSE.tokenExpired);
});

test('an auth message refreshes the token: the old exp passes, the connection stays; fewer channels end subscriptions', async () => {
  const expiresAt = Date.now() + 3500;
  const c = await client(`?token=${await token({ sub: 'ada', channels: ['room-*', 'user-{sub}'] }, { expiresIn: 3 })}`);
  await c.subscribe('room-keep');
  await c.subscribe('user-ada');
  const narrower = await token({ sub: 'ada', channels: ['room-*'] });
  const ok = await c.request({ type: 'auth', id: 'r', token: narrower });
  assert.equal(ok.type, 'authenticated');
  await c.waitFor((m) => m.find((x) => x.type === 'unsubscribed' && x.channel === 'user-ada'));
  const otherSub = await c.request({ type: 'auth', id: 'o', token: await token({ sub: 'bob', channels: ['*'] }) });
  assert.equal(otherSub.type === 'error' && otherSub.code, 'invalid_token');
  await waitFor(() => Date.now() > expiresAt + 6_000, 15_000, 'the first token to expire');
  assert.deepEqual(await c.request({ type: 'ping', id: 'alive' }), { type: 'pong', id: 'alive' });
  await insert('room-keep', 'after refresh');
  await c.waitForEvents(1);
  assert.equal(c.closed, undefined);
});

test('nothing of a forbidden channel leaks: live, snapshot, resume', async () => {
  const c = await client(`?token=${await ada()}`);
  const allowed = await c.subscribe('room-ok');
  await insert('secret-1', 'before');
  for (const extra of [
    {},
    { snapshot: true },
    { since: allowed.type === 'subscribed' ? allowed.position : '' },
    { since: '0', snapshot: true },
  ]) {
    const reply = await c.request({
      type: 'subscribe',
      id: `x${JSON.stringify(extra)}`,
      channel: 'secret-1',
      ...extra,
    });
    assert.equal(reply.type === 'error' && reply.code, 'forbidden');
  }
  await insert('secret-1', 'during');
  await insert('room-ok', 'marker');
  const events = await c.waitForEvents(1);
  assert.deepEqual(
    events.map((e) => e.channel),
    ['room-ok'],
  );
  assert.ok(!c.messages.some((m) => m.type === 'event' && m.channel === 'secret-1'));
});

test('HTTP replay needs a bearer token that allows the channel', async () => {
  const probe = await client(`?token=${await ada()}`);
  const sub = await probe.subscribe('room-http');
  const since = sub.type === 'subscribed' ? sub.position : '';
  await insert('room-http', 'one');
  await probe.waitForEvents(1);
  const get = (channel: string, auth?: string) =>
    fetch(
      `${relay.url}/v1/channels/${channel}/events?since=${since}`,
      auth ? { headers: { authorization: auth } } : {},
    );
  assert.equal((await get('room-http')).status, 401);
  assert.equal((await get('room-http', 'Bearer nonsense')).status, 401);
  const forbidden = await get('secret-http', `Bearer ${await ada()}`);
  assert.equal(forbidden.status, 403);
  assert.equal(((await forbidden.json()) as { code: string }).code, 'forbidden');
  const ok = await get('room-http', `Bearer ${await ada()}`);
  assert.equal(ok.status, 200);
  const body = (await ok.json()) as { events: { row: { body: string } }[] };
  assert.deepEqual(
    body.events.map((e) => e.row.body),
    ['one'],
  );
});

test('browsers from an origin not allowed are refused with 403; allowed ones and non-browsers connect', async () => {
  const status = await new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(relay.wsUrl, { headers: { origin: 'https://evil.example.com' } });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => reject(new Error('connected from a forbidden origin')));
    ws.on('error', () => {});
  });
  assert.equal(status, 403);
  const ok = await client(`?token=${await ada()}`, undefined, { origin: 'https://app.example.com' });
  assert.equal((await ok.request({ type: 'ping', id: 'p' })).type, 'pong');
});
