import { test } from 'node:test';
import assert from 'node:assert/strict';
import { converterFor } from '../../relay/replication/values.ts';

const conv = (oid: number, text: string) => converterFor(oid)(text);

test('integers up to int4 and floats are JSON numbers; int8 and numeric are strings', () => {
  assert.equal(conv(21, '-32768'), -32768);
  assert.equal(conv(23, '2147483647'), 2147483647);
  assert.equal(conv(701, '1.5e-7'), 1.5e-7);
  assert.equal(conv(700, '3.25'), 3.25);
  assert.equal(conv(20, '9223372036854775807'), '9223372036854775807');
  assert.equal(conv(1700, '12345678901234567890.000000001'), '12345678901234567890.000000001');
});

test('NaN and infinities stay strings, since JSON has no such numbers', () => {
  assert.equal(conv(701, 'NaN'), 'NaN');
  assert.equal(conv(701, '-Infinity'), '-Infinity');
});

test('booleans, json and jsonb', () => {
  assert.equal(conv(16, 't'), true);
  assert.equal(conv(16, 'f'), false);
  assert.deepEqual(conv(3802, '{"a": [1, "b", null]}'), { a: [1, 'b', null] });
  assert.deepEqual(conv(114, '[1,2]'), [1, 2]);
});

test('timestamps become ISO-8601 with their microseconds', () => {
  assert.equal(conv(1184, '2026-11-23 11:37:06.123456+00'), '2026-11-23T11:37:06.123456Z');
  assert.equal(conv(1184, '2026-11-23 11:37:06+00'), '2026-11-23T11:37:06Z');
  assert.equal(conv(1114, '2026-11-23 11:37:06.5'), '2026-11-23T11:37:06.5');
  assert.equal(conv(1184, 'infinity'), 'infinity');
  assert.equal(conv(1082, '2026-11-23'), '2026-11-23');
});

test('bytea (hex output) becomes base64', () => {
  assert.equal(conv(17, '\\x00ff10'), Buffer.from([0, 255, 16]).toString('base64'));
  assert.equal(conv(17, '\\x'), '');
});

test('arrays become arrays, with their element types and NULLs', () => {
  assert.deepEqual(conv(1007, '{1,2,NULL,4}'), [1, 2, null, 4]);
  assert.deepEqual(conv(1016, '{1,9223372036854775807}'), ['1', '9223372036854775807']);
  assert.deepEqual(conv(1009, '{a,"b c","d,\\"e"}'), ['a', 'b c', 'd,"e']);
  assert.deepEqual(conv(1007, '{{1,2},{3,4}}'), [
    [1, 2],
    [3, 4],
  ]);
  assert.deepEqual(conv(3807, '{"{\\"a\\": 1}"}'), [{ a: 1 }]);
  assert.deepEqual(conv(1000, '{t,f}'), [true, false]);
});

test('other types keep their text form', () => {
  assert.equal(conv(2950, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  assert.equal(conv(123456, '(1,2)'), '(1,2)');
});
