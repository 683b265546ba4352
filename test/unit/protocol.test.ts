import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseClientMessage } from '../../client/protocol.ts';

test('subscribe, unsubscribe and ping parse, with their ids', () => {
  assert.deepEqual(parseClientMessage('{"type":"subscribe","id":"1","channel":"room-42"}'), {
    ok: true,
    message: { type: 'subscribe', id: '1', channel: 'room-42' },
  });
  assert.deepEqual(parseClientMessage('{"type":"subscribe","channel":"c","tables":["chat_messages"]}'), {
    ok: true,
    message: { type: 'subscribe', channel: 'c', tables: ['chat_messages'] },
  });
  assert.deepEqual(parseClientMessage('{"type":"unsubscribe","id":"2","channel":"room-42"}'), {
    ok: true,
    message: { type: 'unsubscribe', id: '2', channel: 'room-42' },
  });
  assert.deepEqual(parseClientMessage('{"type":"ping","id":"3"}'), { ok: true, message: { type: 'ping', id: '3' } });
});

test('bad frames get a stable code, and the id when the frame had one', () => {
  const cases: [string, string, string?][] = [
    ['{not json', 'invalid_json'],
    ['[1,2]', 'bad_request'],
    ['"subscribe"', 'bad_request'],
    ['null', 'bad_request'],
    ['{"id":"1"}', 'bad_request', '1'],
    ['{"type":"publish","id":"7"}', 'bad_request', '7'],
    ['{"type":"teleport","id":"7"}', 'unknown_type', '7'],
    ['{"type":"subscribe","id":"4"}', 'bad_request', '4'],
    ['{"type":"subscribe","id":"5","channel":""}', 'invalid_channel', '5'],
    [`{"type":"subscribe","channel":"${'x'.repeat(201)}"}`, 'invalid_channel'],
    ['{"type":"subscribe","channel":42}', 'invalid_channel'],
    ['{"type":"subscribe","channel":"c","tables":"chat_messages"}', 'bad_request'],
    ['{"type":"subscribe","channel":"c","tables":[]}', 'bad_request'],
    ['{"type":"subscribe","channel":"c","tables":[1]}', 'bad_request'],
    ['{"type":"ping","id":5}', 'bad_request'],
    ['{"type":"unsubscribe"}', 'bad_request'],
    ['{"type":"subscribe","channel":"c","since":5}', 'bad_request'],
    ['{"type":"subscribe","channel":"c","snapshot":"yes"}', 'bad_request'],
    ['{"type":"subscribe","channel":"c","snapshot":true,"limit":0}', 'bad_request'],
    ['{"type":"subscribe","channel":"c","snapshot":true,"limit":1.5}', 'bad_request'],
  ];
  for (const [frame, code, id] of cases) {
    const r = parseClientMessage(frame);
    assert.equal(r.ok, false, frame);
    if (r.ok) continue;
    assert.equal(r.code, code, frame);
    assert.equal(r.id, id, frame);
    assert.ok(r.message.length > 0);
  }
});

test('subscribe takes since, snapshot and limit', () => {
  assert.deepEqual(
    parseClientMessage(
      '{"type":"subscribe","channel":"c","since":"0000000000000001-00000002","snapshot":true,"limit":50}',
    ),
    {
      ok: true,
      message: { type: 'subscribe', channel: 'c', since: '0000000000000001-00000002', snapshot: true, limit: 50 },
    },
  );
});

test('a channel of exactly 200 characters is accepted', () => {
  assert.equal(parseClientMessage(`{"type":"subscribe","channel":"${'x'.repeat(200)}"}`).ok, true);
});
