// The MQTT front door with mqtt.js, 3.1.1 and 5, over TCP and WebSocket:
// current rows first as retained messages, then live changes in order;
// wildcards; publishing with retain writes the row; without retain it is a
// message that reaches subscribers and leaves the tables alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relayFixture } from '../helpers/relay.ts';
import { mqttClients } from '../helpers/mqtt.ts';

const fx = relayFixture();
const connect = mqttClients();

test('MQTT 5 over TCP: current rows first as retained, then insert, update and delete live; op, position and commit_time as user properties', async () => {
  const relay = await fx.relay();
  await fx.db.query(
    `insert into presence (channel_id, user_id, name) values ('r1', 'ada', 'Ada'), ('r1', 'bob', 'Bob'), ('r2', 'eve', 'Eve')`,
  );
  const c = await connect(relay, 'tcp', 5);
  assert.deepEqual(await c.subscribe('presence/r1/+'), [1]);
  const first = await c.waitFor((m) => (m.length >= 2 ? m : undefined), 'two retained rows');
  assert.deepEqual(first.map((m) => [m.topic, m.retain, JSON.parse(m.payload).name]).sort(), [
    ['presence/r1/ada', true, 'Ada'],
    ['presence/r1/bob', true, 'Bob'],
  ]);
  assert.equal(first[0]!.user.op, 'snapshot');
  await fx.db.query(`insert into presence (channel_id, user_id, name) values ('r1', 'cy', 'Cy')`);
  await fx.db.query(`update presence set name = 'Ada L' where user_id = 'ada'`);
  await fx.db.query(`delete from presence where user_id = 'bob'`);
  await fx.db.query(
    `insert into presence (channel_id, user_id, name) values ('r2', 'zed', 'not for r1'), ('r1', 'mark', 'marker')`,
  );
  const all = await c.until('presence/r1/mark', 'marker');
  const live = all.slice(2);
  assert.deepEqual(
    live.map((m) => [m.topic, m.retain, m.user.op, m.payload === '' ? '' : JSON.parse(m.payload).name]),
    [
      ['presence/r1/cy', false, 'insert', 'Cy'],
      ['presence/r1/ada', false, 'update', 'Ada L'],
      ['presence/r1/bob', false, 'delete', ''],
      ['presence/r1/mark', false, 'insert', 'marker'],
    ],
  );
  assert.match(String(live[0]!.user.position), /^[0-9A-F]{16}-[0-9A-F]{8}-/);
  assert.match(String(live[0]!.user.commit_time), /^\d{4}-\d\d-\d\dT/);
});

test('MQTT 3.1.1 over WebSocket: +/<channel>/# gets every table of the channel, # at the table level every channel', async () => {
  const relay = await fx.relay();
  const c = await connect(relay, 'ws', 4);
  const all = await connect(relay, 'tcp', 4);
  assert.deepEqual(await c.subscribe('+/room-9/#', 0), [0]);
  assert.deepEqual(await all.subscribe('chat_messages/#', 1), [1]);
  await fx.db.query(
    `insert into chat_messages (channel_id, sender, body) values ('room-9', 'ada', 'hi'), ('room-8', 'bob', 'elsewhere')`,
  );
  await fx.db.query(`insert into presence (channel_id, user_id, name) values ('room-9', 'ada', 'marker')`);
  const got = await c.until('presence/room-9/ada', 'marker');
  assert.deepEqual(
    got.map((m) => m.topic.replace(/\/\d+$/, '/<id>')),
    ['chat_messages/room-9/<id>', 'presence/room-9/ada'],
  );
  const chat = await all.waitFor((m) => (m.length >= 2 ? m : undefined), 'both chat rows');
  assert.deepEqual(chat.map((m) => JSON.parse(m.payload).body).sort(), ['elsewhere', 'hi']);
});

test('retain=1 upserts the row, an empty retained payload deletes it; the PUBACK comes after the commit', async () => {
  const relay = await fx.relay();
  const c = await connect(relay, 'tcp', 5);
  await c.publish('presence/lobby/u-7', JSON.stringify({ name: 'Grace', status: 'away' }), { retain: true });
  // The acknowledgement arrived: the row is visible now.
  const rows = await fx.db.query(`select name, status from presence where channel_id = 'lobby' and user_id = 'u-7'`);
  assert.deepEqual(rows, [{ name: 'Grace', status: 'away' }]);
  await c.publish('presence/lobby/u-7', JSON.stringify({ name: 'Grace H' }), { retain: true });
  assert.deepEqual(await fx.db.query(`select name from presence where channel_id = 'lobby' and user_id = 'u-7'`), [
    { name: 'Grace H' },
  ]);
  await c.publish('chat_messages/lobby', JSON.stringify({ sender: 'grace', body: 'inserted' }), { retain: true });
  assert.equal(
    (await fx.db.query(`select * from chat_messages where channel_id = 'lobby' and body = 'inserted'`)).length,
    1,
  );
  await c.publish('presence/lobby/u-7', '', { retain: true });
  assert.deepEqual(await fx.db.query(`select * from presence where channel_id = 'lobby' and user_id = 'u-7'`), []);
});

test('MQTT 5: a refused publish gets a negative PUBACK with a reason string', async () => {
  const relay = await fx.relay();
  const c = await connect(relay, 'tcp', 5);
  const ack = (topic: string, payload: string) => c.ack(topic, payload, { retain: true });
  const notJson = await ack('presence/lobby/u-1', 'not json');
  assert.equal(notJson.code, 0x99);
  assert.match(notJson.reason ?? '', /invalid_row/);
  const badColumn = await ack('presence/lobby/u-1', JSON.stringify({ nope: 1 }));
  assert.equal(badColumn.code, 0x99);
  const noKey = await ack('presence/lobby', JSON.stringify({ name: 'x' }));
  // presence's key (user_id) is neither in the topic nor in the row.
  assert.equal(noKey.code, 0x99);
  const badTopic = await ack('presence/lobby/u-1/extra', JSON.stringify({ name: 'x' }));
  assert.equal(badTopic.code, 0x90);
  assert.match(badTopic.reason ?? '', /presence\/<channel_id>\/<user_id>/);
  assert.deepEqual(await fx.db.query(`select * from presence where channel_id = 'lobby'`), []);
});

test('retain=0 is a message: it reaches the matching subscribers, in order with the rows, and is not stored', async () => {
  const relay = await fx.relay();
  const sub = await connect(relay, 'ws', 5);
  const pub = await connect(relay, 'tcp', 4);
  await sub.subscribe(['alerts/#', 'presence/hall/#']);
  await pub.publish('alerts/fire', 'smoke in hall 2');
  await fx.db.query(`insert into presence (channel_id, user_id, name) values ('hall', 'x', 'row')`);
  await pub.publish('presence/hall/x', 'typing', { retain: false });
  await pub.publish('alerts/fire', 'marker');
  const got = await sub.until('alerts/fire', 'marker');
  assert.deepEqual(
    got.map((m) => [m.topic, m.payload.startsWith('{') ? 'row' : m.payload]),
    [
      ['alerts/fire', 'smoke in hall 2'],
      ['presence/hall/x', 'row'],
      ['presence/hall/x', 'typing'],
      ['alerts/fire', 'marker'],
    ],
  );
  assert.deepEqual(await fx.db.query(`select name from presence where channel_id = 'hall'`), [{ name: 'row' }]);
});

test('/metrics and /readyz count MQTT connections, subscriptions and messages in and out', async () => {
  const relay = await fx.relay();
  const c = await connect(relay, 'tcp', 4);
  await c.subscribe(['metrics/#', 'presence/metrics/#']);
  await c.publish('metrics/a', 'one');
  await c.waitFor((m) => m.length === 1 || undefined, 'the message back');
  const metrics = await (await fetch(`${relay.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1]);
  assert.equal(value('walcast_mqtt_connections'), 1);
  assert.equal(value('walcast_mqtt_subscriptions'), 2);
  assert.equal(value('walcast_mqtt_messages_received_total'), 1);
  assert.equal(value('walcast_mqtt_messages_sent_total'), 1);
  const ready = (await (await fetch(`${relay.url}/readyz`)).json()) as { mqtt: Record<string, number> };
  assert.deepEqual(ready.mqtt, {
    port: relay.mqttPort,
    connections: 1,
    subscriptions: 2,
    messages_in: 1,
    messages_out: 1,
  });
});

for (const version of [4, 5] as const) {
  test(`MQTT ${version === 4 ? '3.1.1' : '5'}: a persistent session gets, on reconnect, what it missed while away (from the recovery window), once`, async () => {
    const relay = await fx.relay();
    const channel = `ps-${version}`;
    const persistent = {
      clientId: `keeper-${version}`,
      clean: false,
      ...(version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
    };
    const first = await connect(relay, 'tcp', version, persistent);
    assert.equal(first.sessionPresent, false);
    await first.subscribe(`chat_messages/${channel}/#`, 1);
    await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'a', 'before')`, [channel]);
    await first.waitFor((m) => m.some((x) => x.payload.includes('before')) || undefined, 'the first row');
    await first.end();
    await fx.db.query(
      `insert into chat_messages (channel_id, sender, body) values ($1, 'a', 'away-1'), ($1, 'a', 'away-2')`,
      [channel],
    );
    const again = await connect(relay, 'tcp', version, persistent);
    assert.equal(again.sessionPresent, true);
    await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'a', 'marker')`, [channel]);
    const got = await again.waitFor((m) => (m.some((x) => x.payload.includes('marker')) ? m : undefined), 'the marker');
    assert.deepEqual(
      got.map((m) => [JSON.parse(m.payload).body, m.retain]),
      [
        ['away-1', false],
        ['away-2', false],
        ['marker', false],
      ],
    );
    // A clean session discards it.
    await again.end();
    const clean = await connect(relay, 'tcp', version, { ...persistent, clean: true, properties: {} });
    assert.equal(clean.sessionPresent, false);
  });
}

for (const version of [4, 5] as const) {
  test(`MQTT ${version === 4 ? '3.1.1' : '5'}: a persistent QoS 1 session gets the MQTT messages (retain=0) published while away, in order with the rows; a WebSocket resume does not`, async () => {
    const relay = await fx.relay();
    const channel = `pm-${version}`;
    const persistent = {
      clientId: `away-${version}`,
      clean: false,
      ...(version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
    };
    const ws = await fx.client(relay);
    await ws.subscribe(channel);
    const first = await connect(relay, 'tcp', version, persistent);
    await first.subscribe(`alerts/${channel}/#`, 1);
    await first.subscribe(`chat_messages/${channel}/#`, 1);
    await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'a', 'before')`, [channel]);
    await first.waitFor((m) => m.some((x) => x.payload.includes('before')) || undefined, 'the first row');
    const [before] = await ws.waitForEvents(1);
    ws.close();
    await ws.waitClosed();
    await first.end();
    const publisher = await connect(relay, 'tcp', 5);
    await publisher.publish(`alerts/${channel}/fire`, 'm1');
    await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'a', 'away')`, [channel]);
    await publisher.publish(`alerts/${channel}/fire`, 'm2');
    const again = await connect(relay, 'tcp', version, persistent);
    assert.equal(again.sessionPresent, true);
    await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'a', 'marker')`, [channel]);
    const got = await again.waitFor((m) => (m.some((x) => x.payload.includes('marker')) ? m : undefined), 'the marker');
    assert.deepEqual(
      got.map((m) => (m.topic.startsWith('alerts/') ? m.payload : JSON.parse(m.payload).body)),
      ['m1', 'away', 'm2', 'marker'],
    );
    // A WebSocket resuming from the same position gets the rows only.
    const back = await fx.client(relay);
    const reply = await back.subscribe(channel, { since: before!.position });
    assert.equal(reply.type === 'subscribed' && reply.recovered, true);
    const events = await back.waitForEvents(2);
    assert.deepEqual(
      events.map((e) => e.row.body),
      ['away', 'marker'],
    );
    assert.deepEqual(
      back.messages.filter((m) => m.type !== 'subscribed').map((m) => m.type),
      ['event', 'event'],
    );
  });
}

test('a filter over more rows than WALCAST_MQTT_RETAINED_LIMIT gets the newest, paced by the client (not closed as a slow consumer), and MQTT 5 is told why', async () => {
  const relay = await fx.relay({ sendQueueBytes: 65_536, mqttRetainedLimit: 1500 });
  await fx.db.query(
    `insert into chat_messages (channel_id, sender, body) select 'big', 'gen', 'row ' || i || ' ' || repeat('x', 200) from generate_series(1, 2000) i`,
  );
  const c = await connect(relay, 'ws', 5);
  await c.subscribe('chat_messages/big/#', 1);
  const suback = c.packets.find((p) => p.cmd === 'suback') as { properties?: { reasonString?: string } };
  assert.match(suback.properties?.reasonString ?? '', /more than 1500 rows match; the newest 1500 are sent/);
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('big', 'gen', 'marker')`);
  const got = await c.waitFor(
    (m) => (m.some((x) => x.payload.includes('"marker"')) ? m : undefined),
    'the marker',
    30_000,
  );
  const bodies = got.map((m) => JSON.parse(m.payload).body.split(' ').slice(0, 2).join(' '));
  assert.equal(bodies.length, 1501);
  assert.deepEqual([bodies[0], bodies[1499], bodies[1500]], ['row 501', 'row 2000', 'marker']);
  assert.equal(
    got.slice(0, 1500).every((m) => m.retain),
    true,
  );
  assert.equal(c.client.connected, true);
});

test('topics that are not rows: a retained message is stored (walcast.mqtt_retained) and sent to later subscribers; an empty one clears it; $ topics are not matched by a leading wildcard', async () => {
  const relay = await fx.relay();
  const pub = await connect(relay, 'tcp', 5);
  await pub.publish('alerts/fire', 'smoke', { retain: true, properties: { contentType: 'text/plain' } });
  await pub.publish('alerts/flood', 'water', { retain: true });
  await pub.publish('$ops/state', 'hidden', { retain: true });
  const late = await connect(relay, 'tcp', 5);
  await late.subscribe(['alerts/#', '+/state']);
  await late.waitFor((m) => (m.length >= 2 ? m : undefined), 'the retained messages');
  await pub.publish('alerts/flood', '', { retain: true });
  await pub.publish('any/state', 'not $');
  await pub.publish('alerts/fire', 'marker');
  const got = await late.until('alerts/fire', 'marker');
  assert.deepEqual(
    got.map((m) => [m.topic, m.payload, m.retain]),
    [
      ['alerts/fire', 'smoke', true],
      ['alerts/flood', 'water', true],
      ['alerts/flood', '', false],
      ['any/state', 'not $', false],
      ['alerts/fire', 'marker', false],
    ],
  );
  assert.deepEqual(
    await fx.db.query(
      `select topic, convert_from(payload, 'UTF8') as payload from walcast.mqtt_retained order by topic`,
    ),
    [
      { topic: '$ops/state', payload: 'hidden' },
      { topic: 'alerts/fire', payload: 'smoke' },
    ],
  );
  const ops = await connect(relay, 'ws', 4);
  await ops.subscribe('$ops/#');
  assert.deepEqual((await ops.waitFor((m) => m[0])).payload, 'hidden');
});

test('a row over WALCAST_MAX_EVENT_BYTES is not published over MQTT; the rows after it are', async () => {
  const relay = await fx.relay({ maxEventBytes: 4096 });
  const c = await connect(relay, 'tcp', 5);
  assert.deepEqual(await c.subscribe('presence/big/+'), [1]);
  await fx.db.query(`insert into presence (channel_id, user_id, name) values ('big', 'huge', $1)`, ['x'.repeat(8192)]);
  await fx.db.query(`insert into presence (channel_id, user_id, name) values ('big', 'small', 'marker')`);
  const got = await c.until('presence/big/small', 'marker');
  assert.deepEqual(
    got.map((m) => m.topic),
    ['presence/big/small'],
  );
});
