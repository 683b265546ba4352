// The send queue's hard bound with room for large events (relay/ws/send-bound.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SendBound } from '../../relay/ws/send-bound.ts';

const MiB = 1024 * 1024;

test('small frames are admitted up to the bound, and not past it', () => {
  const b = new SendBound(MiB, 16 * MiB);
  assert.equal(b.admit(MiB - 10, 10), true);
  assert.equal(b.admit(MiB, 1), false);
});

test('a frame larger than the bound is admitted to a queue within the bound, with what follows it', () => {
  const b = new SendBound(MiB, 16 * MiB);
  assert.equal(b.admit(100, 5 * MiB), true, 'a 5 MiB event to a reading client');
  assert.equal(b.admit(5 * MiB + 100, 1000), true, 'a small event right after it');
  assert.equal(b.admit(5 * MiB + 1100, 6 * MiB), true, 'a second large event of a replay');
  assert.equal(b.admit(11 * MiB, 7 * MiB), false, 'but never past the bound plus the largest event');
});

test('the room for large events ends once the queue drained under the bound', () => {
  const b = new SendBound(MiB, 16 * MiB);
  assert.equal(b.admit(0, 3 * MiB), true);
  assert.equal(b.admit(MiB / 2, MiB), false, 'drained: back to the plain bound for small frames');
  assert.equal(b.admit(2 * MiB, 3 * MiB), false, 'a large frame to a queue over the bound is an overflow');
  assert.equal(b.admit(0, 17 * MiB + 1), false, 'nothing past the bound plus the room');
});
