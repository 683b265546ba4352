// The SDK's reconnects: a server that closes every connection right after it
// opened is retried at growing intervals (the attempt count is not reset by
// an open); a rejected token (4003) and a refused upgrade (HTTP 403) end the
// client with a non-retryable error instead of a loop.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket, WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { TEST_SECRET } from '../helpers/tokens.ts';
import {
  createClient,
  type ConnectionError,
  type StatusEvent,
  type WalcastClient,
  type WebSocketConstructor,
} from '../../client/node.ts';

const fx = relayFixture();
const clients: WalcastClient[] = [];
after(() => {
  for (const c of clients) c.close();
});

function watch(c: WalcastClient): { statuses: StatusEvent[]; errors: ConnectionError[] } {
  clients.push(c);
  const statuses: StatusEvent[] = [];
  const errors: ConnectionError[] = [];
  c.on('status', (s) => statuses.push(s));
  c.on('error', (e) => errors.push(e as ConnectionError));
  return { statuses, errors };
}

test('a server that closes each connection right after it opened: the attempt count keeps growing', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', (ws) => ws.close(4008, 'slow consumer'));
  try {
    const { port } = wss.address() as AddressInfo;
    const c = createClient(`ws://127.0.0.1:${port}/ws`, { backoff: { initialMs: 10, maxMs: 1000 }, random: () => 1 });
    const { statuses } = watch(c);
    const attempts = () => statuses.flatMap((s) => (s.status === 'reconnecting' ? [s.attempt] : []));
    await waitFor(() => attempts().length >= 5, 10_000, 'five reconnects');
    c.close();
    assert.deepEqual(attempts().slice(0, 5), [1, 2, 3, 4, 5], 'an open that does not last does not reset the backoff');
    assert.deepEqual(
      statuses.flatMap((s) => (s.status === 'reconnecting' ? [s.delayMs] : [])).slice(0, 5),
      [10, 20, 40, 80, 160],
    );
  } finally {
    await new Promise((r) => wss.close(r));
  }
});

test('a rejected token (4003) ends the client with a non-retryable auth_failed error', async () => {
  const relay = await fx.relay({ jwtSecret: TEST_SECRET });
  const c = createClient(relay.url, { token: 'not-a-valid-token', backoff: { initialMs: 10, maxMs: 50 } });
  const { statuses, errors } = watch(c);
  await waitFor(() => c.status === 'closed', 10_000, 'the client to close');
  assert.deepEqual(
    errors.map((e) => [e.code, e.closeCode, e.retryable]),
    [['auth_failed', 4003, false]],
  );
  assert.deepEqual(
    statuses.map((s) => s.status),
    ['open', 'closed'],
    'no reconnect',
  );
});

test('an upgrade refused with HTTP 403 ends the client with a non-retryable forbidden error', async () => {
  const relay = await fx.relay();
  // A browser page from an origin the relay does not allow.
  const FromElsewhere = class extends WebSocket {
    constructor(url: string, protocols?: string[]) {
      super(url, protocols, { origin: 'http://elsewhere.example' });
    }
  } as unknown as WebSocketConstructor;
  const c = createClient(relay.url, { WebSocket: FromElsewhere, backoff: { initialMs: 10, maxMs: 50 } });
  const { statuses, errors } = watch(c);
  await waitFor(() => c.status === 'closed', 10_000, 'the client to close');
  assert.deepEqual(
    errors.map((e) => [e.code, e.retryable]),
    [['forbidden', false]],
  );
  assert.deepEqual(
    statuses.map((s) => s.status),
    ['closed'],
    'no reconnect',
  );
});
