// The other key sources against live relays: a PEM public key (RS256 and
// ES256) and a JWKS served by a local HTTP server. A token signed for one
// source, or with another algorithm, is refused.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { CLOSE } from '../../client/protocol.ts';
import { type TestClient, relayFixture } from '../helpers/relay.ts';
import { token } from '../helpers/tokens.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
let jwks: Server | undefined;
let slowJwks: Server | undefined;

after(async () => {
  for (const server of [jwks, slowJwks]) await new Promise((r) => (server ? server.close(r) : r(undefined)));
});

async function connect(relay: Relay, t: string): Promise<TestClient> {
  return fx.client({ wsUrl: `${relay.wsUrl}?token=${t}` });
}

async function expectAccepted(relay: Relay, t: string): Promise<void> {
  const c = await connect(relay, t);
  assert.equal((await c.request({ type: 'subscribe', id: 's', channel: 'room-1' })).type, 'subscribed');
}

async function expectRefused(relay: Relay, t: string): Promise<void> {
  const c = await connect(relay, t);
  assert.equal((await c.waitClosed()).code, CLOSE.authFailed);
}

const claims = { sub: 'ada', channels: ['room-*'] };

for (const alg of ['RS256', 'ES256'] as const) {
  test(`${alg} with WALCAST_JWT_PUBLIC_KEY: its tokens pass, others do not`, async () => {
    const { publicKey, privateKey } = await generateKeyPair(alg);
    const other = await generateKeyPair(alg);
    const pem = await exportSPKI(publicKey);
    const relay = await fx.relay({ jwtPublicKey: pem.trim() });
    await expectAccepted(relay, await token(claims, { alg, key: privateKey }));
    await expectRefused(relay, await token(claims, { alg, key: other.privateKey }));
    // An HS256 token "signed" with the public key's text must not pass (algorithm confusion).
    await expectRefused(relay, await token(claims, { alg: 'HS256', key: new TextEncoder().encode(pem) }));
  });
}

test('WALCAST_JWKS_URL: tokens are checked with the keys the URL serves, chosen by kid', async () => {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const keys = [
    { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
    { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
  ];
  let fetches = 0;
  jwks = createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((r) => jwks!.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
  const relay = await fx.relay({ jwksUrl: url });
  await expectAccepted(relay, await token(claims, { alg: 'RS256', key: rsa.privateKey, kid: 'rsa-1' }));
  await expectAccepted(relay, await token(claims, { alg: 'ES256', key: ec.privateKey, kid: 'ec-1' }));
  assert.ok(fetches >= 1);
  const stranger = await generateKeyPair('RS256');
  await expectRefused(relay, await token(claims, { alg: 'RS256', key: stranger.privateKey, kid: 'rsa-1' }));
  await expectRefused(relay, await token(claims, { alg: 'RS256', key: stranger.privateKey, kid: 'unknown' }));
});

test('clients that reset their connection while the relay fetches the JWKS do not hurt it', async () => {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const keys = [{ ...(await exportJWK(publicKey)), kid: 'slow', alg: 'ES256' }];
  // Slow keys keep each upgrade waiting while the clients reset.
  slowJwks = createServer((_req, res) => setTimeout(() => res.end(JSON.stringify({ keys })), 500));
  await new Promise<void>((r) => slowJwks!.listen(0, '127.0.0.1', r));
  const relay = await fx.relay({ jwksUrl: `http://127.0.0.1:${(slowJwks.address() as AddressInfo).port}/jwks` });
  const t = await token(claims, { alg: 'ES256', key: privateKey, kid: 'slow' });
  const port = Number(new URL(relay.wsUrl).port);
  await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) =>
        new Promise<void>((resolve) => {
          const socket = tcpConnect(port, '127.0.0.1', () => {
            socket.write(
              `GET /ws?token=${t} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                `Sec-WebSocket-Key: ${Buffer.alloc(16, i).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
            );
            setTimeout(() => socket.resetAndDestroy(), 100);
          });
          socket.on('error', () => {});
          socket.on('close', () => resolve());
        }),
    ),
  );
  await expectAccepted(relay, t);
});
