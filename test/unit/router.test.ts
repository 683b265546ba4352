import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, type Sink } from '../../relay/hub/router.ts';

class Collect implements Sink {
  frames: string[] = [];
  send(frame: string): void {
    this.frames.push(frame);
  }
}

test('a frame reaches the subscribers of its channel and no one else', () => {
  const r = new Router();
  const a = new Collect();
  const b = new Collect();
  const c = new Collect();
  r.subscribe('room-1', a, null);
  r.subscribe('room-1', b, null);
  r.subscribe('room-2', c, null);
  assert.equal(r.dispatch('room-1', 'chat_messages', 'F1'), 2);
  assert.deepEqual(a.frames, ['F1']);
  assert.deepEqual(b.frames, ['F1']);
  assert.deepEqual(c.frames, []);
  assert.equal(r.dispatch('room-3', 'chat_messages', 'F2'), 0);
});

test('the table filter narrows a subscription', () => {
  const r = new Router();
  const all = new Collect();
  const chat = new Collect();
  r.subscribe('call-7', all, null);
  r.subscribe('call-7', chat, new Set(['chat_messages']));
  r.dispatch('call-7', 'presence', 'P');
  r.dispatch('call-7', 'chat_messages', 'C');
  assert.deepEqual(all.frames, ['P', 'C']);
  assert.deepEqual(chat.frames, ['C']);
});

test('subscribe twice is refused; unsubscribe removes and empty channels vanish', () => {
  const r = new Router();
  const a = new Collect();
  assert.equal(r.subscribe('x', a, null), true);
  assert.equal(r.subscribe('x', a, null), false);
  assert.equal(r.subscriptionCount, 1);
  assert.equal(r.unsubscribe('x', a), true);
  assert.equal(r.unsubscribe('x', a), false);
  assert.equal(r.channelCount, 0);
  assert.equal(r.hasSubscribers('x'), false);
  r.dispatch('x', 't', 'F');
  assert.deepEqual(a.frames, []);
});
