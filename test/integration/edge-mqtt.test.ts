// The MQTT door on an edge relay (in this process), beside a slot relay with
// the JetStream sink, on a real nats-server: mqtt.js (3.1.1 and 5, TCP and
// WebSocket) and mosquitto_sub get the current rows retained, then live rows
// with the positions the slot relay's MQTT clients get, with no gap and no
// repeat between the two; a DELETE is a zero-length payload; a retained
// publish writes the row through WALCAST_PUBLISH_DATABASE_URL and is refused
// without it; a retain=0 message published on one edge (a real `walcast edge` process) reaches the
// subscribers of another edge and of the slot relay, with QoS 1, and the other way round; tokens are checked as on the slot relay; a persistent session
// moves from one edge to another; /readyz and /metrics show the door.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { edgeFixture, mqttPortOf, spawnEdge } from '../helpers/edge.ts';
import type { RelayProcess } from '../helpers/process.ts';
import { MqttTestClient, mqttClients, type Received } from '../helpers/mqtt.ts';
import { PUBLISH_REFUSAL, type EdgeRelay } from '../../relay/edge/edge.ts';
import type { Relay, RelayConfig } from '../../relay/relay.ts';

const fx = relayFixture();
const { db } = fx;
const connect = mqttClients();
const deployment = edgeFixture(fx);
const edge = (overrides: Partial<RelayConfig> = {}): Promise<EdgeRelay> => deployment.edge(overrides);
const slotRelay = (): Relay => deployment.relay;

const live = (msgs: Received[]) => msgs.filter((m) => !m.retain);
const bodyOf = (m: Received) =>
  m.payload === '' ? '' : String(JSON.parse(m.payload).body ?? JSON.parse(m.payload).name);

test('MQTT 5 over TCP on an edge: current rows retained, then insert, update and delete live, with the slot relay’s topics, payloads and positions', async () => {
  const e = await edge();
  assert.equal(typeof e.mqttPort, 'number');
  await db.query(`insert into presence (channel_id, user_id, name) values ('e1', 'ada', 'Ada'), ('e1', 'bob', 'Bob')`);
  const onEdge = await connect(e, 'tcp', 5);
  const onSlot = await connect(slotRelay(), 'tcp', 5);
  for (const c of [onEdge, onSlot]) assert.deepEqual(await c.subscribe('presence/e1/+'), [1]);
  const retained = await onEdge.waitFor((m) => m.length >= 2 && m, 'two retained rows');
  assert.deepEqual(retained.map((m) => [m.topic, m.retain, m.user.op, bodyOf(m)]).sort(), [
    ['presence/e1/ada', true, 'snapshot', 'Ada'],
    ['presence/e1/bob', true, 'snapshot', 'Bob'],
  ]);
  await db.query(`insert into presence (channel_id, user_id, name) values ('e1', 'cy', 'Cy')`);
  await db.query(`update presence set name = 'Ada L' where user_id = 'ada' and channel_id = 'e1'`);
  await db.query(`delete from presence where user_id = 'bob' and channel_id = 'e1'`);
  await db.query(`insert into presence (channel_id, user_id, name) values ('e1', 'mark', 'marker')`);
  const fromEdge = live(await onEdge.until('presence/e1/mark', 'marker'));
  const fromSlot = live(await onSlot.until('presence/e1/mark', 'marker'));
  assert.deepEqual(
    fromEdge.map((m) => [m.topic, m.user.op, bodyOf(m)]),
    [
      ['presence/e1/cy', 'insert', 'Cy'],
      ['presence/e1/ada', 'update', 'Ada L'],
      ['presence/e1/bob', 'delete', ''],
      ['presence/e1/mark', 'insert', 'marker'],
    ],
  );
  const shape = (m: Received) => [m.topic, m.payload, m.qos, m.user.op, m.user.position, m.user.commit_time];
  assert.deepEqual(
    fromEdge.map(shape),
    fromSlot.map(shape),
    'the same messages, positions included, as the slot relay',
  );
  // The deleted row is no longer a retained message for a new subscriber.
  const later = await connect(e, 'ws', 5);
  await later.subscribe('presence/e1/+');
  const now = await later.waitFor((m) => m.length >= 3 && m, 'three retained rows');
  assert.deepEqual(now.map((m) => m.topic).sort(), ['presence/e1/ada', 'presence/e1/cy', 'presence/e1/mark']);
});

test('MQTT 3.1.1 over WebSocket at /mqtt on an edge: live rows of <table>/<channel>/#', async () => {
  const e = await edge();
  const c = await connect(e, 'ws', 4);
  assert.deepEqual(await c.subscribe('chat_messages/e2/#', 1), [1]);
  for (let i = 0; i < 10; i++)
    await db.query(`insert into chat_messages (channel_id, sender, body) values ('e2', 'a', $1)`, [`m${i}`]);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('e2', 'a', 'marker')`);
  const got = await c.waitFor((m) => m.some((x) => x.payload.includes('marker')) && m, 'the marker row');
  assert.deepEqual(got.map(bodyOf), [...Array.from({ length: 10 }, (_, i) => `m${i}`), 'marker']);
  assert.ok(got.every((m) => /^chat_messages\/e2\/\d+$/.test(m.topic) && !m.retain && m.qos === 1));
});

test('subscribing on an edge under steady inserts: every row once, the retained ones then the live ones, in commit order', async () => {
  const e = await edge();
  let running = true;
  let n = 0;
  const loop = (async () => {
    for (; running; n++) {
      await db.query(`insert into chat_messages (channel_id, sender, body) values ('e3', 'load', $1)`, [String(n)]);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await waitFor(() => n >= 50, 10_000, '50 rows before the subscription');
  const c = await connect(e, 'tcp', 5);
  await c.subscribe('chat_messages/e3/#', 1);
  const at = n;
  await waitFor(() => n >= at + 100, 10_000, '100 rows after it');
  running = false;
  await loop;
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('e3', 'load', 'marker')`);
  const got = await c.until(`chat_messages/e3/${await lastId('e3')}`, 'marker');
  const committed = (
    await db.query<{ body: string }>(`select body from chat_messages where channel_id = 'e3' order by id`)
  ).map((r) => r.body);
  assert.ok(got.some((m) => m.retain) && got.some((m) => !m.retain), 'some rows retained, some live');
  const firstLive = got.findIndex((m) => !m.retain);
  assert.ok(
    got.slice(firstLive).every((m) => !m.retain),
    'every retained row before the live ones',
  );
  assert.deepEqual(got.map(bodyOf), committed, 'no gap, no repeat');
});

test('an edge behind its stream: rows the retained read already has are not sent again when the stream brings them', async () => {
  const e = await edge();
  const c = await connect(e, 'tcp', 5);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('e8', 'a', 'old')`);
  await c.subscribe('chat_messages/e8/#', 1);
  await c.waitFor((m) => m.length >= 1 && m, 'the retained row');
  // The edge stops routing: the rows below are committed (a new read sees them) but not yet routed.
  e.internals.source.pause();
  for (let i = 0; i < 5; i++)
    await db.query(`insert into chat_messages (channel_id, sender, body) values ('e8', 'a', $1)`, [`r${i}`]);
  const late = await connect(e, 'tcp', 5);
  await late.subscribe('chat_messages/e8/#', 1);
  await late.waitFor((m) => m.length >= 6 && m, 'six retained rows');
  e.internals.source.resume();
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('e8', 'a', 'marker')`);
  const got = await late.until(`chat_messages/e8/${await lastId('e8')}`, 'marker');
  assert.deepEqual(
    got.map((m) => [bodyOf(m), m.retain]),
    [...['old', 'r0', 'r1', 'r2', 'r3', 'r4'].map((b) => [b, true]), ['marker', false]],
  );
  // The client subscribed before the pause gets them live, once.
  const early = await c.until(`chat_messages/e8/${await lastId('e8')}`, 'marker');
  assert.deepEqual(early.map(bodyOf), ['old', 'r0', 'r1', 'r2', 'r3', 'r4', 'marker']);
});

async function lastId(channel: string): Promise<string> {
  const [row] = await db.query<{ id: string }>(`select max(id)::text as id from chat_messages where channel_id = $1`, [
    channel,
  ]);
  return row!.id;
}

test('a retained publish through an edge writes the row in the primary; without a publish URL it is refused with 0x87 and why', async () => {
  const writing = await edge({ publishDatabaseUrl: db.url });
  const sub = await connect(writing, 'tcp', 5);
  await sub.subscribe('presence/e4/#');
  const c = await connect(writing, 'tcp', 5);
  const ok = await c.ack('presence/e4/u-1', JSON.stringify({ name: 'Grace' }), { retain: true });
  assert.equal(ok.code, 0);
  // PUBACK after the commit: the row is there now.
  assert.deepEqual(await db.query(`select name from presence where channel_id = 'e4' and user_id = 'u-1'`), [
    { name: 'Grace' },
  ]);
  const back = await sub.until('presence/e4/u-1', 'Grace');
  assert.equal(back.at(-1)!.user.op, 'insert', 'the row comes back through the slot, the stream and the edge');

  // retain=0 is a message through the WAL, and back on the change stream: the slot relay's and the edge's
  // subscribers get it (once: checked against a marker row sent after it).
  const onSlot = await connect(slotRelay(), 'tcp', 5);
  await onSlot.subscribe('presence/e4/#');
  assert.equal((await c.ack('presence/e4/note', 'just a message')).code, 0);
  await db.query(`insert into presence (channel_id, user_id, name) values ('e4', 'mark', 'marker')`);
  for (const got of [await onSlot.until('presence/e4/mark', 'marker'), await sub.until('presence/e4/mark', 'marker')])
    assert.deepEqual(
      got.filter((m) => m.topic === 'presence/e4/note').map((m) => m.payload),
      ['just a message'],
    );

  const readOnly = await edge();
  const refused = await connect(readOnly, 'tcp', 5, { clientId: 'keeps', properties: { sessionExpiryInterval: 600 } });
  const no = await refused.ack('presence/e4/u-2', JSON.stringify({ name: 'Nope' }), { retain: true });
  assert.equal(no.code, 0x87);
  assert.equal(no.reason, `publishing_disabled: ${PUBLISH_REFUSAL}`);
  assert.deepEqual(await db.query(`select name from presence where channel_id = 'e4' and user_id = 'u-2'`), []);
  const plain = await refused.ack('alerts/e4', 'hello');
  assert.equal(plain.code, 0x87, 'a message is refused too');
  // No database to keep a session in: the CONNACK says it is not kept.
  const connack = refused.packets.find((p) => p.cmd === 'connack') as {
    properties?: { sessionExpiryInterval?: number };
  };
  assert.equal(connack.properties?.sessionExpiryInterval, 0);
});

const spawned: RelayProcess[] = [];
fx.cleanup(() => {
  for (const p of spawned) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

/** A `walcast edge` process on the fixture's slot and nats-server, publishing through the primary. */
async function edgeProcess(): Promise<{ mqttPort: number; mqttWsUrl: string }> {
  await deployment.ready();
  const p = await spawnEdge(['--database-url', db.url, '--slot', slotRelay().slot], {
    WALCAST_NATS_URL: deployment.nats.url,
    WALCAST_PUBLISH_DATABASE_URL: db.url,
  });
  spawned.push(p);
  return { mqttPort: mqttPortOf(p), mqttWsUrl: p.wsUrl.replace(/\/ws$/, '/mqtt') };
}

test('retain=0 messages cross edges: one published on edge A reaches QoS 1 subscribers on edge B and the slot relay, and the other way round, once each', async () => {
  const [a, b] = [await edgeProcess(), await edgeProcess()];
  const doors = { a, b, slot: slotRelay() };
  const subs = {
    a: await connect(a, 'tcp', 5),
    b: await connect(b, 'ws', 4),
    slot: await connect(slotRelay(), 'tcp', 5),
  };
  for (const c of Object.values(subs)) assert.deepEqual(await c.subscribe('sensors/m1/#', 1), [1]);
  const from = {
    a: await connect(a, 'tcp', 5),
    b: await connect(b, 'tcp', 4),
    slot: await connect(doors.slot, 'tcp', 5),
  };
  for (const [name, publisher] of Object.entries(from)) {
    const ack = await publisher.ack(`sensors/m1/${name}`, `from ${name}`, { qos: 1 });
    assert.equal(ack.code, 0, `PUBACK from ${name}`);
  }
  // The marker: a last message, so every one before it has arrived (messages keep commit order).
  assert.equal((await from.a.ack('sensors/m1/mark', 'marker', { qos: 1 })).code, 0);
  for (const [name, c] of Object.entries(subs)) {
    const got = await c.until('sensors/m1/mark', 'marker');
    assert.deepEqual(
      got.map((m) => [m.topic, m.payload, m.qos, m.retain]),
      [
        ['sensors/m1/a', 'from a', 1, false],
        ['sensors/m1/b', 'from b', 1, false],
        ['sensors/m1/slot', 'from slot', 1, false],
        ['sensors/m1/mark', 'marker', 1, false],
      ],
      `the subscriber on ${name}: each message once, in commit order`,
    );
  }
});

test('authorisation on an edge is the slot relay’s: a bad token gets CONNACK not authorized; a filter outside the grants fails alone', async () => {
  const { TEST_SECRET, token } = await import('../helpers/tokens.ts');
  const e = await edge({ jwtSecret: TEST_SECRET });
  assert.equal(await MqttTestClient.refused(e, 4, { username: 'jwt', password: 'not-a-token' }), 5);
  assert.equal(await MqttTestClient.refused(e, 5, {}), 0x87);
  const t = await token({ sub: 'ada', channels: ['room-1'] });
  const c = await connect(e, 'tcp', 5, { username: 'jwt', password: t });
  assert.deepEqual(await c.subscribe(['presence/room-1/#', 'presence/room-2/#']), [1, 0x87]);
  await db.query(
    `insert into presence (channel_id, user_id, name) values ('room-2', 'x', 'secret'), ('room-1', 'y', 'marker')`,
  );
  const got = await c.until('presence/room-1/y', 'marker');
  assert.deepEqual(got.map(bodyOf), ['marker']);
});

/** A persistent QoS 1 session on `e` subscribed to `channel`'s chat rows, left; then rows away0…away4 while it is away. */
async function leaveSession(e: EdgeRelay, clientId: string, channel: string) {
  const opts = { clientId, clean: false, properties: { sessionExpiryInterval: 600 } };
  const first = await MqttTestClient.connect(e, 'tcp', 5, opts);
  await first.subscribe(`chat_messages/${channel}/#`, 1);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'a', 'before')`, [channel]);
  await first.until(`chat_messages/${channel}/${await lastId(channel)}`, 'before');
  await first.end();
  for (let i = 0; i < 5; i++)
    await db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'a', $2)`, [channel, `away${i}`]);
  return opts;
}

test('a persistent session left on one edge resumes on another: the rows it missed, once, in order, then live', async () => {
  const [a, b] = [await edge({ publishDatabaseUrl: db.url }), await edge({ publishDatabaseUrl: db.url })];
  const opts = await leaveSession(a, 'roamer', 'e5');
  await waitFor(() => b.internals.recovery.count > 0, 10_000, 'edge B to have the rows');
  const again = await connect(b, 'tcp', 5, opts);
  assert.equal(again.sessionPresent, true);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('e5', 'a', 'marker')`);
  const got = await again.until(`chat_messages/e5/${await lastId('e5')}`, 'marker');
  assert.deepEqual(got.map(bodyOf), ['away0', 'away1', 'away2', 'away3', 'away4', 'marker']);
});

test('a persistent session resumes on an edge started after it left: what it missed is read back from the stream, once, in order', async () => {
  const a = await edge({ publishDatabaseUrl: db.url });
  const opts = await leaveSession(a, 'late-roamer', 'e7');
  await waitFor(() => a.internals.recovery.count >= 6, 10_000, 'the rows on the stream');
  // Edge C reads the stream from its tail: the rows the session missed are not in its window.
  const c = await edge({ publishDatabaseUrl: db.url });
  assert.equal(c.internals.recovery.replay('e7', '0000000000000000-00000000-x').recovered, false);
  const again = await connect(c, 'tcp', 5, opts);
  assert.equal(again.sessionPresent, true);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('e7', 'a', 'marker')`);
  const got = await again.until(`chat_messages/e7/${await lastId('e7')}`, 'marker');
  assert.deepEqual(
    got.map((m) => [bodyOf(m), m.retain]),
    ['away0', 'away1', 'away2', 'away3', 'away4', 'marker'].map((b) => [b, false]),
  );
});

test('mosquitto_sub against an edge: the current row retained, then live', async () => {
  assert.ok(existsSync('/usr/bin/mosquitto_sub'), 'mosquitto_sub not found: apt-get install -y mosquitto-clients');
  const e = await edge();
  await db.query(`insert into presence (channel_id, user_id, name) values ('e6', 'ada', 'Ada')`);
  const args = ['-h', '127.0.0.1', '-p', String(e.mqttPort), '-V', 'mqttv5', '-q', '1', '-t', 'presence/e6/#'];
  const child = spawn('mosquitto_sub', [...args, '-C', '2', '-F', '%r %t %p', '-W', '20']);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<number | null>((r) => child.on('close', r));
  await waitFor(() => out.includes('presence/e6/ada'), 10_000, 'the retained row');
  await db.query(`insert into presence (channel_id, user_id, name) values ('e6', 'bob', 'Bob')`);
  assert.equal(await done, 0, out);
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^1 presence\/e6\/ada \{.*"name":"Ada"/);
  assert.match(lines[1]!, /^0 presence\/e6\/bob \{.*"name":"Bob"/);
});

test('/readyz and /metrics of an edge show its MQTT door', async () => {
  const e = await edge();
  await connect(e, 'tcp', 4);
  const ready = (await (await fetch(`${e.url}/readyz`)).json()) as { mqtt?: { port: number; connections: number } };
  assert.equal(ready.mqtt?.port, e.mqttPort);
  assert.equal(ready.mqtt?.connections, 1);
  const metrics = await (await fetch(`${e.url}/metrics`)).text();
  assert.match(metrics, /^walcast_mqtt_connections 1$/m);
});

test('before an edge consumes its stream, MQTT CONNECT is refused with Server unavailable (0x88; 3.1.1: 3)', async () => {
  const { startEdge } = await import('../../relay/edge/edge.ts');
  const { relayConfig } = await import('../helpers/relay.ts');
  const { silentLogger } = await import('../../relay/log.ts');
  await deployment.ready();
  const e = await startEdge(
    relayConfig(db.url, { natsUrl: deployment.nats.url, natsStream: 'not_there', slot: slotRelay().slot }),
    silentLogger,
  );
  deployment.edges.push(e);
  assert.equal(await MqttTestClient.refused(e, 5, {}), 0x88);
  assert.equal(await MqttTestClient.refused(e, 4, {}), 3);
});
