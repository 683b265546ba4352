// The JetStream sink's connection options against real nats-servers that
// require them: a token, a user and password, TLS with a private CA, and a
// creds file on an operator-mode server (WALCAST_NATS_TOKEN, _USER/_PASSWORD,
// _CA, _CREDS, docs/configuration.md). Each right setting gets rows into the
// stream; wrong credentials leave the relay serving WebSocket clients, and the
// log says what is wrong and the fix; a creds file that cannot be used at all
// stops start-up with nats_creds_invalid.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { relayConfig, relayFixture, waitFor } from '../helpers/relay.ts';
import { startEdge } from '../../relay/edge/edge.ts';
import { silentLogger } from '../../relay/log.ts';
import { createLogger, type Logger } from '../../relay/log.ts';
import { readStream, startNatsServer, type NatsServer } from '../helpers/nats.ts';
import { startOperatorNats, strangerAccount, writeCreds, type OperatorNats } from '../helpers/nats-operator.ts';
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { readFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import type { Relay, RelayConfig } from '../../relay/relay.ts';

const fx = relayFixture();
const servers: NatsServer[] = [];
let certs: string;
let operator: OperatorNats | undefined;
before(async () => {
  certs = await mkdtemp(join(tmpdir(), 'walcast-test-nats-tls-'));
  makeCertificates(certs);
});
after(async () => {
  for (const s of servers) await s.stop();
  await operator?.stop();
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

/** A relay whose credentials NATS refuses: a WebSocket client still gets a row, and the log has nats_auth_failed. */
async function refusedButServing(
  overrides: Partial<RelayConfig>,
): Promise<{ relay: Relay; log: ReturnType<typeof capturedLog> }> {
  const log = capturedLog();
  const relay = await fx.relay(overrides, undefined, log.logger);
  const client = await fx.client(relay);
  await client.subscribe('auth-room');
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('auth-room', 'bob', 'still here')`);
  const [event] = await client.waitForEvents(1);
  assert.equal(event?.row.body, 'still here');
  await waitFor(() => log.text().includes('"code":"nats_auth_failed"'), 15_000, 'nats_auth_failed in the log');
  return { relay, log };
}

test('a token: the right one publishes, a wrong one is logged as nats_auth_failed with the fix while WebSocket clients keep receiving', async () => {
  const nats = await server(['--auth', 'walcast-token-1']);
  const good = await fx.relay({ natsUrl: nats.url, natsStream: 'auth_token', natsToken: 'walcast-token-1' });
  await rowReachesStream(good, 'auth_token', nats.url, { token: 'walcast-token-1' });
  await good.stop();

  const { relay: bad, log } = await refusedButServing({
    natsUrl: nats.url,
    natsStream: 'auth_token_bad',
    natsToken: 'wrong',
  });
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

test('a creds file on an operator-mode server: every row of several transactions lands in the stream, in order', async () => {
  operator = await startOperatorNats();
  const creds = await operator.userCreds('walcast');
  const url = operator.server.url;
  const relay = await fx.relay({ natsUrl: url, natsStream: 'auth_creds', natsCreds: creds });
  const bodies = Array.from({ length: 60 }, (_, i) => `creds-${i}`);
  for (let i = 0; i < bodies.length; i += 20) {
    await fx.db.query(
      `insert into chat_messages (channel_id, sender, body) select 'creds-room', 'ada', b from unnest($1::text[]) b`,
      [bodies.slice(i, i + 20)],
    );
  }
  await waitFor(() => relay.internals.sinks.jetstream!.counters.published >= bodies.length, 15_000, 'every row');
  const reader = { authenticator: credsAuthenticator(readFileSync(await operator.userCreds('reader'))) };
  const stored = await readStream(url, 'auth_creds', undefined, reader);
  assert.deepEqual(
    stored.map((m) => m.event.row.body),
    bodies,
  );
  await relay.stop();
  // The account's next stream takes walcast.> too.
  const nc = await connect({ servers: url, ...reader });
  await (await jetstreamManager(nc)).streams.delete('auth_creds');
  await nc.close();
});

test("a creds file that is missing, not a creds file, or whose seed is not the JWT user's stops start-up of the relay and of an edge with nats_creds_invalid and the fix", async () => {
  operator ??= await startOperatorNats();
  const notCreds = join(operator.dir, 'token.creds');
  await writeFile(notCreds, 'walcast-token-1\n');
  // A JWT with another user's seed: swap the seed blocks of two creds files.
  const [a, b] = [await operator.userCreds('a'), await operator.userCreds('b')];
  const seedOf = (path: string) => readFileSync(path, 'utf8').split('-----BEGIN USER NKEY SEED-----')[1]!;
  const mixed = join(operator.dir, 'mixed.creds');
  await writeFile(
    mixed,
    `${readFileSync(a, 'utf8').split('-----BEGIN USER NKEY SEED-----')[0]}-----BEGIN USER NKEY SEED-----${seedOf(b)}`,
  );
  const cases = [
    [join(operator.dir, 'absent.creds'), /ENOENT/],
    [notCreds, /no NATS USER JWT block and USER NKEY SEED block/],
    [mixed, /its seed is not that of the JWT's user/],
  ] as const;
  const url = operator.server.url;
  // The slot relay, and `walcast edge` (which reads the same stream).
  const starts = [
    (path: string) => fx.relay({ natsUrl: url, natsStream: 'auth_creds_bad', natsCreds: path }),
    (path: string) => startEdge(relayConfig(fx.db.url, { natsUrl: url, natsCreds: path }), silentLogger),
  ];
  for (const [[path, detail], start] of cases.flatMap((c) => starts.map((s) => [c, s] as const))) {
    await assert.rejects(start(path), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'nats_creds_invalid');
      assert.match(err.message, detail);
      assert.match(err.message, /Set it to a readable \.creds file holding a user JWT and its NKey seed/);
      assert.ok(err.message.includes(path), 'the message names the file');
      return true;
    });
  }
});

test('a creds file of an account the server does not trust: nats_auth_failed with the fix, WebSocket clients keep receiving; the file replaced, the sink publishes without a restart', async () => {
  operator ??= await startOperatorNats();
  const creds = await writeCreds(operator.dir, 'stranger', strangerAccount());
  const { relay, log } = await refusedButServing({
    natsUrl: operator.server.url,
    natsStream: 'auth_creds_stranger',
    natsCreds: creds,
  });
  assert.match(log.text(), /refused the credentials walcast sent: .*WALCAST_NATS_CREDS to what the server expects/);
  assert.equal(relay.internals.sinks.jetstream!.counters.published, 0);

  await copyFile(await operator.userCreds('walcast-new'), creds);
  await waitFor(
    () => relay.internals.sinks.jetstream!.counters.published >= 1,
    20_000,
    'the sink to publish with the new file',
  );
  const reader = { authenticator: credsAuthenticator(readFileSync(creds)) };
  const stored = await readStream(operator.server.url, 'auth_creds_stranger', undefined, reader);
  assert.deepEqual(
    stored.map((m) => m.event.row.body),
    ['still here'],
  );
});
