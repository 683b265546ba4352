import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLsn, lsnToHex16, parseLsn } from '../../relay/replication/lsn.ts';
import { formatPosition, parsePosition, snapshotPosition, streamPoint } from '../../relay/replication/position.ts';

test('LSNs parse from and format to PostgreSQL text form', () => {
  assert.equal(parseLsn('16/B374D848'), 0x16b374d848n);
  assert.equal(formatLsn(0x16b374d848n), '16/B374D848');
  assert.equal(formatLsn(0n), '0/0');
  assert.equal(parseLsn('FFFFFFFF/FFFFFFFF'), 2n ** 64n - 1n);
  assert.throws(() => parseLsn('16-B3'), TypeError);
});

test('positions sort by string comparison in commit order, then by index', () => {
  const e = 'k3x9';
  const ps = [
    formatPosition(0x1_0000_0000n, 1, e),
    formatPosition(0x9n, 2, e),
    formatPosition(0xan, 1, e),
    formatPosition(0x9n, 10, e),
    formatPosition(0x9n, 1, e),
    streamPoint(0x9n, e),
    snapshotPosition(formatPosition(0x9n, 2, e), 7),
  ];
  assert.deepEqual([...ps].sort(), [
    streamPoint(0x9n, e),
    formatPosition(0x9n, 1, e),
    formatPosition(0x9n, 2, e),
    snapshotPosition(formatPosition(0x9n, 2, e), 7),
    formatPosition(0x9n, 10, e),
    formatPosition(0xan, 1, e),
    formatPosition(0x1_0000_0000n, 1, e),
  ]);
  assert.equal(lsnToHex16(0xabn), '00000000000000AB');
});

test('positions round-trip, carry their epoch, and reject garbage', () => {
  assert.deepEqual(parsePosition(formatPosition(0x16b374d848n, 300, 'ab12')), {
    commitLsn: 0x16b374d848n,
    index: 300,
    epoch: 'ab12',
  });
  assert.deepEqual(parsePosition(snapshotPosition(streamPoint(5n, 'e1'), 3)), {
    commitLsn: 5n,
    index: 0,
    epoch: 'e1',
    snapshotRow: 3,
  });
  assert.equal(parsePosition('nope'), undefined);
  assert.equal(parsePosition('0000000000000001-0000000G-e1'), undefined);
  assert.equal(parsePosition('0000000000000001-00000001'), undefined);
});
