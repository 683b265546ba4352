// The dispatcher on pgoutput bytes (test/helpers/pgoutput.ts) decoded by the
// real decoder, with the real router and recovery window: what subscribers of
// each channel receive, and which LSNs are reported delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PgoutputDecoder } from '../../relay/replication/decoder.ts';
import { Dispatcher, type DispatcherOptions } from '../../relay/hub/dispatcher.ts';
import type { SinkEvent, SinkMessage } from '../../relay/hub/sink.ts';
import { Router, type Frame } from '../../relay/hub/router.ts';
import { RecoveryBuffer } from '../../relay/hub/recovery.ts';
import { PRUNE_MESSAGE_PREFIX } from '../../relay/replication/messages.ts';
import { formatPosition, streamPoint } from '../../relay/replication/position.ts';
import { silentLogger } from '../../relay/log.ts';
import type { EventMessage } from '../../client/protocol.ts';
import {
  UNCHANGED,
  beginMsg,
  commitMsg,
  deleteMsg,
  insertMsg,
  messageMsg,
  relationMsg,
  updateMsg,
  type Value,
} from '../helpers/pgoutput.ts';

const OID = 16384;
const COLS = [
  { name: 'id', typeOid: 20, key: true },
  { name: 'channel_id', typeOid: 25 },
  { name: 'body', typeOid: 25 },
];

/** A dispatcher fed from bytes, and the events each channel's subscriber got. */
function harness(channels: string[], extra: Partial<DispatcherOptions> = {}) {
  const decoder = new PgoutputDecoder();
  const router = new Router();
  const recovery = new RecoveryBuffer({ maxAgeMs: 60_000, maxPerChannel: 100, maxBytes: 1 << 20 });
  const dispatcher = new Dispatcher({
    router,
    logger: silentLogger,
    recovery,
    epoch: 'e1',
    startLsn: 0n,
    liveFromLsn: 0n,
    maxEventBytes: 1 << 24,
    ...extra,
  });
  dispatcher.setRegistrations([
    {
      schema: 'public',
      table: 'chat_messages',
      channelColumn: 'channel_id',
      ttl: null,
      timeColumn: null,
      kind: 'events',
      omitted: [],
    },
  ]);
  const got = new Map<string, EventMessage[]>();
  for (const channel of channels) {
    got.set(channel, []);
    const sink = { send: (frame: Frame) => got.get(channel)!.push(JSON.parse(frame.toString()) as EventMessage) };
    router.subscribe(channel, sink, { tables: null });
  }
  const delivered: bigint[] = [];
  dispatcher.on('delivered', (lsn) => delivered.push(lsn));
  const feed = (...messages: Buffer[]) => {
    for (const m of messages) dispatcher.handle(decoder.decode(m));
  };
  feed(relationMsg(OID, 'public', 'chat_messages', COLS, 'f'));
  /** One transaction: Begin, the changes, Commit (end LSN = final LSN + 0x10). */
  const tx = (finalLsn: bigint, ...changes: Buffer[]) =>
    feed(
      beginMsg(finalLsn, 1_000_000n, Number(finalLsn)),
      ...changes,
      commitMsg(finalLsn, finalLsn + 0x10n, 1_000_000n),
    );
  return { feed, tx, got, delivered, dispatcher, recovery };
}

const row = (id: string, channel: string, body: Value): Value[] => [id, channel, body];

test('an insert reaches its channel once, and the commit end LSN is reported delivered after it', () => {
  const h = harness(['a', 'b']);
  h.tx(0x100n, insertMsg(OID, row('1', 'a', 'hello')));
  assert.deepEqual(
    h.got.get('a')!.map((e) => [e.op, e.table, e.row.body]),
    [['insert', 'chat_messages', 'hello']],
  );
  assert.deepEqual(h.got.get('b'), []);
  assert.deepEqual(h.delivered, [0x110n]);
});

test('a row moving channel: the old channel gets only the old row (moved out), the new one only the new row (moved in)', () => {
  const h = harness(['from', 'to']);
  h.tx(0x100n, updateMsg(OID, row('1', 'to', 'new body'), { kind: 'O', values: row('1', 'from', 'old body') }));
  const [out] = h.got.get('from')!;
  assert.deepEqual(
    [out!.op, out!.moved, out!.channel, out!.row.channel_id, out!.row.body],
    ['delete', 'out', 'from', 'from', 'old body'],
  );
  assert.equal(out!.old, undefined);
  const [into] = h.got.get('to')!;
  assert.deepEqual(
    [into!.op, into!.moved, into!.channel, into!.row.channel_id, into!.row.body],
    ['insert', 'in', 'to', 'to', 'new body'],
  );
  assert.equal(into!.old, undefined);
  assert.equal(out!.position, into!.position);
});

test('TOAST: an unchanged column is filled from the old row, or listed in `unchanged` when there is none', () => {
  const h = harness(['a']);
  h.tx(0x100n, updateMsg(OID, row('1', 'a', UNCHANGED), { kind: 'O', values: row('1', 'a', 'big text') }));
  h.tx(0x200n, updateMsg(OID, row('2', 'a', UNCHANGED)));
  const [filled, missing] = h.got.get('a')!;
  assert.equal(filled!.row.body, 'big text');
  assert.equal(filled!.unchanged, undefined);
  assert.deepEqual(missing!.unchanged, ['body']);
  assert.equal('body' in missing!.row, false);
});

test("the TTL job's marker: its transaction's deletes are not events; other deletes are", () => {
  const h = harness(['a']);
  h.tx(0x100n, messageMsg(true, 0x100n, PRUNE_MESSAGE_PREFIX, ''), deleteMsg(OID, 'O', row('1', 'a', 'old')));
  assert.deepEqual(h.got.get('a'), []);
  assert.deepEqual(h.delivered, [0x110n], 'the pruning transaction is still delivered (confirmed)');
  h.tx(0x200n, deleteMsg(OID, 'O', row('2', 'a', 'gone')));
  assert.deepEqual(
    h.got.get('a')!.map((e) => [e.op, e.row.id]),
    [['delete', '2']],
  );
});

test('after a reconnect, a transaction sent again is not delivered twice, and the rest of a partial one is', () => {
  const h = harness(['a']);
  h.tx(0x100n, insertMsg(OID, row('1', 'a', 'one')), insertMsg(OID, row('2', 'a', 'two')));
  // The stream dropped inside the next transaction, after its first change.
  h.feed(beginMsg(0x200n, 1_000_000n, 7), insertMsg(OID, row('3', 'a', 'three')));
  // PostgreSQL sends both again from the last confirmed position.
  h.tx(0x100n, insertMsg(OID, row('1', 'a', 'one')), insertMsg(OID, row('2', 'a', 'two')));
  h.tx(0x200n, insertMsg(OID, row('3', 'a', 'three')), insertMsg(OID, row('4', 'a', 'four')));
  assert.deepEqual(
    h.got.get('a')!.map((e) => e.row.id),
    ['1', '2', '3', '4'],
  );
  const positions = h.got.get('a')!.map((e) => e.position);
  assert.deepEqual([...positions].sort(), positions, 'positions increase');
  assert.equal(new Set(positions).size, 4);
});

test('rows of an unregistered table are counted, not routed', () => {
  const h = harness(['a']);
  h.feed(relationMsg(999, 'public', 'other', COLS));
  h.tx(0x100n, insertMsg(999, row('1', 'a', 'x')));
  assert.deepEqual(h.got.get('a'), []);
  assert.equal(h.dispatcher.counters.unrouted, 1);
  assert.deepEqual(h.delivered, [0x110n]);
});

test('a routed logical message goes to the sink in stream order with the events, with its own position, and again when a rewinding sink asks', () => {
  const messages: SinkMessage[] = [];
  const order: string[] = [];
  let wanted = (_key: string) => false;
  const sink = {
    wants: (key: string) => wanted(key),
    event: (e: SinkEvent) => order.push(`event ${e.event.position}`),
    message: (m: SinkMessage) => {
      order.push(`message ${m.position}`);
      messages.push(m);
    },
  };
  const messageRoute = (prefix: string, content: Buffer) =>
    prefix === 'test.msg' ? { channel: content.toString(), table: 'alerts' } : undefined;
  const h = harness(['a'], { sink, messageRoute });
  h.tx(
    0x100n,
    insertMsg(OID, row('1', 'a', 'first')),
    messageMsg(true, 0x100n, 'test.msg', 'a'),
    messageMsg(true, 0x100n, 'other.prefix', 'a'),
    insertMsg(OID, row('2', 'a', 'second')),
  );
  const pos = (i: number) => formatPosition(0x100n, i, 'e1');
  assert.deepEqual(
    order,
    [`event ${pos(1)}`, `message ${pos(2)}`, `event ${pos(3)}`],
    'an unrouted message takes no index',
  );
  const [m] = messages;
  assert.deepEqual(
    [m!.prefix, m!.channel, m!.table, m!.index, m!.content.toString()],
    ['test.msg', 'a', 'alerts', 2, 'a'],
  );
  // The sink fell behind and the slot is read again: only the sink gets the message a second time.
  wanted = () => true;
  h.tx(0x100n, insertMsg(OID, row('1', 'a', 'first')), messageMsg(true, 0x100n, 'test.msg', 'a'));
  assert.equal(messages.length, 2);
  assert.equal(messages[1]!.position, pos(2));
  assert.equal(h.got.get('a')!.length, 2, 'subscribers got the rows once');
});

test('the recovery window keeps what a replay needs and nothing else: the event object and its row are not held', () => {
  const h = harness(['a']);
  const now = BigInt(Date.now() - Date.UTC(2000, 0, 1)) * 1000n; // a commit time inside the window's age
  h.feed(beginMsg(0x100n, now, 7), insertMsg(OID, row('1', 'a', 'hello')), commitMsg(0x100n, 0x110n, now));
  const r = h.recovery.replay('a', streamPoint(0n, 'e1'));
  assert.ok(r.recovered, r.recovered ? '' : r.reason);
  assert.deepEqual(
    r.events.map((e) => (JSON.parse(e.frame) as EventMessage).row.body),
    ['hello'],
  );
  // What the window's byte bound counts (the frame) is all it holds: no `body` object, no second copy in `bytes`.
  assert.deepEqual(Object.keys(r.events[0]!).sort(), ['channel', 'frame', 'position', 'table', 'timeMs']);
});
