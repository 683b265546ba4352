// Where a persistent MQTT session resumes: the client's `since` (CONNECT user
// property) when it is a later stream position of the current epoch, not past
// the relay's position; else the stored position.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resumePoint } from '../../relay/mqtt/resume.ts';

const at = (lsn: number, index = 0, epoch = 'e1') =>
  `${lsn.toString(16).toUpperCase().padStart(16, '0')}-${index.toString(16).toUpperCase().padStart(8, '0')}-${epoch}`;
const current = at(0x500);

test('a later position of the current epoch wins over the stored one', () => {
  assert.equal(resumePoint(at(0x100), at(0x200, 3), current), at(0x200, 3));
  assert.equal(resumePoint(null, at(0x200), current), at(0x200));
  assert.equal(resumePoint(at(0x100), ['junk', at(0x300)], current), at(0x300), 'the last of repeated properties');
});

test('the stored position stays for an earlier, equal, future, foreign or malformed since', () => {
  const stored = at(0x200);
  for (const since of [at(0x100), stored, at(0x600), at(0x300, 0, 'e2'), `${at(0x300)}~4`, 'nope', 42, undefined])
    assert.equal(resumePoint(stored, since, current), stored, String(since));
});
