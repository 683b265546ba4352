// The registries in code and the tables in the docs must agree, both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { RELAY_ERRORS } from '../../relay/errors.ts';
import { ERROR_CODES } from '../../client/protocol.ts';
import { OPTIONS } from '../../relay/config.ts';

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

/** Codes in the first column of the markdown table that follows `heading`. */
function tableCodes(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(heading);
  assert.ok(start >= 0, `heading ${heading} exists`);
  const lines = markdown.slice(start).split('\n').slice(1);
  const codes: string[] = [];
  let inTable = false;
  for (const line of lines) {
    if (line.startsWith('|')) {
      inTable = true;
      const m = /^\|\s*`([a-z_]+)`\s*\|/.exec(line);
      if (m) codes.push(m[1]!);
    } else if (inTable) break;
  }
  return codes.sort();
}

test('every relay error code is documented in docs/errors.md, and every documented one exists', () => {
  assert.deepEqual(tableCodes(read('docs/errors.md'), '# Relay errors'), Object.keys(RELAY_ERRORS).sort());
});

test('every protocol error code is documented in docs/protocol.md, and every documented one exists', () => {
  assert.deepEqual(tableCodes(read('docs/protocol.md'), '## Error codes'), Object.keys(ERROR_CODES).sort());
});

test('docs/configuration.md lists every option with its flag', () => {
  const doc = read('docs/configuration.md');
  const start = doc.indexOf('# Configuration');
  assert.ok(start >= 0);
  const end = doc.indexOf('\n## ', start);
  const section = doc.slice(start, end < 0 ? undefined : end);
  const documented = [...section.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*`--([a-z-]+)`/gm)].map((m) => `${m[1]} --${m[2]}`);
  assert.deepEqual(documented.sort(), OPTIONS.map((o) => `${o.env} --${o.flag}`).sort());
});
