// The start-up rule, on the real command: with no JWT key the relay serves
// only on loopback (and says it is open); on any other address it refuses
// to start with auth_required, unless told --insecure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relayFixture } from '../helpers/relay.ts';
import { uniqueName } from '../helpers/postgres.ts';
import { spawnRelay, type RelayProcess } from '../helpers/process.ts';
import { TEST_SECRET } from '../helpers/tokens.ts';

const fx = relayFixture();
const { db } = fx;
const running: RelayProcess[] = [];

fx.cleanup(async () => {
  for (const r of running) {
    r.child.kill('SIGTERM');
    await r.exited;
  }
});

const env = (extra: Record<string, string>) => ({
  DATABASE_URL: db.url,
  WALCAST_SLOT: uniqueName('slot'),
  WALCAST_LOG_LEVEL: 'info',
  ...extra,
});

async function stop(r: RelayProcess): Promise<void> {
  r.child.kill('SIGTERM');
  await r.exited;
}

test('no key on a non-loopback address: start-up fails and says the fix', async () => {
  await assert.rejects(spawnRelay([], env({ HOST: '0.0.0.0' })), (err: Error) => {
    assert.match(err.message, /exit 1/);
    assert.match(err.message, /0\.0\.0\.0, which is not a loopback address/);
    assert.match(err.message, /WALCAST_JWT_SECRET/);
    assert.match(err.message, /--insecure/);
    return true;
  });
});

test('the rule holds for a relay that would start as a standby: it fails at once too', async () => {
  const slot = uniqueName('slot');
  const active = await spawnRelay([], { ...env({}), WALCAST_SLOT: slot });
  running.push(active);
  await assert.rejects(spawnRelay([], { ...env({ HOST: '0.0.0.0' }), WALCAST_SLOT: slot }, 20_000), (err: Error) => {
    assert.match(err.message, /exit 1/);
    assert.match(err.message, /not a loopback address/);
    return true;
  });
});

test('--insecure serves openly anyway, and the log says so', async () => {
  const r = await spawnRelay(['--insecure'], env({ HOST: '0.0.0.0' }));
  running.push(r);
  assert.match(r.output(), /"mode":"open".*with --insecure/);
  await stop(r);
});

test('loopback with no key: open mode, logged at start; with a key: jwt mode on any address', async () => {
  const open = await spawnRelay([], env({ HOST: '127.0.0.1' }));
  running.push(open);
  assert.match(open.output(), /"mode":"open".*bound to loopback/);
  await stop(open);
  const keyed = await spawnRelay([], env({ HOST: '0.0.0.0', WALCAST_JWT_SECRET: TEST_SECRET }));
  running.push(keyed);
  assert.match(keyed.output(), /"mode":"jwt-secret"/);
  await stop(keyed);
});
