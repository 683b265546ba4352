// The MQTT front door with a JWT key: the token is the CONNECT password; a
// bad one gets CONNACK "not authorized"; a filter outside the channel grants
// fails alone in the SUBACK; publish grants as on WebSocket; a client id is
// bound to the token's subject; wills, keepalive and the packet size limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { MqttTestClient, mqttClients } from '../helpers/mqtt.ts';
import { TEST_SECRET, token } from '../helpers/tokens.ts';

const fx = relayFixture();
const connect = mqttClients();
const keyed = () => fx.relay({ jwtSecret: TEST_SECRET });

test('a bad, missing or expired token gets CONNACK not authorized (0x05 for 3.1.1, 0x87 for 5)', async () => {
  const relay = await keyed();
  assert.equal(await MqttTestClient.refused(relay, 4, { username: 'jwt', password: 'not-a-token' }), 5);
  assert.equal(await MqttTestClient.refused(relay, 5, { username: 'jwt', password: 'not-a-token' }), 0x87);
  assert.equal(await MqttTestClient.refused(relay, 5, {}), 0x87);
  const expired = await token({ sub: 'u1', channels: ['*'] }, { expiresIn: -60 });
  assert.equal(await MqttTestClient.refused(relay, 4, { username: 'jwt', password: expired }), 5);
});

test("a filter outside the token's channels fails alone in the SUBACK; publish grants apply", async () => {
  const relay = await keyed();
  const t = await token({ sub: 'u1', channels: ['room-1'], publish: ['presence'] });
  const c = await connect(relay, 'tcp', 5, { username: 'jwt', password: t });
  assert.deepEqual(await c.subscribe(['presence/room-1/#', 'presence/room-2/#', '+/room-1/#']), [1, 0x87, 1]);
  const v4 = await connect(relay, 'ws', 4, { username: 'jwt', password: t });
  assert.deepEqual(await v4.subscribe(['chat_messages/room-2/#', 'chat_messages/room-1/#']), [0x80, 1]);
  const forbidden = await c.ack('chat_messages/room-1', JSON.stringify({ sender: 'x', body: 'y' }), { retain: true });
  assert.equal(forbidden.code, 0x87);
  const elsewhere = await c.ack('presence/room-2/u1', JSON.stringify({ name: 'n' }), { retain: true });
  assert.equal(elsewhere.code, 0x87);
  assert.equal((await c.ack('presence/room-1/u1', JSON.stringify({ name: 'n' }), { retain: true })).code, 0);
  assert.deepEqual(await fx.db.query(`select channel_id, user_id from presence`), [
    { channel_id: 'room-1', user_id: 'u1' },
  ]);
  // A wildcard channel delivers only the channels the token allows.
  const wild = await connect(relay, 'tcp', 4, { username: 'jwt', password: t });
  await wild.subscribe('chat_messages/+/#');
  await fx.db.query(
    `insert into chat_messages (channel_id, sender, body) values ('room-2', 'a', 'secret'), ('room-1', 'a', 'marker')`,
  );
  const got = await wild.waitFor((m) => m.some((x) => x.payload.includes('marker')) && m, 'the marker row');
  assert.deepEqual(
    got.map((m) => JSON.parse(m.payload).body),
    ['marker'],
  );
});

test("a client id is bound to the token's subject: the same id under another subject is another session", async () => {
  const relay = await keyed();
  const alice = await connect(relay, 'tcp', 5, {
    clientId: 'device-1',
    username: 'jwt',
    password: await token({ sub: 'alice', channels: ['*'] }),
  });
  let aliceClosed = false;
  alice.client.on('close', () => (aliceClosed = true));
  const mallory = await connect(relay, 'tcp', 5, {
    clientId: 'device-1',
    username: 'jwt',
    password: await token({ sub: 'mallory', channels: ['*'] }),
  });
  await mallory.subscribe('presence/a/#');
  assert.equal(aliceClosed, false);
  assert.equal(alice.client.connected, true);
  // The same subject reconnecting takes the session over (MQTT-3.1.4-3): the older connection is told 0x8E.
  const again = await connect(relay, 'tcp', 5, {
    clientId: 'device-1',
    username: 'jwt',
    password: await token({ sub: 'alice', channels: ['*'] }),
  });
  await waitFor(() => aliceClosed, 5000, 'the older connection to be closed');
  const disconnect = alice.packets.find((p) => p.cmd === 'disconnect') as { reasonCode?: number } | undefined;
  assert.equal(disconnect?.reasonCode, 0x8e);
  assert.equal(again.client.connected, true);
});

test('a will is published when a connection ends without DISCONNECT, not after one', async () => {
  const relay = await fx.relay();
  const watcher = await connect(relay, 'tcp', 5);
  await watcher.subscribe('status/#');
  const will = { topic: 'status/dev-1', payload: Buffer.from('offline'), qos: 1 as const, retain: false };
  const polite = await MqttTestClient.connect(relay, 'tcp', 4, { will: { ...will, topic: 'status/polite' } });
  await polite.end();
  const rude = await MqttTestClient.connect(relay, 'tcp', 4, { will });
  (rude.client.stream as net.Socket).destroy();
  const marker = await MqttTestClient.connect(relay, 'tcp', 4);
  await waitFor(() => watcher.received.length > 0, 10_000, 'the will');
  await marker.publish('status/marker', 'marker');
  const got = await watcher.until('status/marker', 'marker');
  assert.deepEqual(
    got.map((m) => [m.topic, m.payload]),
    [
      ['status/dev-1', 'offline'],
      ['status/marker', 'marker'],
    ],
  );
  await marker.end();
  rude.client.end(true);
});

test('keepalive: a client silent for 1.5 keepalive periods is dropped; a packet over the size limit closes the connection', async () => {
  const relay = await fx.relay({ maxFrameBytes: 4096 });
  const socket = net.connect(relay.mqttPort!, '127.0.0.1');
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  const data: Buffer[] = [];
  socket.on('data', (d) => data.push(d));
  socket.write(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'silent',
      clean: true,
      keepalive: 1,
    }),
  );
  const started = Date.now();
  await closed;
  assert.ok(Date.now() - started >= 1000, 'not before the keepalive period');
  assert.equal(data.length > 0 && Buffer.concat(data)[0], 0x20, 'a CONNACK came first');

  // mqtt.js keeps to the CONNACK's Maximum Packet Size itself, so a raw client sends the oversized PUBLISH.
  const raw = net.connect(relay.mqttPort!, '127.0.0.1');
  const rawClosed = new Promise<void>((r) => raw.on('close', () => r()));
  const packets: mqttPacket.Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  parser.on('packet', (p) => packets.push(p));
  raw.on('data', (d) => parser.parse(d));
  raw.write(
    mqttPacket.generate(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'big', clean: true, keepalive: 60 },
      { protocolVersion: 5 },
    ),
  );
  await waitFor(() => packets.length > 0, 5000, 'CONNACK');
  raw.write(
    mqttPacket.generate(
      { cmd: 'publish', topic: 'alerts/big', payload: Buffer.alloc(8000, 'x'), qos: 0, retain: false, dup: false },
      { protocolVersion: 5 },
    ),
  );
  await rawClosed;
  assert.deepEqual(
    packets.map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode]),
    [
      ['connack', 0],
      ['disconnect', 0x95],
    ],
  );
});

test('packets sent right after CONNECT, before the CONNACK, are handled after it (MQTT 3.1.4)', async () => {
  const relay = await fx.relay();
  const raw = net.connect(relay.mqttPort!, '127.0.0.1');
  const packets: mqttPacket.Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (p) => packets.push(p));
  raw.on('data', (d) => parser.parse(d));
  await new Promise((r) => raw.once('connect', r));
  raw.write(
    Buffer.concat([
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: 'eager',
        clean: true,
        keepalive: 60,
      }),
      mqttPacket.generate({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'eager/#', qos: 1 }] }),
      mqttPacket.generate({
        cmd: 'publish',
        topic: 'eager/x',
        payload: Buffer.from('hi'),
        qos: 1,
        messageId: 8,
        retain: false,
        dup: false,
      }),
    ]),
  );
  await waitFor(
    () => packets.some((p) => p.cmd === 'publish') && packets.some((p) => p.cmd === 'puback'),
    10_000,
    'the PUBACK and the message back',
  );
  // The message may come back through the WAL before or after its PUBACK: both follow the commit.
  assert.deepEqual(packets.map((p) => p.cmd).slice(0, 2), ['connack', 'suback']);
  assert.deepEqual(
    packets
      .slice(2, 4)
      .map((p) => p.cmd)
      .sort(),
    ['puback', 'publish'],
  );
  raw.destroy();
});
