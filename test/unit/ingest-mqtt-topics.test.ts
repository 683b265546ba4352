// Flow topic filters with {column} captures (relay/ingest/topics.ts): the
// filter walcast subscribes with, what matches, what is captured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlowFilter, TopicFilterError } from '../../relay/ingest/topics.ts';

test('a {column} level subscribes as + and captures its value', () => {
  const f = parseFlowFilter('sensors/{device}/temperature');
  assert.equal(f.subscription, 'sensors/+/temperature');
  assert.deepEqual(f.captures, ['device']);
  assert.deepEqual(f.match('sensors/dev-7/temperature'), { device: 'dev-7' });
  assert.equal(f.match('sensors/dev-7/humidity'), undefined);
  assert.equal(f.match('sensors/dev-7/temperature/extra'), undefined);
  assert.equal(f.match('sensors/temperature'), undefined);
});

test('several captures, + and # together', () => {
  const f = parseFlowFilter('tenants/{tenant}/+/{device}/#');
  assert.equal(f.subscription, 'tenants/+/+/+/#');
  assert.deepEqual(f.match('tenants/acme/site1/d9/a/b'), { tenant: 'acme', device: 'd9' });
  // # matches the parent level too (MQTT 4.7.1.2).
  assert.deepEqual(f.match('tenants/acme/site1/d9'), { tenant: 'acme', device: 'd9' });
  assert.equal(f.match('tenants/acme/site1'), undefined);
});

test('an empty level is a value like any other', () => {
  assert.deepEqual(parseFlowFilter('a/{x}/b').match('a//b'), { x: '' });
});

test('filters without captures match as MQTT says', () => {
  assert.deepEqual(parseFlowFilter('a/b').match('a/b'), {});
  assert.equal(parseFlowFilter('a/b').match('a/c'), undefined);
  assert.deepEqual(parseFlowFilter('#').match('x/y'), {});
  // Wildcards at the start do not match $ topics (MQTT 4.7.2).
  assert.equal(parseFlowFilter('#').match('$SYS/broker'), undefined);
  assert.equal(parseFlowFilter('{x}/broker').match('$SYS/broker'), undefined);
  assert.deepEqual(parseFlowFilter('$SYS/#').match('$SYS/broker'), {});
});

test('a $share/<group>/ prefix is kept in the subscription and ignored when matching', () => {
  const f = parseFlowFilter('$share/walcast/sensors/{device}/temperature');
  assert.equal(f.subscription, '$share/walcast/sensors/+/temperature');
  assert.deepEqual(f.match('sensors/d1/temperature'), { device: 'd1' });
});

test('invalid filters are refused with the reason', () => {
  for (const [filter, why] of [
    ['', /empty/],
    ['a/#/b', /# must be the last level/],
    ['a/dev+/b', /mixes/],
    ['a/{Device}/b', /mixes/],
    ['a/{x}y/b', /mixes/],
    ['{x}/{x}', /captured twice/],
    ['$share/g', /\$share/],
    ['$share//a', /\$share/],
  ] as const) {
    assert.throws(
      () => parseFlowFilter(filter),
      (e: unknown) => e instanceof TopicFilterError && why.test(e.message),
    );
  }
});
