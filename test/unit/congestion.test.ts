// Flow control bookkeeping (relay/ws/congestion.ts): when reading pauses and
// resumes, and when a congested connection becomes a slow consumer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Congestion } from '../../relay/ws/congestion.ts';

class Queue {
  constructor(public bytes = 0) {}
  queuedBytes(): number {
    return this.bytes;
  }
}

function setup(graceMs = 10_000) {
  const changes: boolean[] = [];
  const stuck: Queue[] = [];
  const c = new Congestion<Queue>({ softBytes: 100, graceMs, checkMs: 5, onChange: (x) => changes.push(x), onStuck: (q) => stuck.push(q) });
  return { c, changes, stuck };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the first congested queue pauses; the last one to drain resumes', async () => {
  const { c, changes, stuck } = setup();
  const a = new Queue(150);
  const b = new Queue(150);
  c.note(a, 50);
  assert.deepEqual(changes, [], 'under the soft bound: nothing');
  c.note(a, 150);
  c.note(b, 150);
  c.note(a, 160);
  assert.deepEqual(changes, [true], 'one pause for any number of congested queues');
  a.bytes = 10;
  await sleep(30);
  assert.deepEqual(changes, [true], 'b still holds it back');
  b.bytes = 0;
  await sleep(30);
  assert.deepEqual(changes, [true, false]);
  assert.equal(c.congested, false);
  assert.deepEqual(stuck, []);
  c.stop();
});

test('a queue congested past the grace period is reported stuck, and reading resumes', async () => {
  const { c, changes, stuck } = setup(40);
  const slow = new Queue(500);
  c.note(slow, 500);
  await sleep(120);
  assert.deepEqual(stuck, [slow]);
  assert.deepEqual(changes, [true, false]);
  c.stop();
});

test('forgetting a congested connection (it closed) resumes reading', () => {
  const { c, changes } = setup();
  const q = new Queue(500);
  c.note(q, 500);
  c.forget(q);
  c.forget(q);
  assert.deepEqual(changes, [true, false]);
  c.stop();
});
