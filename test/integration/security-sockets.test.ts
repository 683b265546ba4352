// Slow HTTP requests against the relay's descriptors (issue 18, item 5), at
// a small scale: trickling chunked POSTs are cut by the request timeout,
// every socket (not only upgrades) counts against the address's limit, and
// the total connection cap holds. WebSockets outlive the HTTP timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();

/** A socket that sends a chunked POST one byte at a time and never finishes it. */
function trickle(relay: Relay): Promise<{ socket: Socket; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(relay.port, '127.0.0.1');
    let received = '';
    socket.on('data', (d) => (received += d.toString()));
    const closed = new Promise<string>((r) => socket.on('close', () => r(received)));
    socket.on('error', () => {});
    socket.once('connect', () => {
      socket.write(
        `POST /demo/messages HTTP/1.1\r\nHost: 127.0.0.1:${relay.port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      const timer = setInterval(() => socket.writable && socket.write('1\r\n \r\n'), 100);
      socket.on('close', () => clearInterval(timer));
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

async function connections(relay: Relay): Promise<number> {
  return new Promise((resolve, reject) =>
    relay.internals.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}

test('trickling requests count against the address limit and are cut by the request timeout; WebSockets stay', async () => {
  const relay = await fx.relay({ maxConnectionsPerIp: 4, httpTimeoutMs: 500 });
  const ws = await fx.client(relay);
  const slow = await Promise.all([trickle(relay), trickle(relay), trickle(relay)]);
  await waitFor(async () => (await connections(relay)) >= 4, 5000, 'the relay to accept the sockets');
  // The address holds 4 sockets (one WebSocket, three slow POSTs): a fifth, a plain GET, is refused.
  const refused = await fetch(`${relay.url}/healthz`);
  assert.equal(refused.status, 429);
  assert.equal(((await refused.json()) as { code: string }).code, 'too_many_connections');
  // The slow POSTs keep sending, yet the relay ends them (408) once the request takes longer than the timeout.
  for (const s of slow) assert.match(await s.closed, /^HTTP\/1\.1 408/);
  assert.equal((await fetch(`${relay.url}/healthz`)).status, 200);
  // The WebSocket opened before them is still served.
  assert.equal((await ws.request({ type: 'ping', id: 'still-here' })).type, 'pong');
  assert.equal(ws.closed, undefined);
});

test('the total connection cap holds: a socket over it is closed at once, without an answer', async () => {
  const relay = await fx.relay({ maxConnections: 3 });
  const held = await Promise.all([trickle(relay), trickle(relay), trickle(relay)]);
  await waitFor(async () => (await connections(relay)) >= 3, 5000, 'the relay to accept the sockets');
  const extra = await trickle(relay);
  assert.equal(await extra.closed, '');
  for (const h of held) h.socket.destroy();
  await waitFor(async () => (await connections(relay)) === 0, 5000, 'the held sockets to close');
  assert.equal((await fetch(`${relay.url}/healthz`)).status, 200);
});
