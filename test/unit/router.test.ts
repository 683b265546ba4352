import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_HELD_BYTES, Router, type RoutedEvent, type Sink } from '../../relay/hub/router.ts';

class Collect implements Sink {
  frames: string[] = [];
  send(frame: string): void {
    this.frames.push(frame);
  }
}

let seq = 0;
const ev = (frame: string, table = 'chat_messages', xid = 1): RoutedEvent => ({
  table,
  frame,
  xid,
  position: `P${String(++seq).padStart(6, '0')}`,
});
const all = { tables: null };

test('a frame reaches the subscribers of its channel and no one else', () => {
  const r = new Router();
  const [a, b, c] = [new Collect(), new Collect(), new Collect()];
  r.subscribe('room-1', a, all);
  r.subscribe('room-1', b, all);
  r.subscribe('room-2', c, all);
  assert.equal(r.dispatch('room-1', ev('F1')), 2);
  assert.deepEqual(a.frames, ['F1']);
  assert.deepEqual(b.frames, ['F1']);
  assert.deepEqual(c.frames, []);
  assert.equal(r.dispatch('room-3', ev('F2')), 0);
});

test('the table filter narrows a subscription', () => {
  const r = new Router();
  const all2 = new Collect();
  const chat = new Collect();
  r.subscribe('call-7', all2, all);
  r.subscribe('call-7', chat, { tables: new Set(['chat_messages']) });
  r.dispatch('call-7', ev('P', 'presence'));
  r.dispatch('call-7', ev('C', 'chat_messages'));
  assert.deepEqual(all2.frames, ['P', 'C']);
  assert.deepEqual(chat.frames, ['C']);
});

test('a subscription that resumed after a position skips events up to it', () => {
  const r = new Router();
  const s = new Collect();
  const e1 = ev('1');
  const e2 = ev('2');
  const e3 = ev('3');
  r.subscribe('x', s, { tables: null, after: e2.position });
  for (const e of [e1, e2, e3]) r.dispatch('x', e);
  assert.deepEqual(s.frames, ['3']);
});

test('a held subscription queues events until released, and reports overflow', () => {
  const r = new Router();
  const s = new Collect();
  r.subscribe('x', s, { tables: null, hold: true });
  r.dispatch('x', ev('a'));
  r.dispatch('x', ev('b'));
  assert.deepEqual(s.frames, []);
  const held = r.release('x', s);
  assert.deepEqual(Array.isArray(held) && held.map((e) => e.frame), ['a', 'b']);
  r.dispatch('x', ev('c'));
  assert.deepEqual(s.frames, ['c']);
  const big = new Collect();
  r.subscribe('y', big, { tables: null, hold: true });
  const frame = 'z'.repeat(64 * 1024);
  for (let i = 0; i <= MAX_HELD_BYTES / frame.length + 1; i++) r.dispatch('y', ev(frame));
  assert.equal(r.release('y', big), 'overflow');
});

test('one held event larger than the hold bound does not overflow it (a large row during a snapshot read)', () => {
  const r = new Router();
  const s = new Collect();
  r.subscribe('x', s, { tables: null, hold: true });
  r.dispatch('x', ev('a'));
  r.dispatch('x', ev('z'.repeat(MAX_HELD_BYTES + 1)));
  r.dispatch('x', ev('b'));
  const held = r.release('x', s);
  assert.deepEqual(Array.isArray(held) && held.map((e) => e.frame.length), [1, MAX_HELD_BYTES + 1, 1]);
});

test('subscribe twice is refused; unsubscribe removes and empty channels vanish', () => {
  const r = new Router();
  const a = new Collect();
  assert.equal(r.subscribe('x', a, all), true);
  assert.equal(r.subscribe('x', a, all), false);
  assert.equal(r.subscriptionCount, 1);
  assert.equal(r.unsubscribe('x', a), true);
  assert.equal(r.unsubscribe('x', a), false);
  assert.equal(r.channelCount, 0);
  assert.equal(r.hasSubscribers('x'), false);
  r.dispatch('x', ev('F'));
  assert.deepEqual(a.frames, []);
});
