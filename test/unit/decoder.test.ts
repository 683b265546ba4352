import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeError, PgoutputDecoder, pgTimeToIso, pgTimeToMs } from '../../relay/replication/decoder.ts';
import {
  Bytes,
  UNCHANGED,
  beginMsg,
  commitMsg,
  deleteMsg,
  insertMsg,
  messageMsg,
  relationMsg,
  updateMsg,
} from '../helpers/pgoutput.ts';

const COLS = [
  { name: 'id', typeOid: 20, key: true },
  { name: 'channel_id', typeOid: 25 },
  { name: 'body', typeOid: 25 },
];

function decoderWithRelation(identity: 'd' | 'f' = 'd'): PgoutputDecoder {
  const d = new PgoutputDecoder();
  d.decode(relationMsg(16384, 'public', 'chat_messages', COLS, identity));
  return d;
}

test('Begin and Commit carry LSNs and the commit time', () => {
  const d = new PgoutputDecoder();
  assert.deepEqual(d.decode(beginMsg(0x16b374d848n, 1_000_000n, 42)), {
    tag: 'begin',
    finalLsn: 0x16b374d848n,
    commitTime: 1_000_000n,
    xid: 42,
  });
  assert.deepEqual(d.decode(commitMsg(0x10n, 0x38n, 5n)), {
    tag: 'commit',
    commitLsn: 0x10n,
    endLsn: 0x38n,
    commitTime: 5n,
  });
});

test('pgoutput time (µs since 2000-01-01) becomes ISO-8601 with microseconds', () => {
  assert.equal(pgTimeToIso(0n), '2000-01-01T00:00:00.000000Z');
  assert.equal(pgTimeToIso(1_234_567n), '2000-01-01T00:00:01.234567Z');
  assert.equal(pgTimeToIso(-1n), '1999-12-31T23:59:59.999999Z');
  assert.equal(pgTimeToIso(817_127_826_123_456n), '2025-11-22T11:57:06.123456Z');
  assert.equal(pgTimeToIso(817_127_826_000_007n), '2025-11-22T11:57:06.000007Z');
  // The same second again (formatted once, then reused), and the next one.
  assert.equal(pgTimeToIso(817_127_826_999_999n), '2025-11-22T11:57:06.999999Z');
  assert.equal(pgTimeToIso(817_127_827_000_000n), '2025-11-22T11:57:07.000000Z');
  for (let i = 0; i < 2000; i++) {
    const micros = BigInt(Math.floor(Math.random() * 2e15)) - 10n ** 15n;
    const ms = Number(micros / 1000n) + Date.UTC(2000, 0, 1) - (micros % 1000n < 0n ? 1 : 0);
    const us = ((micros % 1000n) + 1000n) % 1000n;
    assert.equal(pgTimeToIso(micros), `${new Date(ms).toISOString().slice(0, 23)}${String(us).padStart(3, '0')}Z`);
  }
  assert.equal(pgTimeToMs(1_234_567n), 946_684_801_234);
  assert.equal(pgTimeToMs(-1n), 946_684_799_999);
});

test('Relation messages name the table, its identity and key columns', () => {
  const d = new PgoutputDecoder();
  const msg = d.decode(relationMsg(7, 'app', 'events', COLS, 'f'));
  assert.equal(msg.tag, 'relation');
  if (msg.tag !== 'relation') return;
  assert.equal(msg.relation.shortName, 'app.events');
  assert.equal(msg.relation.replicaIdentity, 'full');
  assert.deepEqual(
    msg.relation.columns.map((c) => [c.name, c.isKey]),
    [
      ['id', true],
      ['channel_id', false],
      ['body', false],
    ],
  );
  assert.equal(d.decode(relationMsg(8, 'public', 'x', [])).tag, 'relation');
  assert.equal(d.relation(8)?.shortName, 'x');
});

test('Insert decodes text values through the column types', () => {
  const d = decoderWithRelation();
  const msg = d.decode(insertMsg(16384, ['9007199254740993', 'room-1', null]));
  assert.deepEqual(msg, {
    tag: 'insert',
    relation: d.relation(16384),
    new: { values: { id: '9007199254740993', channel_id: 'room-1', body: null } },
  });
});

test('Update with an old row (REPLICA IDENTITY FULL) and an unchanged TOASTed value', () => {
  const d = decoderWithRelation('f');
  const msg = d.decode(
    updateMsg(16384, ['1', 'room-2', UNCHANGED], { kind: 'O', values: ['1', 'room-1', 'long text'] }),
  );
  assert.equal(msg.tag, 'update');
  if (msg.tag !== 'update') return;
  assert.deepEqual(msg.old, { values: { id: '1', channel_id: 'room-1', body: 'long text' } });
  assert.deepEqual(msg.new, { values: { id: '1', channel_id: 'room-2' }, unchanged: ['body'] });
});

test('Update and Delete with a key tuple keep only identity columns', () => {
  const d = decoderWithRelation();
  const upd = d.decode(updateMsg(16384, ['2', 'a', 'b'], { kind: 'K', values: ['1', null, null] }));
  assert.ok(upd.tag === 'update' && upd.key);
  if (upd.tag === 'update') assert.deepEqual(upd.key?.values, { id: '1' });
  const del = d.decode(deleteMsg(16384, 'K', ['1', null, null]));
  assert.deepEqual(del.tag === 'delete' && del.key?.values, { id: '1' });
  const plain = d.decode(updateMsg(16384, ['2', 'a', 'b']));
  assert.ok(plain.tag === 'update' && !plain.key && !plain.old);
});

test('transactional logical messages keep their prefix and content', () => {
  const d = new PgoutputDecoder();
  const msg = d.decode(messageMsg(true, 0x99n, 'walcast.prune', 'x'));
  assert.equal(msg.tag, 'message');
  if (msg.tag !== 'message') return;
  assert.equal(msg.transactional, true);
  assert.equal(msg.prefix, 'walcast.prune');
  assert.equal(msg.content.toString(), 'x');
});

test('UTF-8 values and multi-byte names survive', () => {
  const d = new PgoutputDecoder();
  d.decode(relationMsg(5, 'public', 'défi', [{ name: 'ключ', typeOid: 25 }]));
  const msg = d.decode(insertMsg(5, ['日本語 🎉']));
  assert.deepEqual(msg.tag === 'insert' && msg.new.values, { ключ: '日本語 🎉' });
});

test('a row before its Relation, an unknown tag and a truncated message are errors', () => {
  const d = new PgoutputDecoder();
  assert.throws(() => d.decode(insertMsg(99, ['1'])), DecodeError);
  assert.throws(() => d.decode(Buffer.from('Z')), DecodeError);
  const dd = decoderWithRelation();
  assert.throws(() => dd.decode(insertMsg(16384, ['1', 'x', 'y']).subarray(0, 12)));
  assert.throws(() => dd.decode(new Bytes().byte('I').int32(16384).byte('X').build()), DecodeError);
});
