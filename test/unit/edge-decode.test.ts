// relay/edge/decode.ts and stream-index.ts: a stream message → the event an
// edge routes, and position → stream sequence, with no NATS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelOfSubject, decodeMessage, UNKNOWN_XID, type RawMessage } from '../../relay/edge/decode.ts';
import { covers, firstAfter } from '../../relay/edge/stream-index.ts';
import { toStreamLogicalMessage, toStreamMessage } from '../../relay/sinks/message.ts';
import { StreamHeaders } from '../../relay/sinks/stream-headers.ts';
import { headerValue } from '../../relay/edge/header-block.ts';
import { formatPosition } from '../../relay/replication/position.ts';

/** What the sink would store for this event, read back as a message. */
function stored(seq: number, channel: string | undefined, extra: { xid?: number } = {}): RawMessage {
  const position = formatPosition(0x16b3748n + BigInt(seq), 1, 'ab12');
  const event = {
    type: 'event',
    channel: channel ?? '',
    table: 'chat_messages',
    op: channel === undefined ? 'truncate' : 'insert',
    position,
    commit_time: '2026-11-30T12:00:00.123Z',
  };
  const frame = JSON.stringify({ ...event, row: { body: 'héllo' } });
  const msg = toStreamMessage({
    commitLsn: 0x16b3748n + BigInt(seq),
    index: 1,
    part: 0,
    commitTimeMs: 0,
    xid: extra.xid,
    event: channel === undefined ? { ...event, channel: undefined } : event,
    frame,
  });
  // The header block as the sink puts it on the wire, read back as the edge reads it.
  const block = Buffer.from(new StreamHeaders(msg.headerLines).encode()).toString();
  return { seq, subject: msg.subject, data: msg.payload, header: (n) => headerValue(block, n) };
}

test('a message the sink wrote decodes to its channel, table, position, epoch, transaction and frame bytes', () => {
  const e = decodeMessage(stored(7, 'room 1', { xid: 4242 }))!;
  assert.equal(e.seq, 7);
  assert.equal(e.channel, 'room 1');
  assert.equal(e.table, 'chat_messages');
  assert.equal(e.epoch, 'ab12');
  assert.equal(e.xid, 4242);
  assert.equal(e.timeMs, Date.parse('2026-11-30T12:00:00.123Z'));
  assert.equal(JSON.parse(e.bytes.toString()).row.body, 'héllo');
  assert.equal(e.position, formatPosition(0x16b3748n + 7n, 1, 'ab12'));
});

test('a logical message the sink wrote decodes as a message on its channel, its content as the bytes, with its position and transaction', () => {
  const position = formatPosition(0x16b3748n, 2, 'ab12');
  const content = Buffer.from(JSON.stringify({ t: 'alerts/room 1', q: 1, p: 'aGk=' }));
  const msg = toStreamLogicalMessage({
    commitLsn: 0x16b3748n,
    index: 2,
    commitTimeMs: 0,
    xid: 77,
    prefix: 'walcast.mqtt',
    channel: 'room 1',
    table: 'alerts',
    position,
    commit_time: '2026-11-30T12:00:00.123Z',
    content,
  });
  assert.equal(msg.subject, 'walcast.%.%%room%201');
  const headers = new StreamHeaders(msg.headerLines);
  assert.equal(headers.get('Nats-Msg-Id'), position);
  assert.equal(headers.get('Walcast-Op'), 'message');
  assert.equal(headers.get('Walcast-Prefix'), 'walcast.mqtt');
  const e = decodeMessage({
    seq: 9,
    subject: msg.subject,
    data: msg.payload,
    header: (n) => (headers.has(n) ? headers.get(n) : undefined),
  })!;
  assert.equal(e.message, true);
  assert.equal(e.channel, 'room 1');
  assert.equal(e.table, 'alerts');
  assert.equal(e.position, position);
  assert.equal(e.xid, 77);
  assert.deepEqual(e.bytes, content);
  assert.equal(decodeMessage(stored(3, 'room 1'))!.message, undefined, 'a row event is not a message');
});

test('a truncate (channel token %) decodes with no channel; a message without Walcast-Xid gets the xid no snapshot includes', () => {
  const e = decodeMessage(stored(3, undefined))!;
  assert.equal(e.channel, undefined);
  assert.equal(e.xid, UNKNOWN_XID);
});

test('messages that are not walcast events decode to undefined', () => {
  const m = stored(1, 'a');
  assert.equal(decodeMessage({ ...m, header: () => undefined }), undefined);
  assert.equal(decodeMessage({ ...m, subject: 'other.chat_messages.a' }), undefined);
  assert.equal(decodeMessage({ ...m, header: (n) => (n === 'Walcast-Position' ? 'nope' : m.header(n)) }), undefined);
});

test('headerValue reads a NATS header block: first value of a key, trimmed, exact keys at the start of a line', () => {
  const block =
    'NATS/1.0\r\nWalcast-Table: public.café\r\nWalcast-Position:  0-1-x \r\nX-Note: Walcast-Xid: 7\r\n' +
    'Walcast-Table: again\r\nWalcast-Commit-Time: 2026-11-30T12:00:00Z\r\nwalcast-op: insert\r\n\r\n';
  assert.equal(headerValue(block, 'Walcast-Table'), 'public.café');
  assert.equal(headerValue(block, 'Walcast-Position'), '0-1-x');
  assert.equal(headerValue(block, 'Walcast-Commit-Time'), '2026-11-30T12:00:00Z', 'a value keeps its own colons');
  assert.equal(headerValue(block, 'Walcast-Xid'), undefined, 'a key inside another header value is not a key');
  assert.equal(headerValue(block, 'Walcast-Op'), undefined, 'keys are exact, as nats.js compares them by default');
  assert.equal(headerValue('NATS/1.0 503\r\n\r\n', 'Walcast-Position'), undefined, 'a status line with no headers');
  assert.equal(headerValue('NATS/1.0\r\nA: 1', 'A'), '1', 'a block cut short still gives its last value');
});

test('channelOfSubject decodes the token encoding of subject.ts', () => {
  assert.equal(channelOfSubject('walcast.chat_messages.room-1'), 'room-1');
  assert.equal(channelOfSubject('walcast.billing%2Einvoices.caf%C3%A9'), 'café');
  assert.equal(channelOfSubject('walcast.t.%'), undefined);
  assert.equal(channelOfSubject('walcastx.t.a'), null);
  assert.equal(channelOfSubject('walcast.t.%E0%A4'), null, 'a broken escape');
});

test('firstAfter finds the first sequence after a position by binary search', async () => {
  // Sequences 11..30; two messages share a position (a row moved between channels).
  const positions = new Map<number, string>();
  for (let seq = 11; seq <= 30; seq++) positions.set(seq, formatPosition(BigInt(seq === 21 ? 20 : seq), 1, 'e'));
  let reads = 0;
  const at = async (seq: number) => {
    reads++;
    return positions.get(seq);
  };
  assert.equal(await firstAfter(formatPosition(15n, 1, 'e'), 11, 30, at), 16);
  assert.equal(
    await firstAfter(formatPosition(20n, 1, 'e'), 11, 30, at),
    22,
    'both messages of the position are skipped',
  );
  assert.equal(await firstAfter(formatPosition(1n, 1, 'e'), 11, 30, at), 11);
  assert.equal(await firstAfter(formatPosition(99n, 1, 'e'), 11, 30, at), 31, 'nothing after: last + 1');
  assert.ok(reads <= 4 * 6, `about log2(20) reads per search, got ${reads} for 4`);
  // A sequence the stream's limits removed meanwhile counts as older.
  positions.delete(11);
  assert.equal(await firstAfter(formatPosition(1n, 1, 'e'), 11, 30, at), 12);
});

test('covers: the stream holds every event after a position only if nothing after it was removed', () => {
  const p = (n: bigint, epoch = 'e') => formatPosition(n, 1, epoch);
  assert.deepEqual(covers(p(5n), 40, p(5n), 'e'), { covered: true }, 'its first message is the position itself');
  assert.deepEqual(covers(p(9n), 40, p(5n), 'e'), { covered: true });
  assert.equal(covers(p(4n), 40, p(5n), 'e').covered, false, 'messages after it were removed');
  assert.deepEqual(covers(p(4n), 1, p(5n), 'e'), { covered: true }, 'nothing was ever removed');
  assert.equal(covers(p(4n), 1, p(5n, 'old'), 'e').covered, false, 'another epoch');
  assert.deepEqual(covers(p(4n), 1, undefined, 'e'), { covered: true }, 'an empty stream that never removed a message');
  assert.equal(covers(p(4n), 9, undefined, 'e').covered, false);
});
