// Properties of the protocol parser over generated input (fast-check): it
// never throws, every failure carries a documented code (and the request's
// id when it had a valid one), valid messages round-trip, truncated frames
// are invalid_json, and nesting cannot exhaust the stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ERROR_CODES,
  MAX_CHANNEL_LENGTH,
  MAX_ID_LENGTH,
  MAX_ROW_DEPTH,
  parseClientMessage,
  type ClientMessage,
} from '../../client/protocol.ts';

const RUNS = { numRuns: 2000 };
const codes = new Set(Object.keys(ERROR_CODES));

const id = fc.string({ minLength: 0, maxLength: MAX_ID_LENGTH });
const channel = fc
  .string({ minLength: 1, maxLength: MAX_CHANNEL_LENGTH, unit: 'grapheme-composite' })
  .filter((c) => c.length <= MAX_CHANNEL_LENGTH);
const table = fc.string({ minLength: 1, maxLength: 64 });
const jsonLeaf = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);
const row = fc.dictionary(
  fc.string({ maxLength: 20 }),
  fc.oneof(
    jsonLeaf,
    fc.array(jsonLeaf, { maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 5 }), jsonLeaf, { maxKeys: 4 }),
  ),
  { maxKeys: 8 },
);

const validMessage: fc.Arbitrary<ClientMessage> = fc.oneof(
  fc.record(
    {
      type: fc.constant('subscribe' as const),
      id,
      channel,
      tables: fc.array(fc.string({ minLength: 1, maxLength: 128 }), { minLength: 1, maxLength: 5 }),
      snapshot: fc.boolean(),
      limit: fc.integer({ min: 1, max: 1000 }),
      since: fc.string({ minLength: 1, maxLength: 64 }),
    },
    { requiredKeys: ['type', 'channel'] },
  ),
  fc.record({ type: fc.constant('unsubscribe' as const), id, channel }, { requiredKeys: ['type', 'channel'] }),
  fc.record({ type: fc.constant('ping' as const), id }, { requiredKeys: ['type'] }),
  fc.record(
    { type: fc.constant('auth' as const), id, token: fc.string({ minLength: 1, maxLength: 300 }) },
    { requiredKeys: ['type', 'token'] },
  ),
  fc.record({ type: fc.constant('publish' as const), id, table, row }, { requiredKeys: ['type', 'table', 'row'] }),
);

function checkResult(text: string): void {
  const r = parseClientMessage(text);
  if (!r.ok) {
    assert.ok(codes.has(r.code), `undocumented code ${r.code}`);
    assert.ok(r.message.length > 0 && r.message.length < 300);
  }
}

test('any string: the parser never throws, and a failure has a documented code', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200, unit: 'binary' }), (s) => checkResult(s)),
    RUNS,
  );
});

test('any JSON value: never throws; a failure has a documented code', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => checkResult(JSON.stringify(v))),
    RUNS,
  );
});

test('objects with any fields of any type, including known types: a documented code, the id echoed when valid', () => {
  const anyType = fc.oneof(
    fc.constantFrom('subscribe', 'unsubscribe', 'ping', 'auth', 'publish'),
    fc.jsonValue({ maxDepth: 1 }),
  );
  const fields = fc.record(
    {
      type: anyType,
      id: fc.oneof(id, fc.jsonValue({ maxDepth: 1 })),
      channel: fc.oneof(channel, fc.jsonValue({ maxDepth: 2 })),
      table: fc.jsonValue({ maxDepth: 1 }),
      row: fc.jsonValue({ maxDepth: 3 }),
      token: fc.jsonValue({ maxDepth: 1 }),
      tables: fc.jsonValue({ maxDepth: 2 }),
      limit: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(fields, (obj) => {
      const r = parseClientMessage(JSON.stringify(obj));
      if (r.ok) return;
      assert.ok(codes.has(r.code));
      if (typeof obj.id === 'string' && obj.id.length <= MAX_ID_LENGTH) assert.equal(r.id, obj.id);
    }),
    RUNS,
  );
});

test('found by the properties above: a type whose toString is not callable is an error, not an exception', () => {
  for (const text of [
    '{"type":{"toString":""}}',
    '{"type":{"valueOf":1,"toString":1},"id":"x"}',
    '{"type":["a"],"id":"y"}',
  ]) {
    const r = parseClientMessage(text);
    assert.ok(!r.ok && r.code === 'unknown_type', text);
  }
});

test('valid messages round-trip', () => {
  fc.assert(
    fc.property(validMessage, (msg) => {
      const r = parseClientMessage(JSON.stringify(msg));
      assert.ok(r.ok, JSON.stringify(r));
      assert.deepEqual(r.message, JSON.parse(JSON.stringify(msg)));
    }),
    RUNS,
  );
});

test('every truncation of a valid message is invalid_json', () => {
  fc.assert(
    fc.property(validMessage, fc.nat(), (msg, cut) => {
      const text = JSON.stringify(msg);
      const r = parseClientMessage(text.slice(0, cut % text.length));
      assert.ok(!r.ok && r.code === 'invalid_json');
    }),
    RUNS,
  );
});

test('nesting: deep frames fail cleanly; rows deeper than the limit are refused', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 30_000 }), fc.constantFrom('[', '{"a":'), (depth, open) => {
      const close = open === '[' ? ']' : '}';
      checkResult(`${open.repeat(depth)}1${close.repeat(depth)}`);
      const nested = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      const r = parseClientMessage(`{"type":"publish","table":"t","row":${nested}}`);
      assert.equal(r.ok, depth < MAX_ROW_DEPTH, `depth ${depth}`);
      if (!r.ok) assert.equal(r.code, 'bad_request');
    }),
    { numRuns: 300 },
  );
});
