// Flow control bookkeeping (relay/ws/congestion.ts): when reading pauses and
// resumes, and when a congested connection becomes a slow consumer. The
// clock is node:test's mock timers: time moves only when a test ticks it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Congestion } from '../../relay/ws/congestion.ts';

class Queue {
  constructor(public bytes = 0) {}
  queuedBytes(): number {
    return this.bytes;
  }
}

function setup(t: TestContext, graceMs = 10_000) {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'] });
  const changes: boolean[] = [];
  const stuck: Queue[] = [];
  const c = new Congestion<Queue>({
    softBytes: 100,
    graceMs,
    checkMs: 5,
    onChange: (x) => changes.push(x),
    onStuck: (q) => stuck.push(q),
  });
  return { c, changes, stuck };
}

test('the first congested queue pauses; the last one to drain resumes', (t) => {
  const { c, changes, stuck } = setup(t);
  const a = new Queue(150);
  const b = new Queue(150);
  c.note(a, 50);
  assert.deepEqual(changes, [], 'under the soft bound: nothing');
  c.note(a, 150);
  c.note(b, 150);
  c.note(a, 160);
  assert.deepEqual(changes, [true], 'one pause for any number of congested queues');
  a.bytes = 10;
  t.mock.timers.tick(5);
  assert.deepEqual(changes, [true], 'b still holds it back');
  b.bytes = 0;
  t.mock.timers.tick(5);
  assert.deepEqual(changes, [true, false]);
  assert.equal(c.congested, false);
  assert.deepEqual(stuck, []);
  c.stop();
});

test('a queue congested past the grace period is reported stuck, and reading resumes', (t) => {
  const { c, changes, stuck } = setup(t, 40);
  const slow = new Queue(500);
  c.note(slow, 500);
  t.mock.timers.tick(40);
  assert.deepEqual(stuck, [], 'not before the grace period');
  assert.deepEqual(changes, [true]);
  t.mock.timers.tick(5);
  assert.deepEqual(stuck, [slow]);
  assert.deepEqual(changes, [true, false]);
  c.stop();
});

test('forgetting a congested connection (it closed) resumes reading', (t) => {
  const { c, changes } = setup(t);
  const q = new Queue(500);
  c.note(q, 500);
  c.forget(q);
  c.forget(q);
  assert.deepEqual(changes, [true, false]);
  c.stop();
});
