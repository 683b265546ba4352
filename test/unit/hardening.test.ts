// Pure checks added by the security hardening (issue 18): numeric lengths,
// open mode's Host rule, and the HS256 secret rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_NUMERIC_DIGITS, numericDigits, numericIssue } from '../../relay/publish/numeric.ts';
import { hostAllowed, securitySettings } from '../../relay/auth/settings.ts';
import { usableSecret } from '../../relay/config.ts';

test('numericDigits counts the digits of the plain decimal form', () => {
  assert.equal(numericDigits('12.50'), 4);
  assert.equal(numericDigits('1e131071'), 131_072);
  assert.equal(numericDigits('-1e-5'), 6);
  assert.equal(numericDigits(1e308), 309);
  assert.equal(numericDigits(`1e${'9'.repeat(30)}`), Number.MAX_SAFE_INTEGER);
  assert.equal(numericDigits('not a number'), 0);
  assert.equal(numericIssue('numeric', '1e999'), null);
  assert.match(numericIssue('numeric', '1e1000') ?? '', new RegExp(`${MAX_NUMERIC_DIGITS} digits`));
  assert.match(numericIssue('numeric', ['1', '1e5000']) ?? '', /digits/);
  assert.equal(numericIssue('text', '1e131071'), null);
});

test('open mode admits localhost and IP literals as Host, not other names; a key admits any', () => {
  const open = securitySettings({ host: '127.0.0.1' });
  for (const host of ['localhost', 'localhost:8080', '127.0.0.1:8080', '10.0.0.5', '[::1]:8080', undefined])
    assert.ok(hostAllowed(open, host), String(host));
  for (const host of [
    'rebind.example',
    'rebind.example:8080',
    'localhost.evil.example',
    '127.0.0.1.nip.io',
    '[not-ip]:80',
  ])
    assert.ok(!hostAllowed(open, host), host);
  const keyed = securitySettings({ host: '127.0.0.1', jwtSecret: 'k'.repeat(32) });
  assert.ok(hostAllowed(keyed, 'relay.example'));
});

test('a secret needs 32 characters other than whitespace', () => {
  assert.equal(usableSecret(' '.repeat(40)), undefined);
  assert.equal(usableSecret(`${'a'.repeat(31)}         `), undefined);
  assert.equal(usableSecret('a'.repeat(32)), 'a'.repeat(32));
  assert.throws(
    () => securitySettings({ host: '127.0.0.1', jwtSecret: '\t'.repeat(40) }),
    /at least 32 characters other than whitespace/,
  );
});
