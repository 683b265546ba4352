import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecoveryBuffer, type BufferedEvent } from '../../relay/hub/recovery.ts';
import { formatPosition, streamPoint } from '../../relay/replication/position.ts';

const E = 'ep1';
const pos = (lsn: number, i = 1) => formatPosition(BigInt(lsn), i, E);
const ev = (channel: string, lsn: number, timeMs = 1000, table = 't'): BufferedEvent => ({
  channel,
  table,
  position: pos(lsn),
  timeMs,
  frame: `{"lsn":${lsn}}`,
});

function buffer(limits: Partial<RecoveryBuffer['limits']> = {}): RecoveryBuffer {
  const b = new RecoveryBuffer({ maxAgeMs: 60_000, maxPerChannel: 100, maxBytes: 1 << 20, ...limits });
  b.reset(streamPoint(10n, E), E);
  return b;
}

const lsns = (r: ReturnType<RecoveryBuffer['replay']>) =>
  r.recovered ? r.events.map((e) => JSON.parse(e.frame).lsn) : r.reason;

test('a since inside the window replays exactly the later events of that channel', () => {
  const b = buffer();
  for (const [ch, lsn] of [
    ['a', 11],
    ['b', 12],
    ['a', 13],
    ['a', 14],
  ] as const)
    b.add(ev(ch, lsn), 1000);
  assert.deepEqual(lsns(b.replay('a', pos(11))), [13, 14]);
  assert.deepEqual(lsns(b.replay('a', pos(14))), []);
  assert.deepEqual(lsns(b.replay('a', streamPoint(10n, E))), [11, 13, 14]);
  assert.deepEqual(lsns(b.replay('quiet', streamPoint(10n, E))), []);
  assert.deepEqual(lsns(b.replay('a', pos(20))), [], 'a position ahead of the stream: nothing yet');
});

test('a since before the window, from another epoch, a snapshot row or garbage is not recoverable', () => {
  const b = buffer();
  b.add(ev('a', 11), 1000);
  assert.equal(b.replay('a', streamPoint(9n, E)).recovered, false);
  assert.equal(b.replay('a', formatPosition(11n, 1, 'other')).recovered, false);
  assert.equal(b.replay('a', `${pos(11)}~000001`).recovered, false);
  assert.equal(b.replay('a', 'garbage').recovered, false);
});

test("the per-channel count bound raises only that channel's floor", () => {
  const b = buffer({ maxPerChannel: 3 });
  for (let i = 11; i <= 15; i++) b.add(ev('busy', i), 1000);
  b.add(ev('calm', 16), 1000);
  assert.equal(b.replay('busy', pos(11)).recovered, false, 'event 12 was dropped');
  assert.deepEqual(lsns(b.replay('busy', pos(12))), [13, 14, 15]);
  assert.deepEqual(lsns(b.replay('calm', streamPoint(10n, E))), [16]);
  assert.equal(b.count, 4);
});

test('the age bound drops old events in order and raises the global floor', () => {
  const b = buffer({ maxAgeMs: 100 });
  b.add(ev('a', 11, 1000), 1000);
  b.add(ev('b', 12, 1150), 1150);
  b.add(ev('a', 13, 1200), 1200); // 11 is now 200 ms old
  assert.equal(b.replay('a', streamPoint(10n, E)).recovered, false);
  assert.deepEqual(lsns(b.replay('a', pos(11))), [13]);
  assert.equal(b.replay('b', streamPoint(10n, E)).recovered, false, 'the floor is global');
  b.evict(5000);
  assert.equal(b.count, 0);
  assert.equal(b.channelCount, 0);
  assert.deepEqual(lsns(b.replay('a', pos(13))), []);
});

test('the memory bound holds whatever the load, dropping the oldest first', () => {
  const b = buffer({ maxBytes: 10_000, maxPerChannel: 1_000_000 });
  for (let i = 0; i < 10_000; i++) b.add(ev(`c${i % 7}`, 11 + i), 1000);
  assert.ok(b.bytes <= 10_000, `${b.bytes} bytes`);
  assert.ok(b.count > 0 && b.count < 100);
  const r = b.replay('c0', b.globalFloor);
  assert.equal(r.recovered, true);
  assert.equal(b.replay('c0', pos(11)).recovered, false);
});

test('non-ASCII frames are counted at two bytes a character (how V8 stores them)', () => {
  const ascii = buffer({ maxBytes: 1 << 20 });
  const wide = buffer({ maxBytes: 1 << 20 });
  const body = 'x'.repeat(100);
  ascii.add({ ...ev('a', 11), frame: `{"body":"${body}"}` }, 1000);
  wide.add({ ...ev('a', 11), frame: `{"body":"${'€'.repeat(100)}"}` }, 1000);
  const length = `{"body":"${body}"}`.length; // the same for both frames
  assert.equal(wide.bytes - 120, 2 * length, 'non-ASCII: two bytes a character, plus the per-entry overhead');
  assert.equal(ascii.bytes - 120, length, 'ASCII: one byte a character');
});

test('a zero window keeps nothing and recovers only from the head', () => {
  const b = buffer({ maxPerChannel: 0 });
  b.add(ev('a', 11), 1000);
  assert.equal(b.count, 0);
  assert.equal(b.replay('a', streamPoint(10n, E)).recovered, false);
  assert.deepEqual(lsns(b.replay('a', pos(11))), []);
});

const truncate = (lsn: number, timeMs = 1000): BufferedEvent => ({
  channel: '',
  table: 't',
  position: pos(lsn),
  timeMs,
  frame: `{"type":"event","channel":"","table":"t","op":"truncate","lsn":${lsn}}`,
});

test('a truncate is replayed to every channel, in position order, with the channel filled in', () => {
  const b = buffer();
  b.add(ev('a', 11), 1000);
  b.addTruncate(truncate(12), 1000);
  b.add(ev('a', 13), 1000);
  assert.deepEqual(lsns(b.replay('a', pos(10))), [11, 12, 13]);
  const quiet = b.replay('quiet', pos(11));
  assert.ok(quiet.recovered);
  assert.deepEqual(
    quiet.events.map((e) => JSON.parse(e.frame)),
    [{ type: 'event', channel: 'quiet', table: 't', op: 'truncate', lsn: 12 }],
  );
  assert.deepEqual(lsns(b.replay('a', pos(12))), [13], 'not after it');
});

test('a truncate that leaves the window by age raises the floor: a since before it is not recoverable', () => {
  const b = buffer({ maxAgeMs: 1000 });
  b.addTruncate(truncate(12, 1000), 1000);
  b.evict(5000);
  assert.equal(b.count, 0);
  assert.equal(b.replay('quiet', pos(11)).recovered, false, 'never a replay that lacks the truncate');
  assert.deepEqual(lsns(b.replay('quiet', pos(12))), []);
});

test('recentMessages: the newest messages of a channel since a time that the check accepts, oldest first', () => {
  const buf = new RecoveryBuffer({ maxAgeMs: 60_000, maxPerChannel: 100, maxBytes: 1 << 20 });
  buf.reset(streamPoint(1n, E), E);
  const now = 1_000_000;
  buf.add({ ...ev('c', 10, now + 1), frame: 'row' }, now);
  for (let i = 2; i <= 6; i++) buf.add({ ...ev('c', 10 * i, now + i, 'm'), frame: `m${i}`, message: true }, now);
  buf.add({ ...ev('other', 70, now + 7, 'm'), frame: 'm7', message: true }, now);
  const frames = (list: { frame: string }[]) => list.map((e) => e.frame);
  assert.deepEqual(frames(buf.recentMessages('c', now + 3, 10, () => true)), ['m3', 'm4', 'm5', 'm6']);
  assert.deepEqual(frames(buf.recentMessages('c', 0, 2, () => true)), ['m5', 'm6'], 'the newest two');
  assert.deepEqual(frames(buf.recentMessages('c', 0, 10, (e) => e.frame !== 'm6')), ['m2', 'm3', 'm4', 'm5']);
  assert.deepEqual(frames(buf.recentMessages('none', 0, 10, () => true)), []);
});
