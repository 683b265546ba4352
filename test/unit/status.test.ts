// The status iterator (client/status.ts): changes in order, a bounded queue
// for a slow reader, and an end after which it is done.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_QUEUED, StatusQueue } from '../../client/status.ts';
import type { StatusEvent } from '../../client/events.ts';

const connecting = (attempt: number): StatusEvent => ({ status: 'connecting', attempt });

test('a waiting reader gets each change; an ended queue drains, then is done', async () => {
  const q = new StatusQueue(() => {});
  const first = q.next();
  q.push({ status: 'open' });
  assert.deepEqual(await first, { value: { status: 'open' }, done: false });
  q.push(connecting(1));
  q.push({ status: 'closed' });
  q.end();
  q.push(connecting(2));
  const seen: string[] = [];
  for await (const s of q) seen.push(s.status);
  assert.deepEqual(seen, ['connecting', 'closed']);
  assert.equal((await q.next()).done, true);
});

test('a reader that falls behind keeps only the newest changes', async () => {
  const q = new StatusQueue(() => {});
  for (let i = 0; i < MAX_QUEUED + 10; i++) q.push(connecting(i));
  q.end();
  const attempts: number[] = [];
  for await (const s of q) if (s.status === 'connecting') attempts.push(s.attempt);
  assert.equal(attempts.length, MAX_QUEUED);
  assert.equal(attempts[0], 10);
});

test('breaking out of the loop unregisters the reader; end() finishes a pending next()', async () => {
  let returned = 0;
  const q = new StatusQueue(() => returned++);
  q.push({ status: 'open' });
  q.push(connecting(1));
  for await (const s of q) {
    assert.equal(s.status, 'open');
    break;
  }
  assert.equal(returned, 1);
  assert.equal((await q.next()).done, true, 'what was queued is dropped');
  const idle = new StatusQueue(() => {});
  const pending = idle.next();
  idle.end();
  assert.equal((await pending).done, true);
});
