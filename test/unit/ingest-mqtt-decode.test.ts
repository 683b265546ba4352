// One message for one flow (relay/ingest/decode.ts): the row it becomes, or
// the dead-letter code and detail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { decode } from '../../relay/ingest/decode.ts';
import { parseFlowFilter } from '../../relay/ingest/topics.ts';
import type { Flow } from '../../relay/ingest/catalog.ts';

function flow(extra: Partial<Flow> = {}): Flow {
  return {
    name: 'f',
    broker: 'b',
    action: 'insert',
    target: 'public.t',
    qos: 1,
    dedupKey: null,
    filter: parseFlowFilter('s/{device}/t'),
    validate: undefined,
    table: undefined,
    version: '1',
    ...extra,
  };
}

const msg = (payload: string | Buffer, f = flow()) =>
  decode(f, 's/d1/t', Buffer.isBuffer(payload) ? payload : Buffer.from(payload), { device: 'd1' });

test('a JSON object becomes the row, captures set over payload keys', () => {
  assert.deepEqual(msg('{"temperature": 21.5, "device": "spoofed", "extra": [1]}'), {
    ok: true,
    row: { temperature: 21.5, device: 'd1', extra: [1] },
    dedup: undefined,
  });
});

test('not UTF-8 JSON, or not an object: dead-letter codes with the reason', () => {
  const codes = ['{nope', Buffer.from([0xff, 0xfe]), '[1]', 'null', '42', '"text"'].map((p) => {
    const d = msg(p);
    return d.ok ? 'ok' : `${d.code}:${d.params.detail}`.replace(/:.*JSON.*$/, ':<parse error>');
  });
  assert.deepEqual(codes, [
    'ingest_invalid_json:<parse error>',
    'ingest_invalid_json:The encoded data was not valid for encoding utf-8',
    'ingest_not_object:array',
    'ingest_not_object:null',
    'ingest_not_object:number',
    'ingest_not_object:string',
  ]);
});

test("the flow's schema: a mismatch names the field and the rule", () => {
  const validate = new Ajv({ allErrors: true }).compile({
    type: 'object',
    required: ['temperature'],
    properties: { temperature: { type: 'number' } },
  });
  const d = msg('{"temperature": "hot"}', flow({ validate }));
  assert.equal(d.ok, false);
  assert.deepEqual(!d.ok && [d.code, d.params.detail, d.params.flow, d.params.topic], [
    'ingest_schema_mismatch',
    '/temperature must be number',
    'f',
    's/d1/t',
  ]);
});

test('the dedup key: a field or a capture, a string or a number; missing is a dead letter', () => {
  assert.equal((msg('{"id": 7}', flow({ dedupKey: 'id' })) as { dedup: string }).dedup, '7');
  assert.equal((msg('{}', flow({ dedupKey: 'device' })) as { dedup: string }).dedup, 'd1');
  for (const payload of ['{}', '{"id": {"a": 1}}', '{"id": null}']) {
    const d = msg(payload, flow({ dedupKey: 'id' }));
    assert.equal(d.ok ? 'ok' : d.code, 'ingest_dedup_key_missing', payload);
  }
});
