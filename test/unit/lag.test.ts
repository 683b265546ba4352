// relay/replication/lag.ts: lag in bytes and seconds from WAL samples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LagTracker } from '../../relay/replication/lag.ts';

test('caught up: no lag; behind: bytes now, seconds from when the WAL first passed the delivered position', () => {
  const t = new LagTracker();
  assert.deepEqual(t.observe(0, 100n, 100n), { bytes: 0, seconds: 0 });
  assert.deepEqual(t.observe(1000, 150n, 100n), { bytes: 50, seconds: 0 });
  assert.deepEqual(t.observe(2000, 180n, 100n), { bytes: 80, seconds: 1 });
  assert.deepEqual(t.observe(5000, 180n, 100n), { bytes: 80, seconds: 4 });
});

test('delivering past a sample drops it: the lag is the age of the oldest sample not yet reached', () => {
  const t = new LagTracker();
  t.observe(0, 100n, 100n);
  t.observe(1000, 150n, 100n);
  t.observe(2000, 200n, 100n);
  assert.deepEqual(t.observe(3000, 200n, 150n), { bytes: 50, seconds: 1 });
  assert.equal(t.sampleCount, 1);
  assert.deepEqual(t.observe(4000, 200n, 200n), { bytes: 0, seconds: 0 });
  assert.equal(t.sampleCount, 0);
});

test('the samples are bounded; the oldest go first', () => {
  const t = new LagTracker(3);
  for (let i = 1; i <= 10; i++) t.observe(i * 1000, BigInt(100 + i), 100n);
  assert.equal(t.sampleCount, 3);
  assert.deepEqual(t.observe(11_000, 111n, 100n), { bytes: 11, seconds: 2 });
});
