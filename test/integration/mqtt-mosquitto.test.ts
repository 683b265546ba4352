// Debian's mosquitto_sub and mosquitto_pub (MQTT 3.1.1 and 5) against the
// relay's MQTT port: a standard client sees the current row as a retained
// message, then live changes; mosquitto_pub -r writes the row (psql sees
// it), -r with an empty message deletes it, and a plain publish is a
// message that reaches the subscriber and leaves the table alone.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const run = promisify(execFile);
const fx = relayFixture();
let relay: Relay | undefined;

before(async () => {
  if (!existsSync('/usr/bin/mosquitto_sub') || !existsSync('/usr/bin/mosquitto_pub')) {
    throw new Error(
      "mosquitto_sub / mosquitto_pub not found: the MQTT tests need Debian's mosquitto-clients (apt-get install -y mosquitto-clients; npm test and .ci/run install it)",
    );
  }
});

/** mosquitto_sub printing "<retain> <topic> <payload>" lines until `count` messages came. */
function sub(version: 'mqttv311' | 'mqttv5', filter: string, count: number): { lines: string[]; done: Promise<void> } {
  const child = spawn('mosquitto_sub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(relay!.mqttPort),
    '-V',
    version,
    '-q',
    '1',
    '-t',
    filter,
    '-C',
    String(count),
    '-F',
    '%r %t %p',
    '-W',
    '20',
  ]);
  const lines: string[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  // 'close', not 'exit': the last line may still be in the pipe when the process exits.
  const done = new Promise<void>((resolve, reject) =>
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_sub exited ${code}`)))),
  );
  return { lines, done };
}

/** mosquitto_pub at QoS 1 (it exits after the PUBACK); a null message is sent with -n. */
const pub = (version: 'mqttv311' | 'mqttv5', topic: string, message: string | null, ...extra: string[]) =>
  run('mosquitto_pub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(relay!.mqttPort),
    '-V',
    version,
    '-q',
    '1',
    '-t',
    topic,
    ...(message === null ? ['-n'] : ['-m', message]),
    ...extra,
  ]);

for (const version of ['mqttv311', 'mqttv5'] as const) {
  test(`${version}: mosquitto_sub gets the current row retained, then live changes; mosquitto_pub -r writes and deletes rows`, async () => {
    relay ??= await fx.relay();
    const channel = `m-${version}`;
    await fx.db.query(`insert into presence (channel_id, user_id, name) values ($1, 'ada', 'Ada')`, [channel]);
    const s = sub(version, `presence/${channel}/#`, 4);
    await waitFor(() => s.lines.length >= 1, 10_000, 'the retained row');
    await pub(version, `presence/${channel}/bob`, JSON.stringify({ name: 'Bob' }), '-r');
    assert.deepEqual(
      await fx.db.query(`select name from presence where channel_id = $1 and user_id = 'bob'`, [channel]),
      [{ name: 'Bob' }],
    );
    await pub(version, `presence/${channel}/bob`, 'typing');
    await pub(version, `presence/${channel}/bob`, null, '-r');
    await s.done;
    const rows = s.lines.map((l) => {
      const [retain, topic, ...payload] = l.split(' ');
      const text = payload.join(' ');
      return [retain, topic, text.startsWith('{') ? JSON.parse(text).name : text];
    });
    assert.deepEqual(rows, [
      ['1', `presence/${channel}/ada`, 'Ada'],
      ['0', `presence/${channel}/bob`, 'Bob'],
      ['0', `presence/${channel}/bob`, 'typing'],
      ['0', `presence/${channel}/bob`, ''],
    ]);
    assert.deepEqual(await fx.db.query(`select user_id, name from presence where channel_id = $1`, [channel]), [
      { user_id: 'ada', name: 'Ada' },
    ]);
  });
}
