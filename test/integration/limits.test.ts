// The limits on what clients send, each with its documented outcome: rate
// limits per connection and per token subject (rate_limited), connections
// per address (HTTP 429), publishing turned off (publishing_disabled).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { type TestClient, relayFixture } from '../helpers/relay.ts';
import { TEST_SECRET, token } from '../helpers/tokens.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
let relay: Relay;
/** This file's connections, oldest first (the fixture closes them). */
const clients: TestClient[] = [];

before(async () => {
  relay = await fx.relay({
    jwtSecret: TEST_SECRET,
    rateLimit: 5,
    subjectRateLimit: 2,
    maxConnectionsPerIp: 4,
    publish: 'off',
  });
});

/** A connection with a token for `sub` (none: a token without sub, so no subject bucket). */
async function client(sub?: string): Promise<TestClient> {
  const claims = { channels: ['*'], publish: ['*'], ...(sub ? { sub } : {}) };
  const c = await fx.client({ wsUrl: `${relay.wsUrl}?token=${await token(claims)}` });
  clients.push(c);
  return c;
}

/** Send n pings at once; count the pongs and rate_limited errors that come back. */
async function burst(c: TestClient, n: number, tag: string): Promise<{ pong: number; limited: number }> {
  // rate_limited carries no id: the frame is refused before it is parsed. So: the next n messages.
  const start = c.messages.length;
  for (let i = 0; i < n; i++) c.send({ type: 'ping', id: `${tag}-${i}` });
  const replies = await c.waitFor((m) => (m.length >= start + n ? m.slice(start, start + n) : undefined));
  return {
    pong: replies.filter((r) => r.type === 'pong').length,
    limited: replies.filter((r) => r.type === 'error' && r.code === 'rate_limited').length,
  };
}

test('a connection over its rate gets rate_limited for the extra messages, and stays usable', async () => {
  const c = await client();
  const { pong, limited } = await burst(c, 40, 'a');
  assert.ok(pong >= 10 && pong < 40, `pongs: ${pong}`); // a burst of 2 × 5, plus what refilled meanwhile
  assert.equal(pong + limited, 40);
  assert.equal(c.closed, undefined);
});

test('connections of one subject share its bucket', async () => {
  const [a, b] = [await client('rate-s'), await client('rate-s')];
  const first = await burst(a, 10, 's1');
  const second = await burst(b, 10, 's2');
  // Each connection alone may send 10 at once; together they are held to the subject's burst of 4.
  assert.ok(first.pong + second.pong < 20, `${first.pong} + ${second.pong}`);
  assert.ok(second.limited > 0);
  for (const c of [a, b]) c.close();
});

test('connections per address: the one over the limit is refused with 429 until another closes', async () => {
  for (const c of clients) c.close();
  await Promise.all(clients.map((c) => c.waitClosed()));
  const held = [await client('ip-1'), await client('ip-2'), await client('ip-3'), await client('ip-4')];
  const status = await new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(relay.wsUrl);
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => reject(new Error('a fifth connection was accepted')));
    ws.on('error', () => {});
  });
  assert.equal(status, 429);
  held[0]!.close();
  await held[0]!.waitClosed();
  // The server side of the socket closes a moment after the client sees the close frame.
  let again: TestClient | undefined;
  for (let i = 0; i < 100 && !again; i++) {
    again = await client('ip-5').catch(() => undefined);
    if (!again) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(again, 'a connection is accepted once one closed');
});

test('WALCAST_PUBLISH=off: publish messages get publishing_disabled', async () => {
  const c = clients.at(-1)!;
  const reply = await c.request({
    type: 'publish',
    id: 'off',
    table: 'chat_messages',
    row: { channel_id: 'x', sender: 'a', body: 'b' },
  });
  assert.equal(reply.type === 'error' && reply.code, 'publishing_disabled');
});
