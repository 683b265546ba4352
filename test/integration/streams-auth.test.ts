// The JetStream sink's connection options against real nats-servers that
// require them: a token, a user and password, and TLS with a private CA
// (WALCAST_NATS_TOKEN, _USER/_PASSWORD, _CA, docs/configuration.md). Each
// right setting gets rows into the stream; a wrong one leaves the relay
// serving WebSocket clients, and the log says what is wrong and the fix.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { createLogger, type Logger } from '../../relay/log.ts';
import { readStream, startNatsServer, type NatsServer } from '../helpers/nats.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
const servers: NatsServer[] = [];
let certs: string;
before(async () => {
  certs = await mkdtemp(join(tmpdir(), 'walcast-test-nats-tls-'));
  makeCertificates(certs);
});
after(async () => {
  for (const s of servers) await s.stop();
  await rm(certs, { recursive: true, force: true });
});

/** A private CA and a server certificate for 127.0.0.1, with Debian's openssl. */
function makeCertificates(dir: string): void {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=walcast test CA',
  );
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  run(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '1',
    '-extfile',
    'san.ext',
  );
}

async function server(args: string[]): Promise<NatsServer> {
  const s = await startNatsServer({ args });
  servers.push(s);
  return s;
}

/** A row inserted now reaches the stream (read with the same credentials). */
async function rowReachesStream(relay: Relay, stream: string, url: string, options: object): Promise<void> {
  const body = `auth-${Math.random().toString(36).slice(2)}`;
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('auth-room', 'ada', $1)`, [body]);
  await waitFor(() => relay.internals.sinks.jetstream!.counters.published >= 1, 15_000, 'the sink to publish the row');
  const stored = await readStream(url, stream, undefined, options);
  assert.ok(
    stored.some((m) => m.event.row.body === body),
    `the row is in the stream: ${JSON.stringify(stored.map((m) => m.event.row.body))}`,
  );
}

/** A logger whose JSON lines are kept, to read what the relay reported. */
function capturedLog(): { logger: Logger; text: () => string } {
  let text = '';
  const out = new Writable({
    write(chunk, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { logger: createLogger('info', out), text: () => text };
}

test('a token: the right one publishes, a wrong one is logged as nats_auth_failed with the fix while WebSocket clients keep receiving', async () => {
  const nats = await server(['--auth', 'walcast-token-1']);
  const good = await fx.relay({ natsUrl: nats.url, natsStream: 'auth_token', natsToken: 'walcast-token-1' });
  await rowReachesStream(good, 'auth_token', nats.url, { token: 'walcast-token-1' });
  await good.stop();

  const log = capturedLog();
  const bad = await fx.relay(
    { natsUrl: nats.url, natsStream: 'auth_token_bad', natsToken: 'wrong' },
    undefined,
    log.logger,
  );
  const client = await fx.client(bad);
  await client.subscribe('auth-room');
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('auth-room', 'bob', 'still here')`);
  const [event] = await client.waitForEvents(1);
  assert.equal(event?.row.body, 'still here');
  await waitFor(() => log.text().includes('"code":"nats_auth_failed"'), 15_000, 'nats_auth_failed in the log');
  assert.match(log.text(), /refused the credentials walcast sent: Authorization Violation\. Set WALCAST_NATS_TOKEN/);
  assert.doesNotMatch(log.text(), /wrong/, 'the token is not logged');
  assert.equal(bad.internals.sinks.jetstream!.counters.published, 0);
});

test('a user and password publish', async () => {
  const nats = await server(['--user', 'walcast', '--pass', 'pw-2']);
  const relay = await fx.relay({
    natsUrl: nats.url,
    natsStream: 'auth_user',
    natsUser: 'walcast',
    natsPassword: 'pw-2',
  });
  await rowReachesStream(relay, 'auth_user', nats.url, { user: 'walcast', pass: 'pw-2' });
  await relay.stop();
});

test('TLS with a private CA: WALCAST_NATS_CA verifies the server; without it the certificate is refused', async () => {
  const conf = join(certs, 'tls.conf');
  await writeFile(
    conf,
    `tls { cert_file: "${join(certs, 'server.pem')}"\n key_file: "${join(certs, 'server.key')}" }\n`,
  );
  const nats = await server(['-c', conf]);
  const url = `tls://127.0.0.1:${nats.port}`;
  const caFile = join(certs, 'ca.pem');
  const relay = await fx.relay({ natsUrl: url, natsStream: 'auth_tls', natsCa: caFile });
  // The reader checks the certificate against the server's address itself (see connectionOptions).
  await rowReachesStream(relay, 'auth_tls', url, {
    tls: {
      caFile,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity('127.0.0.1', cert),
    },
  });
  await relay.stop();

  const log = capturedLog();
  await fx.relay({ natsUrl: url, natsStream: 'auth_tls_bad' }, undefined, log.logger);
  await waitFor(() => log.text().includes('"code":"nats_tls_failed"'), 15_000, 'nats_tls_failed in the log');
  assert.match(log.text(), /Set WALCAST_NATS_CA to the PEM file of the CA/);
});
