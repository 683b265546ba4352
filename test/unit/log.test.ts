// Log lines: JSON for machines, readable on a terminal, WALCAST_LOG_FORMAT to force either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger, resolveLogFormat, type LogFormat } from '../../relay/log.ts';
import { loadConfig } from '../../relay/config.ts';

function logOnce(format: LogFormat, isTTY: boolean): string {
  const out = Object.assign(new PassThrough(), { isTTY });
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  createLogger('info', out, format).info({ slot: 'walcast' }, 'slot ready');
  return text;
}

test('json: one JSON object a line, with the fields', () => {
  const line = JSON.parse(logOnce('json', true)) as { msg: string; slot: string; level: number };
  assert.equal(line.msg, 'slot ready');
  assert.equal(line.slot, 'walcast');
});

test('pretty: a readable line with the level, the message and the fields', () => {
  const text = logOnce('pretty', false);
  assert.doesNotMatch(text, /^\{/);
  assert.match(text, /INFO.*slot ready/);
  assert.match(text, /slot: "walcast"/);
});

test('auto: pretty on a terminal, JSON otherwise', () => {
  assert.equal(resolveLogFormat('auto', true), 'pretty');
  assert.equal(resolveLogFormat('auto', false), 'json');
  assert.equal(resolveLogFormat('json', true), 'json');
  assert.doesNotMatch(logOnce('auto', true), /^\{/);
  assert.equal(JSON.parse(logOnce('auto', false)).msg, 'slot ready');
});

test('WALCAST_LOG_FORMAT takes pretty, json or auto', () => {
  assert.equal(loadConfig([], {}).logFormat, 'auto');
  assert.equal(loadConfig([], { WALCAST_LOG_FORMAT: 'json' }).logFormat, 'json');
  assert.equal(loadConfig(['--log-format', 'pretty'], {}).logFormat, 'pretty');
  assert.throws(() => loadConfig([], { WALCAST_LOG_FORMAT: 'xml' }), { code: 'config_invalid' });
});
