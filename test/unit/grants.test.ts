// Channel patterns and claims, the start-up rule and the token bucket: pure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grantsFromClaims, matchChannel } from '../../relay/auth/grants.ts';
import { isLoopback, originAllowed, securitySettings } from '../../relay/auth/settings.ts';
import { TokenBucket, Shared } from '../../relay/auth/limits.ts';
import { loadConfig } from '../../relay/config.ts';
import type { WalcastError } from '../../relay/errors.ts';

test('patterns: * matches any run of characters, {sub} is the subject literally', () => {
  assert.ok(matchChannel('room-*', 'room-1', null));
  assert.ok(matchChannel('room-*', 'room-', null));
  assert.ok(!matchChannel('room-*', 'xroom-1', null));
  assert.ok(!matchChannel('room-*', 'room', null));
  assert.ok(matchChannel('user-{sub}', 'user-ada', 'ada'));
  assert.ok(!matchChannel('user-{sub}', 'user-bob', 'ada'));
  assert.ok(!matchChannel('user-{sub}', 'user-ada', null));
  // A sub with pattern characters matches only itself.
  assert.ok(matchChannel('user-{sub}', 'user-a*', 'a*'));
  assert.ok(!matchChannel('user-{sub}', 'user-abc', 'a*'));
  assert.ok(!matchChannel('a.c', 'abc', null));
  assert.ok(matchChannel('*', 'anything\nat all', null));
  assert.ok(matchChannel('dm-{sub}-*', 'dm-ada-bob', 'ada'));
});

test('claims: absent channels or publish grant nothing; publish_channels defaults to channels', () => {
  const none = grantsFromClaims({ sub: 'ada' }, 'token');
  assert.ok(!none.canSubscribe('room-1'));
  assert.ok(!none.canPublishTo('chat_messages'));
  const g = grantsFromClaims(
    { sub: 'ada', channels: ['room-*'], publish: ['public.chat_messages'], exp: 2_000_000_000 },
    'token',
  );
  assert.ok(g.canSubscribe('room-1'));
  assert.ok(g.canPublishTo('chat_messages'));
  assert.ok(!g.canPublishTo('presence'));
  assert.ok(g.canPublishOn('room-2'));
  assert.ok(!g.canPublishOn('user-bob'));
  assert.equal(g.expiresAtMs, 2_000_000_000_000);
  const dm = grantsFromClaims(
    { sub: 'ada', channels: ['user-{sub}'], publish_channels: ['user-*'], publish: '*' },
    'token',
  );
  assert.ok(dm.canPublishOn('user-bob') && !dm.canSubscribe('user-bob') && dm.canPublishTo('anything'));
  assert.ok(!grantsFromClaims({ sub: 'ada', publish: ['*'] }, 'off').canPublishTo('chat_messages'));
  assert.ok(grantsFromClaims({ sub: 'ada' }, 'open').canPublishTo('chat_messages'));
  // Claims of the wrong shape grant nothing rather than throw.
  const odd = grantsFromClaims({ sub: 'ada', channels: { '*': true } as never, publish: 7 as never }, 'token');
  assert.ok(!odd.canSubscribe('x') && !odd.canPublishTo('x'));
});

test('start-up rule: no key is fine on loopback, refused elsewhere unless insecure', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) assert.ok(isLoopback(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1']) assert.ok(!isLoopback(host), host);
  assert.equal(securitySettings({ host: '127.0.0.1' }).key.kind, 'none');
  assert.equal(securitySettings({ host: '127.0.0.1' }).publish, 'open');
  assert.throws(
    () => securitySettings({ host: '0.0.0.0' }),
    (e: WalcastError) => e.code === 'auth_required' && /--insecure/.test(e.message),
  );
  assert.equal(securitySettings({ host: '0.0.0.0', insecure: true }).key.kind, 'none');
  const keyed = securitySettings({ host: '0.0.0.0', jwtSecret: 'x'.repeat(32) });
  assert.equal(keyed.publish, 'token');
  assert.throws(() => securitySettings({ host: '::1', jwtSecret: 'x'.repeat(32), jwksUrl: 'http://k' }), /only one/);
});

test('origins: a list, * for any, loopback pages only by default without a key', () => {
  const open = securitySettings({ host: '127.0.0.1' });
  assert.ok(originAllowed(open, undefined));
  assert.ok(originAllowed(open, 'http://127.0.0.1:8080'));
  assert.ok(originAllowed(open, 'http://localhost:5173'));
  assert.ok(!originAllowed(open, 'https://evil.example.com'));
  assert.ok(!originAllowed(open, 'http://localhost.evil.com'));
  const keyed = securitySettings({ host: '::1', jwtSecret: 'x'.repeat(32) });
  assert.ok(originAllowed(keyed, 'https://anything.example'));
  const listed = securitySettings({ host: '::1', allowedOrigins: ['https://app.example.com'] });
  assert.ok(originAllowed(listed, 'https://app.example.com') && !originAllowed(listed, 'https://app.example.com.evil'));
  assert.ok(originAllowed(securitySettings({ host: '::1', allowedOrigins: ['*'] }), 'https://x.example'));
});

test('security options parse from flags and the environment; secrets are not echoed', () => {
  const c = loadConfig(['--insecure', '--allowed-origins', 'https://a.example, https://b.example'], {
    WALCAST_JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\\nMFkw\\n-----END PUBLIC KEY-----',
    WALCAST_PUBLISH: 'off',
  });
  assert.equal(c.insecure, true);
  assert.deepEqual(c.allowedOrigins, ['https://a.example', 'https://b.example']);
  assert.equal(c.jwtPublicKey, '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----');
  assert.equal(c.publish, 'off');
  assert.throws(
    () => loadConfig([], { WALCAST_JWT_SECRET: 'short-secret' }),
    (e: Error) => /32 characters/.test(e.message) && !e.message.includes('short-secret'),
  );
  assert.throws(() => loadConfig([], { WALCAST_PUBLISH: 'maybe' }), /token, open or off/);
});

test('token bucket: a burst, then the rate', () => {
  const b = new TokenBucket(10, 20, 0);
  let taken = 0;
  while (b.take(0)) taken++;
  assert.equal(taken, 20);
  assert.ok(!b.take(50));
  assert.ok(b.take(100)); // 100 ms at 10/s: one token
  assert.ok(!b.take(100));
  const shared = new Shared(() => ({}));
  const one = shared.acquire('ada');
  assert.equal(shared.acquire('ada'), one);
  shared.release('ada');
  shared.release('ada');
  assert.equal(shared.size, 0);
});
