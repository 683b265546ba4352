// Smaller attacks of issue 18, each against a real relay: bad frames that
// dodged the rate limit, health endpoints that told anyone the database's
// address, DNS rebinding in open mode, an `exp` of 1e300, an overlong token
// in the subprotocol, and a secret made of spaces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import pg from 'pg';
import { TestClient, relayFixture, startTestRelay, waitFor } from '../helpers/relay.ts';
import { serverUrl } from '../helpers/postgres.ts';
import { TEST_SECRET, token } from '../helpers/tokens.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();

/** A raw HTTP request with the Host header of our choosing (fetch does not allow setting it). */
function rawRequest(
  relay: Relay,
  opts: { method?: string; path: string; host: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: relay.port,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers: { ...opts.headers, host: opts.host },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: '' });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

test('frames that fail to parse take a rate-limit token, before authentication too', async () => {
  const relay = await fx.relay({ jwtSecret: TEST_SECRET, rateLimit: 5 });
  const c = await fx.client(relay); // no token yet: unauthenticated
  for (let i = 0; i < 40; i++) c.send(i % 2 ? '{not json' : '{"type":"nope"}');
  const replies = await c.waitFor((m) => (m.length >= 40 ? m : undefined), 10_000, '40 replies');
  const codes = replies.map((r) => (r.type === 'error' ? r.code : r.type));
  const limited = codes.filter((x) => x === 'rate_limited').length;
  // A burst of 2 × 5 (plus what refilled meanwhile) is parsed; the rest is refused unread.
  assert.ok(limited >= 20, codes.join(','));
  assert.ok(
    codes.every((x) => ['rate_limited', 'invalid_json', 'unknown_type'].includes(x)),
    codes.join(','),
  );
});

test('/healthz and /readyz give a generic reason, not the database error', async () => {
  const { db } = fx;
  const relay = await fx.relay();
  const name = db.name;
  // The replication connection is cut and cannot come back: the stream has an error to tell.
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  await admin.query(`alter database ${name} allow_connections false`);
  try {
    await admin.query(`select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1`, [
      relay.slot,
    ]);
    await waitFor(
      () => relay.internals.stream.lastError !== undefined && relay.internals.stream.state !== 'streaming',
      15_000,
      'the stream to fail',
    );
    const detail = relay.internals.stream.lastError!.message;
    for (const path of ['/healthz', '/readyz']) {
      const res = await fetch(`${relay.url}${path}`);
      const text = await res.text();
      assert.equal(res.status, 503, text);
      assert.ok(!text.includes(detail) && !text.includes(name) && !/ECONN|127\.0\.0\.1|SQLSTATE/.test(text), text);
      assert.match(
        text,
        /replication stream is (reconnecting|starting|stopped|failed)[^"]*the relay's log has the cause/,
      );
    }
  } finally {
    await admin.query(`alter database ${name} allow_connections true`);
    await admin.end();
  }
  await waitFor(() => relay.internals.stream.state === 'streaming', 20_000, 'the stream to come back');
});

test('open mode refuses a Host that is a DNS name (DNS rebinding), over HTTP and on upgrade', async () => {
  const relay = await fx.relay();
  const evil = `rebind.example:${relay.port}`;
  for (const [method, path, body] of [
    ['GET', '/v1/channels/room-1/events?since=0'],
    ['GET', '/healthz'],
    ['POST', '/demo/messages', '{"room":"r","name":"n","body":"b"}'],
  ] as const) {
    const res = await rawRequest(relay, {
      method,
      path,
      host: evil,
      headers: { 'content-type': 'application/json' },
      ...(body ? { body } : {}),
    });
    assert.equal(res.status, 403, `${method} ${path}: ${res.body}`);
    assert.equal(JSON.parse(res.body).code, 'host_not_allowed');
  }
  const upgrade = await rawRequest(relay, {
    path: '/ws',
    host: evil,
    headers: {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    },
  });
  assert.equal(upgrade.status, 403);
  assert.deepEqual(await fx.db.query(`select count(*)::int as n from chat_messages where channel_id = 'r'`), [
    { n: 0 },
  ]);
  // The relay's own names still work.
  for (const host of [`127.0.0.1:${relay.port}`, `localhost:${relay.port}`, `[::1]:${relay.port}`]) {
    assert.equal((await rawRequest(relay, { path: '/healthz', host })).status, 200, host);
  }
  const up = await rawRequest(relay, {
    path: '/ws',
    host: `localhost:${relay.port}`,
    headers: {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    },
  });
  assert.equal(up.status, 101);
  // With a key, tokens protect the relay and any Host is served.
  const keyed = await fx.relay({ jwtSecret: TEST_SECRET });
  assert.equal((await rawRequest(keyed, { path: '/healthz', host: `relay.example:${keyed.port}` })).status, 200);
});

test('a token with exp 1e300 is refused, and the connection is not authenticated', async () => {
  const relay = await fx.relay({ jwtSecret: TEST_SECRET });
  const c = await fx.client(relay);
  const reply = await c.request({
    type: 'auth',
    id: 'a1',
    token: await token({ sub: 'x', channels: ['*'], exp: 1e300 }, { expiresIn: null }),
  });
  assert.equal(reply.type === 'error' && reply.code, 'invalid_token', JSON.stringify(reply));
  assert.equal((await c.waitClosed()).code, 4003);
});

test('a token in the subprotocol is capped at 8192 characters', async () => {
  const relay = await fx.relay({ jwtSecret: TEST_SECRET });
  const long = `${await token({ sub: 'x', channels: ['*'] })}${'A'.repeat(9000)}`;
  const c = await TestClient.connect(relay.wsUrl, ['walcast.v1', `bearer.${long}`]);
  const closed = await c.waitClosed();
  assert.equal(closed.code, 4003);
  assert.match(closed.reason, /longer than 8192/);
});

test('a secret of 40 spaces is refused at start', async () => {
  await assert.rejects(
    startTestRelay(fx.db.url, { jwtSecret: ' '.repeat(40) }),
    (err: Error & { code?: string }) => err.code === 'config_invalid',
  );
});
