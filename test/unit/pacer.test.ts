// The re-read's pacing (replication/pacer.ts) on a fake clock: the paced
// stream is held back once its work passes its share of the time, released
// when the share is restored, never held while pacing is off, and released
// at once when pacing stops (the hand-over, or the temporary slot failing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RebuildPacer } from '../../relay/replication/pacer.ts';

function fake(share = 0.5, sliceMs = 20) {
  let now = 0;
  const holds: boolean[] = [];
  const timers: { at: number; fn: () => void; cancelled: boolean }[] = [];
  const pacer = new RebuildPacer({
    hold: (on) => holds.push(on),
    share,
    sliceMs,
    now: () => now,
    after: (ms, fn) => {
      const t = { at: now + ms, fn, cancelled: false };
      timers.push(t);
      return () => {
        t.cancelled = true;
      };
    },
  });
  /** Advance the clock by `ms`, firing due timers. */
  const advance = (ms: number) => {
    now += ms;
    for (const t of timers.splice(0)) {
      if (t.cancelled) continue;
      if (t.at <= now) t.fn();
      else timers.push(t);
    }
  };
  /** `ms` of the stream's work: the clock moves while it runs, then the pacer is told. */
  const work = (ms: number) => {
    now += ms;
    pacer.spent(ms);
  };
  return { pacer, holds, advance, work, pending: () => timers.filter((t) => !t.cancelled).length };
}

test('off: work is never held back', () => {
  const f = fake();
  for (let i = 0; i < 100; i++) f.work(5);
  assert.deepEqual(f.holds, []);
  assert.equal(f.pacer.holding, false);
});

test('a stream that works flat out is held for as long as it worked over its share, then resumed', () => {
  const f = fake(0.5, 20);
  f.pacer.start();
  f.work(8);
  assert.deepEqual(f.holds, [], 'within its 10 ms of the 20 ms window');
  f.work(8); // 16 ms of work in 16 ms: over 50 %
  assert.deepEqual(f.holds, [true]);
  assert.equal(f.pacer.holding, true);
  f.advance(15);
  assert.deepEqual(f.holds, [true], 'still held: 16 ms of work needs 32 ms of time');
  f.advance(1);
  assert.deepEqual(f.holds, [true, false]);
  assert.equal(f.pacer.holding, false);
});

test('work under its share is never held, however long it goes on', () => {
  const f = fake(0.5, 20);
  f.pacer.start();
  for (let i = 0; i < 1000; i++) {
    f.work(2);
    f.advance(3);
  }
  assert.deepEqual(f.holds, []);
});

test('over time the paced stream gets about its share, no less', () => {
  const f = fake(0.5, 20);
  f.pacer.start();
  let worked = 0;
  let elapsed = 0;
  for (let i = 0; i < 10_000; i++) {
    if (f.pacer.holding) {
      f.advance(1);
      elapsed += 1;
    } else {
      f.work(3);
      worked += 3;
      elapsed += 3;
    }
  }
  const share = worked / elapsed;
  assert.ok(share > 0.45 && share <= 0.55, `share ${share}`);
});

test('stopping releases a held stream at once, and no timer fires later', () => {
  const f = fake(0.5, 20);
  f.pacer.start();
  f.work(30);
  assert.deepEqual(f.holds, [true]);
  f.pacer.stop();
  assert.deepEqual(f.holds, [true, false]);
  assert.equal(f.pending(), 0);
  f.advance(1000);
  f.work(100);
  assert.deepEqual(f.holds, [true, false], 'not paced any more');
});
