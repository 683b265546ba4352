// The hand-over from the temporary slot to the permanent one
// (replication/handover.ts) with the real router: whatever the interleaving
// of the two streams, whenever subscriptions join and whether or not the
// temporary stream fails, every subscription gets every event after its
// start exactly once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Handover } from '../../relay/replication/handover.ts';
import { Router, type Sink } from '../../relay/hub/router.ts';
import { formatPosition, maxPosition, streamPoint } from '../../relay/replication/position.ts';

const EPOCH = 'e1';

class Collect implements Sink {
  positions: string[] = [];
  constructor(readonly from: string) {}
  send(_frame: string | Buffer, event?: { position: string }): void {
    this.positions.push(event!.position);
  }
}

/** A seeded generator: the same interleavings on every run. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
}

interface Events {
  /** Each event's position; transaction i commits at LSN 100·(i+1), its end 10 bytes later. */
  positions: string[];
  lsn: (i: number) => bigint;
}

function events(n: number): Events {
  const lsn = (i: number) => BigInt(100 * (i + 1));
  return { positions: Array.from({ length: n }, (_, i) => formatPosition(lsn(i), 1, EPOCH)), lsn };
}

/** One run: the permanent stream from event 0, the temporary one from `tempFrom`; subscriptions join at random. */
function run(seed: number, n: number, tempFrom: number, failAt?: number) {
  const random = rng(seed);
  const { positions, lsn } = events(n);
  let done = false;
  const handover = new Handover(lsn(tempFrom) - 50n, EPOCH, () => {
    done = true;
  });
  const router = new Router();
  router.frontier = () => handover.frontier;
  let p = 0; // next event of the permanent stream
  let t = tempFrom; // next event of the temporary stream
  let pLast = streamPoint(0n, EPOCH);
  const delivered: string[] = []; // the recovery window: the permanent stream only
  const subs: Collect[] = [];
  const position = () => (handover.frontier ? maxPosition(pLast, handover.frontier) : pLast);
  while (p < n) {
    const r = random();
    if (r < 0.1) {
      // A new subscription starts where the relay says.
      const s = new Collect(position());
      router.subscribe('c', s, { tables: null, after: s.from });
      subs.push(s);
    } else if (r < 0.15 && Math.max(p, t) > 0) {
      // A resume from a position either stream delivered: the window's events after it, then the router.
      const since = positions[Math.floor(random() * Math.max(p, t))]!;
      const s = new Collect(since);
      router.subscribe('c', s, { tables: null, after: since });
      for (const pos of delivered) if (pos > since) s.positions.push(pos);
      subs.push(s);
    } else if (r < 0.55 && t < n && !done) {
      if (t === failAt) handover.stall();
      const via = handover.temporary(positions[t]!);
      if (via !== 'skip') router.dispatch('c', { table: 'x', position: positions[t]!, xid: 1, frame: 'f', via });
      t++;
    } else {
      const pos = positions[p]!;
      const via = handover.permanent(pos);
      delivered.push(pos);
      router.dispatch('c', { table: 'x', position: pos, xid: 1, frame: 'f', via });
      pLast = pos;
      handover.permanentReached(lsn(p) + 10n);
      p++;
    }
  }
  return { subs, positions, done, handover };
}

test('every subscription gets every event after its start once, in order, across the hand-over', () => {
  let checked = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const { subs, positions, done } = run(seed, 60, 20 + (seed % 15), seed % 4 === 0 ? 30 + (seed % 20) : undefined);
    assert.ok(done, `seed ${seed}: handed over once the permanent stream caught up`);
    for (const s of subs) {
      const want = positions.filter((pos) => pos > s.from);
      assert.deepEqual(s.positions, want, `seed ${seed}: subscription from ${s.from}`);
      checked++;
    }
  }
  assert.ok(checked > 1000, `${checked} subscriptions checked`);
});

test('a subscription made while the temporary stream serves starts at its frontier, ahead of the re-read', () => {
  const { positions, lsn } = events(10);
  const handover = new Handover(lsn(5) - 50n, EPOCH, () => {});
  assert.equal(handover.temporary(positions[5]!), 'early');
  assert.equal(handover.temporary(positions[6]!), 'early');
  assert.equal(handover.frontier, positions[6]);
  assert.equal(handover.permanent(positions[0]!), 'window', 're-read history goes to window subscriptions only');
  assert.equal(handover.permanent(positions[6]!), 'window', 'already sent to live ones');
  assert.equal(handover.state, 'serving');
  assert.equal(handover.permanent(positions[7]!), undefined, 'past the frontier: everyone');
  assert.equal(handover.state, 'done');
  assert.equal(handover.frontier, undefined);
  assert.equal(handover.temporary(positions[8]!), 'skip', 'the temporary stream is done');
});

test('an idle database hands over when the permanent stream passes the temporary slot start', () => {
  let frontier: string | undefined;
  const handover = new Handover(1000n, EPOCH, (f) => {
    frontier = f;
  });
  handover.permanentReached(900n);
  assert.equal(handover.state, 'serving');
  handover.permanentReached(1000n);
  assert.equal(
    handover.state,
    'serving',
    'at the start point itself: a commit there may still come from the temporary slot',
  );
  handover.permanentReached(1001n);
  assert.equal(handover.state, 'done');
  assert.equal(frontier, streamPoint(1000n, EPOCH));
});

test('a temporary stream that failed stalls live rows until the permanent stream catches up', () => {
  const { positions, lsn } = events(6);
  const handover = new Handover(lsn(2) - 50n, EPOCH, () => {});
  handover.temporary(positions[2]!);
  handover.stall();
  assert.equal(handover.serving, false);
  assert.equal(handover.temporary(positions[3]!), 'skip');
  assert.equal(handover.permanent(positions[2]!), 'window');
  assert.equal(handover.permanent(positions[3]!), undefined);
  assert.equal(handover.state, 'done');
});
