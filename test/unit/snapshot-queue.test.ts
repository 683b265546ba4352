// SnapshotQueue: the admission of snapshot reads, driven with promises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotBusy, SnapshotDropped, SnapshotQueue, type SnapshotTicket } from '../../relay/db/snapshot-queue.ts';

/** A read that finishes when told to. */
function gate(): { read: () => Promise<string>; open: (v: string) => void } {
  let open!: (v: string) => void;
  const p = new Promise<string>((r) => (open = r));
  return { read: () => p, open };
}

const ticket = (owner: object, subject: string | null = null, alive = () => true): SnapshotTicket => ({
  owner,
  subject,
  alive,
});

test('per connection, per subject and queue limits refuse at once; counts come back when reads end', async () => {
  const q = new SnapshotQueue({ perConnection: 1, perSubject: 2, queue: 1, concurrency: 2 });
  const [a, b, c, d] = [{}, {}, {}, {}];
  const g1 = gate();
  const g2 = gate();
  const r1 = q.run(ticket(a, 'x'), g1.read);
  await assert.rejects(
    q.run(ticket(a, 'y'), async () => 'never'),
    SnapshotBusy,
  ); // a has one
  const r2 = q.run(ticket(b, 'x'), g2.read);
  await assert.rejects(
    q.run(ticket(c, 'x'), async () => 'never'),
    /WALCAST_SNAPSHOTS_PER_SUBJECT/,
  );
  const r3 = q.run(ticket(c, 'z'), async () => 'third'); // waits: both connections busy
  assert.equal(q.waitingCount, 1);
  await assert.rejects(
    q.run(ticket(d, 'w'), async () => 'never'),
    /WALCAST_SNAPSHOT_QUEUE/,
  );
  g1.open('first');
  assert.equal(await r1, 'first');
  assert.equal(await r3, 'third');
  g2.open('second');
  assert.equal(await r2, 'second');
  assert.equal(await q.run(ticket(a, 'x'), async () => 'again'), 'again');
  assert.deepEqual(q.counters, { started: 4, dropped: 0, refused: 3 });
});

test('a waiting read whose client went away is dropped without running', async () => {
  const q = new SnapshotQueue({ perConnection: 5, perSubject: 5, queue: 5, concurrency: 1 });
  const g = gate();
  const first = q.run(ticket({}), g.read);
  let alive = true;
  let ran = false;
  const gone = q.run(
    ticket({}, null, () => alive),
    async () => {
      ran = true;
      return 'x';
    },
  );
  const kept = q.run(ticket({}), async () => 'kept');
  alive = false;
  g.open('first');
  await first;
  await assert.rejects(gone, SnapshotDropped);
  assert.equal(await kept, 'kept');
  assert.equal(ran, false);
  assert.equal(q.counters.dropped, 1);
});

test('a read that throws frees its place', async () => {
  const q = new SnapshotQueue({ perConnection: 1, perSubject: 1, queue: 0, concurrency: 1 });
  const owner = {};
  await assert.rejects(
    q.run(ticket(owner, 's'), async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(await q.run(ticket(owner, 's'), async () => 'ok'), 'ok');
  assert.equal(q.runningCount, 0);
});
