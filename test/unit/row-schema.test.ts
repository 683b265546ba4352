// The JSON Schema derived from a table's columns, checked with ajv as the
// publisher uses it: pure, from a column list like the catalog gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { deriveSchema, type Column, type TableShape } from '../../relay/publish/columns.ts';

function column(name: string, type: string, extra: Partial<Column> = {}): Column {
  return {
    name,
    type,
    element: null,
    notNull: false,
    hasDefault: false,
    serverOwned: false,
    maxLength: null,
    key: false,
    timeDefault: false,
    ...extra,
  };
}

const shape: TableShape = {
  columns: new Map(
    [
      column('id', 'int8', { notNull: true, hasDefault: true, serverOwned: true, key: true }),
      column('room', 'text', { notNull: true }),
      column('sender', 'text', { notNull: true }),
      column('n', 'int2'),
      column('big', 'int8'),
      column('amount', 'numeric'),
      column('ratio', 'float8'),
      column('ok', 'bool', { notNull: true, hasDefault: true }),
      column('code', 'varchar', { maxLength: 3 }),
      column('ref', 'uuid'),
      column('data', 'jsonb'),
      column('blob', 'bytea'),
      column('tags', '_text', { element: 'text' }),
      column('at', 'timestamptz', { notNull: true, hasDefault: true, serverOwned: true, timeDefault: true }),
    ].map((c) => [c.name, c]),
  ),
  claimColumns: new Map([['sender', 'sub']]),
  rowSchema: null,
};

const ajv = new Ajv({ allErrors: true, strict: false });
(addFormats as unknown as (a: Ajv) => void)(ajv);
const validate = ajv.compile(deriveSchema(shape));
const ok = (row: object) => validate(row) === true;

test('required: NOT NULL without a default, and not claim-bound', () => {
  assert.ok(ok({ room: 'r' }));
  assert.ok(!ok({}));
  assert.ok(!ok({ room: null }));
});

test('server-owned columns are not properties; unknown ones are refused', () => {
  assert.ok(!ok({ room: 'r', id: 1 }));
  assert.ok(!ok({ room: 'r', at: '2026-01-01T00:00:00Z' }));
  assert.ok(!ok({ room: 'r', nope: 1 }));
});

test('types: integer ranges, exact numbers as strings, floats, booleans, lengths, uuids, JSON, base64, arrays', () => {
  const cases: [object, boolean][] = [
    [{ n: 32767 }, true],
    [{ n: 32768 }, false],
    [{ n: 1.5 }, false],
    [{ n: '1' }, false],
    [{ big: '9223372036854775807' }, true],
    [{ big: 12 }, true],
    [{ big: '1e3' }, false],
    [{ amount: '12.50' }, true],
    [{ amount: 3.25 }, true],
    [{ amount: 'abc' }, false],
    [{ ratio: 'NaN' }, true],
    [{ ratio: 'nan' }, false],
    [{ ratio: 0.5 }, true],
    [{ ok: false }, true],
    [{ ok: 'false' }, false],
    [{ code: 'abc' }, true],
    [{ code: 'abcd' }, false],
    [{ ref: '5f0c5c6e-6a39-4bd1-9a8c-1c3c0f9e2a11' }, true],
    [{ ref: 'not-a-uuid' }, false],
    [{ data: { any: ['thing', 1, null] } }, true],
    [{ blob: 'AAEC/w==' }, true],
    [{ blob: 'not base64!' }, false],
    [{ tags: ['a', null] }, true],
    [{ tags: 'a' }, false],
    [{ tags: [1] }, false],
    [{ n: null, big: null, code: null }, true],
  ];
  for (const [fields, expected] of cases) assert.equal(ok({ room: 'r', ...fields }), expected, JSON.stringify(fields));
});
