// A relay SIGKILLed with a standby: an MQTT client with a persistent session
// and a QoS 1 subscription reconnects (mqtt.js, automatically) to the same
// MQTT port, now served by the promoted standby, and loses nothing: its
// session (filters and acknowledged position) is in walcast.mqtt_sessions
// and the window is rebuilt from the slot. QoS 1 is at least once: rows
// acknowledged in the last second before the kill may come twice. On a
// failure the message lists the missing rows, which of them came only as
// retained messages (the session was not resumed from the window), and the
// standby's log lines about the slot and the resume.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createTestDatabase, uniqueName, type TestDatabase } from '../helpers/postgres.ts';
import { spawnRelay, type RelayProcess } from '../helpers/process.ts';
import { waitFor } from '../helpers/relay.ts';
import { MqttTestClient } from '../helpers/mqtt.ts';
import type { Relay } from '../../relay/relay.ts';

let db: TestDatabase;
const procs: RelayProcess[] = [];
let client: MqttTestClient | undefined;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  client?.client.end(true);
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await db?.drop();
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

test('SIGKILL with a standby: a QoS 1 subscriber with a persistent session loses nothing', async () => {
  const slot = uniqueName('mqtt_standby');
  const port = await freePort();
  const spawn = async () => {
    const p = await spawnRelay(
      ['--database-url', db.url, '--slot', slot, '--example', 'true', '--mqtt-port', String(port)],
      { WALCAST_LOG_LEVEL: 'info' },
    );
    procs.push(p);
    return p;
  };
  const active = await spawn();
  const standby = await spawn();
  assert.match(standby.output(), /walcast is on standby/);
  const target = { mqttPort: port, mqttWsUrl: '' } as unknown as Relay;
  client = await MqttTestClient.connect(target, 'tcp', 5, {
    clientId: 'failover-device',
    clean: false,
    reconnectPeriod: 200,
    properties: { sessionExpiryInterval: 600 },
  });
  await client.subscribe('chat_messages/failover-mqtt/#', 1);
  let inserting = true;
  const inserter = (async () => {
    for (let i = 0; inserting; i++) {
      await db.query(`insert into chat_messages (channel_id, sender, body) values ('failover-mqtt', 'load', $1)`, [
        String(i),
      ]);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const live = () => client!.received.filter((m) => !m.retain).map((m) => JSON.parse(m.payload).body as string);
  try {
    // Killed soon after the first rows, most often before the relay wrote the
    // session's first acknowledged position (every FLUSH_MS): the session
    // must resume from where its subscription started, not from nothing.
    await waitFor(() => live().length >= 20, 20_000, '20 rows before the kill');
    active.child.kill('SIGKILL');
    await waitFor(() => /standby promoted/.test(standby.output()), 30_000, 'the standby to take over');
    await waitFor(
      () => client!.client.connected && client!.sessionPresentAfterReconnect(),
      30_000,
      'the client to reconnect with its session',
    );
    const seenAtReconnect = live().length;
    await waitFor(() => live().length >= seenAtReconnect + 50, 20_000, '50 rows after the reconnect');
  } finally {
    inserting = false;
    await inserter;
  }
  const committed = (
    await db.query<{ body: string }>(`select body from chat_messages where channel_id = 'failover-mqtt' order by id`)
  ).map((r) => r.body);
  await waitFor(() => new Set(live()).size >= committed.length, 30_000, `all ${committed.length} rows`).catch(
    (err: Error) => {
      const got = new Set(live());
      const retained = new Set(client!.received.filter((m) => m.retain).map((m) => JSON.parse(m.payload).body));
      const lines = standby
        .output()
        .split('\n')
        .filter((l) => /resumed|slot|promoted|rebuild|epoch|recreat|invalid|recovered|warn|error/i.test(l));
      throw new Error(
        `${err.message}; missing ${committed.filter((b) => !got.has(b)).join(',')}; ` +
          `of them retained: ${committed.filter((b) => !got.has(b) && retained.has(b)).length}; standby: ${lines.join(' | ')}`,
      );
    },
  );
  const firsts = [...new Set(live())];
  assert.deepEqual(firsts, committed, 'every committed row, first seen in commit order');
  standby.child.kill('SIGTERM');
});
