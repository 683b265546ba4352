import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../relay/config.ts';
import { WalcastError } from '../../relay/errors.ts';

test('defaults apply when nothing is set', () => {
  const c = loadConfig([], {});
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 8080);
  assert.equal(c.slot, 'walcast');
  assert.equal(c.publication, 'realtime_events');
  assert.equal(c.logLevel, 'info');
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.maxSubscriptions, 100);
  assert.equal(c.maxFrameBytes, 65536);
});

test('flags win over environment variables', () => {
  const c = loadConfig(['--port', '9000', '--slot=other'], {
    PORT: '7000',
    WALCAST_SLOT: 'envslot',
    DATABASE_URL: 'postgres://u@h/db',
  });
  assert.equal(c.port, 9000);
  assert.equal(c.slot, 'other');
  assert.equal(c.databaseUrl, 'postgres://u@h/db');
});

test('an invalid value stops start-up with one line naming the variable and what is allowed', () => {
  const bad: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [[], { PORT: 'eighty' }, /^PORT \(--port\) must be an integer from 0 to 65535; got "eighty"$/],
    [[], { WALCAST_SLOT: 'My-Slot' }, /^WALCAST_SLOT \(--slot\) must be a lower-case identifier/],
    [[], { WALCAST_LOG_LEVEL: 'loud' }, /^WALCAST_LOG_LEVEL \(--log-level\) must be fatal, error, warn/],
    [[], { DATABASE_URL: 'mysql://x' }, /^DATABASE_URL \(--database-url\) must be a postgres:\/\//],
    [['--port', '70000'], {}, /^PORT/],
    [['--nope', '1'], {}, /Unknown option '--nope'.*--help/],
  ];
  for (const [argv, env, re] of bad) {
    assert.throws(
      () => loadConfig(argv, env),
      (err: unknown) => {
        assert.ok(err instanceof WalcastError);
        assert.equal(err.code, 'config_invalid');
        assert.match(err.message, re);
        assert.equal(err.message.includes('\n'), false);
        return true;
      },
    );
  }
});
