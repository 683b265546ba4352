// MQTT ingest flows against a real Mosquitto (started here on a free port):
// messages published with mosquitto_pub and mqtt.js become rows, which reach
// a WebSocket subscriber; topic captures land in columns; bad payloads land
// in walcast.dead_letters with their codes while the rest of the batch
// commits; flows added, changed and disabled take effect without a restart
// and without reconnecting the broker; a POST flow retries, then dead-letters.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { startMosquitto, type Mosquitto } from '../helpers/mqtt.ts';
import type { Relay } from '../../relay/relay.ts';

const run = promisify(execFile);
const fx = relayFixture();
const { db } = fx;
let broker: Mosquitto;
let relay: Relay;
let publisher: MqttClient;

before(async () => {
  broker = await startMosquitto();
  fx.cleanup(() => broker.stop());
  relay = await fx.relay(); // installs the walcast schema
  await db.query(`create table readings (
    id bigserial primary key,
    device text not null,
    temperature numeric not null check (temperature > -100),
    unit text,
    seq int,
    created_at timestamptz not null default now())`);
  await db.query(`select walcast.register_table('public.readings', channel_column => 'device')`);
  await db.query(`select walcast.add_broker('local', $1)`, [broker.url]);
  publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  fx.cleanup(() => publisher.endAsync());
});

const pipeline = () => relay.internals.ingest.pipelines.get('local');
const link = () => pipeline()?.link;

async function flow(...args: unknown[]): Promise<void> {
  const placeholders = args.map((_, i) => `$${i + 1}`).join(', ');
  await db.query(`select walcast.add_flow(${placeholders})`, args);
  const [row] = await db.query<{ updated_at: Date }>(`select updated_at from walcast.flows where name = $1`, [args[0]]);
  // Running within a few seconds (the relay reads walcast.flows every second), in this version, subscribed.
  const running = () =>
    pipeline()?.flows.find((f) => f.name === args[0])?.version === String(row!.updated_at.getTime());
  await waitFor(
    () => running() && relay.internals.ingest.summary().flows.some((f) => f.name === args[0] && f.state === 'running'),
    10_000,
    `flow ${args[0]} to run`,
  );
}

const rows = (where: string, values: unknown[] = []) =>
  db.query(`select device, temperature::float8 as t, unit, seq from readings where ${where} order by id`, values);

async function waitRows(where: string, n: number, values: unknown[] = []) {
  await waitFor(async () => (await rows(where, values)).length >= n, 15_000, `${n} rows where ${where}`);
  return rows(where, values);
}

test('mosquitto_pub and mqtt.js messages become rows with the captured device, and reach a WebSocket subscriber', async () => {
  const schema = { type: 'object', required: ['temperature'], properties: { temperature: { type: 'number' } } };
  await flow('temps', 'local', 'sensors/{device}/temperature', 'insert', 'public.readings', JSON.stringify(schema));
  const ws = await fx.client(relay);
  await ws.subscribe('dev-1');
  await run('mosquitto_pub', [
    ...['-h', '127.0.0.1', '-p', String(broker.port), '-q', '1', '-V', 'mqttv311'],
    ...['-t', 'sensors/dev-1/temperature', '-m', JSON.stringify({ temperature: 21.5, unit: 'C', device: 'spoofed' })],
  ]);
  await publisher.publishAsync('sensors/dev-1/temperature', JSON.stringify({ temperature: 22, seq: 2 }), { qos: 1 });
  assert.deepEqual(await waitRows(`device = 'dev-1'`, 2), [
    { device: 'dev-1', t: 21.5, unit: 'C', seq: null },
    { device: 'dev-1', t: 22, unit: null, seq: 2 },
  ]);
  const events = await ws.waitForEvents(2);
  assert.deepEqual(
    events.map((e) => [e.channel, Number(e.row.temperature)]),
    [
      ['dev-1', 21.5],
      ['dev-1', 22],
    ],
  );
});

test('invalid JSON, a schema mismatch and a refused row become dead letters; the rest of the batch commits', async () => {
  const t = 'sensors/dev-2/temperature';
  const payloads = [
    JSON.stringify({ temperature: 1, seq: 1 }),
    '{not json',
    JSON.stringify({ temperature: 'hot', seq: 2 }),
    JSON.stringify({ temperature: -500, seq: 3 }),
    JSON.stringify([1, 2]),
    JSON.stringify({ temperature: 4, seq: 4 }),
    JSON.stringify({ temperature: 5, seq: 'five' }),
    JSON.stringify({ temperature: 6, seq: 6 }),
  ];
  // All in flight at once, so they share batches.
  await Promise.all(payloads.map((p) => publisher.publishAsync(t, p, { qos: 1 })));
  assert.deepEqual(
    (await waitRows(`device = 'dev-2'`, 3)).map((r) => r.seq),
    [1, 4, 6],
  );
  const dead = await db.query<{ code: string; detail: string; payload: Buffer; topic: string }>(
    `select code, detail, payload, topic from walcast.dead_letters where flow = 'temps' order by id`,
  );
  // Their order depends on how the messages fell into batches.
  assert.deepEqual(dead.map((d) => [d.code, d.payload.toString()]).sort(), [
    ['ingest_constraint_violation', payloads[3]],
    ['ingest_invalid_json', '{not json'],
    ['ingest_invalid_value', payloads[6]],
    ['ingest_not_object', '[1,2]'],
    ['ingest_schema_mismatch', payloads[2]],
  ]);
  for (const d of dead) {
    assert.equal(d.topic, t);
    assert.match(d.detail, /flow temps/);
  }
  assert.match(dead.find((d) => d.code === 'ingest_schema_mismatch')!.detail, /\/temperature must be number/);
  assert.match(dead.find((d) => d.code === 'ingest_constraint_violation')!.detail, /readings_temperature_check/);
  assert.match(dead.find((d) => d.code === 'ingest_invalid_value')!.detail, /invalid input syntax for type integer/);
  const metrics = await (await fetch(`${relay.url}/metrics`)).text();
  assert.match(metrics, /walcast_ingest_dead_letters_total\{flow="temps",code="ingest_schema_mismatch"\} 1/);
  assert.match(metrics, /walcast_ingest_committed_total\{flow="temps"\} 5/);
  assert.match(metrics, /walcast_ingest_broker_connected\{broker="local"\} 1/);
});

test('a row the table refuses in a batch of well-formed messages: the batch is written again row by row, the refused one a dead letter', async () => {
  // Such a batch is first tried as one statement (relay/ingest/single.ts); the table's refusal rolls all of it back.
  const t = 'sensors/dev-5/temperature';
  const before = await db.query<{ committed: string }>(`select committed from walcast.flow_stats where flow = 'temps'`);
  const payloads = [1, -500, 3, 4].map((temperature, i) => JSON.stringify({ temperature, seq: i + 1 }));
  await Promise.all(payloads.map((p) => publisher.publishAsync(t, p, { qos: 1 })));
  assert.deepEqual(
    (await waitRows(`device = 'dev-5'`, 3)).map((r) => r.seq),
    [1, 3, 4],
  );
  const dead = await db.query<{ code: string; payload: Buffer }>(
    `select code, payload from walcast.dead_letters where topic = $1`,
    [t],
  );
  assert.deepEqual(
    dead.map((d) => [d.code, d.payload.toString()]),
    [['ingest_constraint_violation', payloads[1]]],
  );
  const after = await db.query<{ committed: string }>(`select committed from walcast.flow_stats where flow = 'temps'`);
  assert.equal(Number(after[0]!.committed) - Number(before[0]!.committed), 3);
});

test('flows added, changed and disabled take effect without a restart and without reconnecting the broker', async () => {
  const connection = link()!;
  const epoch = connection.connections;
  await flow('humid', 'local', 'tenants/{unit}/devices/{device}/humidity', 'insert', 'public.readings');
  await publisher.publishAsync('tenants/acme/devices/h1/humidity', JSON.stringify({ temperature: 40 }), { qos: 1 });
  assert.deepEqual(await waitRows(`device = 'h1'`, 1), [{ device: 'h1', t: 40, unit: 'acme', seq: null }]);

  // Changed: now a dedup key; a redelivered message makes no second row.
  await flow('humid', 'local', 'tenants/{unit}/devices/{device}/humidity', 'insert', 'public.readings', null, 1, 'seq');
  for (let i = 0; i < 3; i++) {
    await publisher.publishAsync('tenants/acme/devices/h2/humidity', JSON.stringify({ temperature: 41, seq: 7 }), {
      qos: 1,
    });
  }
  await publisher.publishAsync('tenants/acme/devices/h2/humidity', JSON.stringify({ temperature: 42, seq: 8 }), {
    qos: 1,
  });
  assert.deepEqual((await waitRows(`device = 'h2' and seq = 8`, 1)).length, 1);
  assert.deepEqual(
    (await rows(`device = 'h2'`)).map((r) => r.seq),
    [7, 8],
  );

  // Disabled: its messages are not written (the marker goes through another flow, which still runs).
  await db.query(`select walcast.disable_flow('humid')`);
  await waitFor(() => !relay.internals.ingest.summary().flows.some((f) => f.name === 'humid'), 10_000, 'humid to stop');
  await publisher.publishAsync('tenants/acme/devices/h3/humidity', JSON.stringify({ temperature: 43 }), { qos: 1 });
  await publisher.publishAsync('sensors/marker-1/temperature', JSON.stringify({ temperature: 1 }), { qos: 1 });
  await waitRows(`device = 'marker-1'`, 1);
  assert.deepEqual(await rows(`device = 'h3'`), []);

  await db.query(`select walcast.enable_flow('humid')`);
  await flow('humid', 'local', 'tenants/{unit}/devices/{device}/humidity', 'insert', 'public.readings', null, 1, 'seq');
  await publisher.publishAsync('tenants/acme/devices/h4/humidity', JSON.stringify({ temperature: 44, seq: 9 }), {
    qos: 1,
  });
  await waitRows(`device = 'h4'`, 1);
  assert.equal(connection, link(), 'the same broker connection');
  assert.equal(connection.connections, epoch, 'never reconnected');
  const stats = await db.query(`select committed, duplicates from walcast.flow_stats where flow = 'humid'`);
  assert.deepEqual(stats, [{ committed: '4', duplicates: '2' }]);
});

test('an upsert flow keeps one row per primary key: the last message wins, columns it does not name keep their values', async () => {
  await db.query(`create table device_state (
    tenant text not null, device text not null, battery int, firmware text, primary key (tenant, device))`);
  await flow('state', 'local', 'tenants/{tenant}/state/{device}', 'upsert', 'public.device_state');
  const t = 'tenants/acme/state/s1';
  await publisher.publishAsync(t, JSON.stringify({ battery: 90, firmware: '1.0' }), { qos: 1 });
  // In flight together, so some share a batch: the last of them wins.
  await Promise.all([80, 70, 60].map((battery) => publisher.publishAsync(t, JSON.stringify({ battery }), { qos: 1 })));
  await publisher.publishAsync('tenants/acme/state/s2', JSON.stringify({ battery: 1 }), { qos: 1 });
  await waitFor(
    async () => (await db.query(`select 1 from device_state where device = 's2'`)).length === 1,
    10_000,
    'the marker row s2',
  );
  assert.deepEqual(await db.query(`select tenant, device, battery, firmware from device_state order by device`), [
    { tenant: 'acme', device: 's1', battery: 60, firmware: '1.0' },
    { tenant: 'acme', device: 's2', battery: 1, firmware: null },
  ]);
});

test('SQL functions refuse bad arguments with a SQLSTATE and a message that says what is wrong', async () => {
  const cases: [string, unknown[], string, RegExp][] = [
    [`select walcast.add_broker('b1', 'http://x')`, [], '22023', /not an mqtt/],
    [`select walcast.add_flow('f', 'nope', 'a/b', 'insert', 'readings')`, [], '42704', /broker 'nope' does not exist/],
    [`select walcast.add_flow('f', 'local', 'a/#/b', 'insert', 'readings')`, [], '22023', /# must be the last level/],
    [`select walcast.add_flow('f', 'local', 'a/{x}', 'insert', 'readings')`, [], '42703', /no column x/],
    [`select walcast.add_flow('f', 'local', 'a/b', 'insert', 'no_such_table')`, [], '42P01', /does not exist/],
    [`select walcast.add_flow('f', 'local', 'a/b', 'delete', 'readings')`, [], '22023', /not insert, upsert or post/],
    [`select walcast.add_flow('f', 'local', 'a/b', 'post', 'ftp://x')`, [], '22023', /http/],
    [`select walcast.add_flow('f', 'local', 'a/b', 'insert', 'readings', '[1]')`, [], '22023', /JSON array/],
    [`select walcast.add_flow('f', 'local', 'a/b', 'insert', 'readings', null, 2)`, [], '22023', /qos 2/],
    [`select walcast.remove_broker('local')`, [], '2BP01', /used by flows/],
    [`select walcast.disable_flow('nope')`, [], '42704', /flow 'nope' does not exist/],
  ];
  for (const [sql, values, code, message] of cases) {
    await assert.rejects(db.query(sql, values), (e: Error & { code?: string }) => {
      assert.equal(e.code, code, sql);
      assert.match(e.message, message, sql);
      return true;
    });
  }
});

test('a POST flow: retried on 5xx until a 2xx, a 4xx is a dead letter at once, one that keeps failing after 5 attempts', async () => {
  const seen: { seq: number; key: string | undefined; topic: string | undefined }[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const row = JSON.parse(body) as { seq: number };
    seen.push({
      seq: row.seq,
      key: req.headers['idempotency-key'] as string,
      topic: req.headers['mqtt-topic'] as string,
    });
    const tries = seen.filter((s) => s.seq === row.seq).length;
    res.statusCode = row.seq === 1 ? (tries < 3 ? 503 : 204) : row.seq === 2 ? 422 : 500;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fx.cleanup(() => new Promise((r) => server.close(r)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  await flow('hook', 'local', 'hooks/{device}', 'post', url, null, 1, 'seq');
  for (const seq of [1, 2, 3]) await publisher.publish(`hooks/p${seq}`, JSON.stringify({ seq }), { qos: 1 });
  await waitFor(
    async () => (await db.query(`select 1 from walcast.dead_letters where flow = 'hook'`)).length === 2,
    30_000,
    'two dead letters of hook',
  );
  const dead = await db.query<{ code: string; payload: Buffer; detail: string }>(
    `select code, payload, detail from walcast.dead_letters where flow = 'hook' order by id`,
  );
  assert.deepEqual(
    dead.map((d) => [d.code, JSON.parse(d.payload.toString()).seq]),
    [
      ['ingest_post_rejected', 2],
      ['ingest_post_failed', 3],
    ],
  );
  assert.match(dead[1]!.detail, /failed 5 times, last: HTTP 500/);
  await waitFor(() => seen.filter((s) => s.seq === 1).length === 3, 10_000, 'seq 1 delivered on its third try');
  assert.equal(seen.filter((s) => s.seq === 2).length, 1, 'a 422 is not retried');
  assert.equal(seen.filter((s) => s.seq === 3).length, 5);
  assert.deepEqual(
    seen.find((s) => s.seq === 1),
    { seq: 1, key: '1', topic: 'hooks/p1' },
  );
});

test('/readyz shows each broker; a broker that is down is shown and reconnects, the relay stays ready', async () => {
  await db.query(`select walcast.add_broker('down', 'mqtt://127.0.0.1:1')`);
  await waitFor(
    () => relay.internals.ingest.summary().brokers.some((b) => b.name === 'down' && b.reason !== undefined),
    10_000,
    'broker down reported',
  );
  const res = await fetch(`${relay.url}/readyz`);
  const body = (await res.json()) as { ingest: { brokers: { name: string; state: string; reason?: string }[] } };
  assert.equal(res.status, 200);
  const down = body.ingest.brokers.find((b) => b.name === 'down')!;
  assert.notEqual(down.state, 'connected');
  assert.match(down.reason!, /ingest broker|cannot be reached/i);
  assert.equal(body.ingest.brokers.find((b) => b.name === 'local')!.state, 'connected');
  const status = await db.query(`select state from walcast.broker_status where broker = 'down'`);
  assert.notEqual(status[0]?.state, 'connected');
  await db.query(`select walcast.remove_broker('down')`);
});

test('a broker password env:VAR that is not set: the broker is reported failed with the fix', async () => {
  await db.query(`select walcast.add_broker('secret', $1, password => 'env:WALCAST_TEST_UNSET_SECRET')`, [broker.url]);
  await waitFor(
    () => relay.internals.ingest.summary().brokers.some((b) => b.name === 'secret' && b.state === 'failed'),
    10_000,
    'broker secret failed',
  );
  const body = (await (await fetch(`${relay.url}/readyz`)).json()) as {
    ingest: { brokers: { name: string; reason?: string }[] };
  };
  assert.match(
    body.ingest.brokers.find((b) => b.name === 'secret')!.reason!,
    /password env:WALCAST_TEST_UNSET_SECRET, but WALCAST_TEST_UNSET_SECRET is not set in the relay environment/,
  );
  await db.query(`select walcast.remove_broker('secret')`);
});

test('walcast flows lists the brokers with their state and the flows with their counters', async () => {
  const bin = new URL('../../bin/walcast.js', import.meta.url).pathname;
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: db.url };
  const { stdout } = await run(process.execPath, [bin, 'flows', '--json'], { env });
  const out = JSON.parse(stdout) as {
    brokers: { name: string; state: string }[];
    flows: { name: string; enabled: boolean; committed: string; dead_lettered: string; duplicates: string }[];
  };
  assert.deepEqual(
    out.brokers.map((b) => [b.name, b.state]),
    [['local', 'connected']],
  );
  const temps = out.flows.find((f) => f.name === 'temps')!;
  // The tests before: 6 rows and 5 dead letters from the first two, 3 and 1 from the refused-row batch.
  assert.deepEqual([temps.enabled, temps.committed, temps.dead_lettered], [true, '9', '6']);
  assert.equal(out.flows.find((f) => f.name === 'humid')!.duplicates, '2');
  const text = (await run(process.execPath, [bin, 'flows'], { env })).stdout;
  assert.match(text, /^broker\s+url\s+state/m);
  assert.match(text, /^local\s+mqtt:\/\/127\.0\.0\.1:\d+\s+connected/m);
  assert.match(
    text,
    /^temps\s+local\s+sensors\/\{device\}\/temperature\s+insert\s+public\.readings\s+enabled\s+9\s+0\s+6$/m,
  );
});

test('after a broker restart that lost the session, walcast subscribes again and the flows go on', async () => {
  const connection = link()!;
  const before = connection.connections;
  await broker.restart(); // no persistence: walcast's session is gone (CONNACK Session Present 0)
  await waitFor(
    () => connection.connections > before && connection.granted.has('sensors/+/temperature'),
    20_000,
    'walcast reconnected and subscribed again',
  );
  await waitFor(() => publisher.connected, 20_000, 'the publisher reconnected');
  await publisher.publishAsync('sensors/after-restart/temperature', JSON.stringify({ temperature: 3 }), { qos: 1 });
  assert.deepEqual(await waitRows(`device = 'after-restart'`, 1), [
    { device: 'after-restart', t: 3, unit: null, seq: null },
  ]);
});
