// MQTT ingest against brokers that say no, each a real Mosquitto started here:
// one with a password file (a right password, literal or env:VAR, ingests; a
// wrong one is refused, reported once in the log, /readyz, walcast flows and
// walcast.broker_status while the WebSocket side goes on, and fixing it with
// walcast.add_broker reconnects without a restart), and one whose dynamic
// security ACL refuses a flow's subscription (SUBACK 0x87: the flow shows as
// refused, the broker's other flows go on, and moving the flow to an allowed
// topic makes it ingest, without a restart).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { createLogger } from '../../relay/log.ts';
import type { Relay } from '../../relay/relay.ts';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { startMosquitto, type Mosquitto } from '../helpers/mqtt.ts';

const run = promisify(execFile);
const fx = relayFixture();
const { db } = fx;
const SECRET = 'WALCAST_TEST_INGEST_MQTT_SECRET';
let secured: Mosquitto;
let guarded: Mosquitto;
let relay: Relay;

/** The relay's log lines, as JSON. */
const logged: { msg: string; code?: string; broker?: string; flow?: string }[] = [];
const logger = createLogger(
  'info',
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logged.push(JSON.parse(line) as (typeof logged)[0]);
      done();
    },
  }),
  'json',
);
const logs = (code: string) => logged.filter((l) => l.code === code);

before(async () => {
  secured = await startMosquitto([], { users: { walcast: 'right-pass', pub: 'pub-pass' } });
  fx.cleanup(() => secured.stop());
  // walcast may subscribe to ok/# and other/# only; pub anywhere.
  guarded = await startMosquitto([], {
    users: { walcast: 'right-pass', pub: 'pub-pass' },
    subscribe: { walcast: ['ok/#', 'other/#'] },
  });
  fx.cleanup(() => guarded.stop());
  process.env[SECRET] = 'right-pass'; // the relay runs in this process: its environment
  relay = await fx.relay({}, undefined, logger);
  await db.query(`create table readings (
    id bigserial primary key, device text not null, temperature numeric not null)`);
  await db.query(`select walcast.register_table('public.readings', channel_column => 'device')`);
});

after(() => {
  delete process.env[SECRET];
});

async function publisher(broker: Mosquitto): Promise<MqttClient> {
  const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5, username: 'pub', password: 'pub-pass' });
  fx.cleanup(() => c.endAsync());
  return c;
}

const brokerSummary = (name: string) => relay.internals.ingest.summary().brokers.find((b) => b.name === name);
const flowSummary = (name: string) => relay.internals.ingest.summary().flows.find((f) => f.name === name);

async function readyz(): Promise<{
  httpStatus: number;
  ingest: {
    brokers: { name: string; state: string; reason?: string }[];
    flows: { name: string; state: string; reason?: string }[];
  };
}> {
  const res = await fetch(`${relay.url}/readyz`);
  return { ...((await res.json()) as { ingest: never }), httpStatus: res.status };
}

async function flowsCli(): Promise<string> {
  const bin = new URL('../../bin/walcast.js', import.meta.url).pathname;
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: db.url };
  return (await run(process.execPath, [bin, 'flows'], { env })).stdout;
}

async function waitRow(device: string): Promise<void> {
  await waitFor(
    async () => (await db.query(`select 1 from readings where device = $1`, [device])).length === 1,
    15_000,
    `the row of ${device}`,
  );
}

test('a broker with a password: env:VAR and literal passwords ingest; a wrong one is refused, shown and logged once, then fixed without a restart', async () => {
  const pub = await publisher(secured);
  await db.query(`select walcast.add_broker('plant', $1, username => 'walcast', password => $2)`, [
    secured.url,
    `env:${SECRET}`,
  ]);
  await db.query(`select walcast.add_flow('plant-temps', 'plant', 'plant/{device}/t', 'insert', 'public.readings')`);
  await waitFor(() => flowSummary('plant-temps')?.state === 'running', 15_000, 'plant-temps to run');
  await pub.publishAsync('plant/env-1/t', JSON.stringify({ temperature: 1 }), { qos: 1 });
  await waitRow('env-1');

  // The same password, given literally: a changed broker, so a new connection.
  const first = relay.internals.ingest.pipelines.get('plant')!;
  await db.query(`select walcast.add_broker('plant', $1, username => 'walcast', password => 'right-pass')`, [
    secured.url,
  ]);
  await waitFor(
    () => relay.internals.ingest.pipelines.get('plant') !== first && flowSummary('plant-temps')?.state === 'running',
    15_000,
    'plant reconnected with the literal password',
  );
  await pub.publishAsync('plant/literal-1/t', JSON.stringify({ temperature: 2 }), { qos: 1 });
  await waitRow('literal-1');

  // A wrong password: refused by the broker.
  await db.query(`select walcast.add_broker('plant', $1, username => 'walcast', password => 'wrong-pass')`, [
    secured.url,
  ]);
  await waitFor(() => brokerSummary('plant')?.state === 'refused', 15_000, 'plant refused');
  const ready = await readyz();
  assert.equal(ready.httpStatus, 200, 'a refusing broker does not make the relay not ready');
  const plant = ready.ingest.brokers.find((b) => b.name === 'plant')!;
  assert.equal(plant.state, 'refused');
  assert.match(
    plant.reason!,
    /MQTT broker plant at mqtt:\/\/127\.0\.0\.1:\d+ refused the connection: .*Not authorized/,
  );
  assert.match(plant.reason!, /Check the username and password given to walcast\.add_broker/);
  await waitFor(
    async () =>
      (await db.query(`select 1 from walcast.broker_status where broker = 'plant' and state = 'refused'`)).length === 1,
    10_000,
    'walcast.broker_status to say refused',
  );
  const [status] = await db.query<{ detail: string }>(
    `select detail from walcast.broker_status where broker = 'plant'`,
  );
  assert.match(status!.detail, /refused the connection: .*Not authorized/);
  assert.match(
    await flowsCli(),
    /^plant\s+mqtt:\/\/127\.0\.0\.1:\d+\s+refused\s+\S+\s+MQTT broker plant .* refused the connection/m,
  );

  // The WebSocket side goes on.
  const ws = await fx.client(relay);
  await ws.subscribe('ws-1');
  await db.query(`insert into readings (device, temperature) values ('ws-1', 3)`);
  assert.deepEqual(
    (await ws.waitForEvents(1)).map((e) => [e.channel, Number(e.row.temperature)]),
    [['ws-1', 3]],
  );

  // Retried with backoff (the broker logs each refusal), logged once.
  await waitFor(
    async () => ((await secured.log()).match(/not authorised/g) ?? []).length >= 3,
    20_000,
    'three refused connections in the broker log',
  );
  assert.equal(logs('ingest_broker_refused').length, 1, JSON.stringify(logs('ingest_broker_refused')));
  assert.equal(logs('ingest_broker_refused')[0]!.broker, 'plant');

  // Fixed with walcast.add_broker: connects and ingests, no restart.
  await db.query(`select walcast.add_broker('plant', $1, username => 'walcast', password => $2)`, [
    secured.url,
    `env:${SECRET}`,
  ]);
  await waitFor(() => brokerSummary('plant')?.state === 'connected', 15_000, 'plant connected again');
  await waitFor(() => flowSummary('plant-temps')?.state === 'running', 15_000, 'plant-temps to run again');
  await pub.publishAsync('plant/fixed-1/t', JSON.stringify({ temperature: 4 }), { qos: 1 });
  await waitRow('fixed-1');
  await waitFor(
    async () =>
      (await db.query(`select 1 from walcast.broker_status where broker = 'plant' and state = 'connected'`)).length ===
      1,
    10_000,
    'walcast.broker_status to say connected',
  );
  assert.equal((await readyz()).ingest.brokers.find((b) => b.name === 'plant')!.reason, undefined);
});

test('an env:VAR password whose variable is unset: ingest_secret_missing, shown as failed', async () => {
  await db.query(
    `select walcast.add_broker('nosecret', $1, username => 'walcast', password => 'env:WALCAST_TEST_NO_SUCH_VAR')`,
    [secured.url],
  );
  await waitFor(() => brokerSummary('nosecret')?.state === 'failed', 10_000, 'nosecret failed');
  await waitFor(() => logs('ingest_secret_missing').length > 0, 10_000, 'ingest_secret_missing logged');
  assert.match(logs('ingest_secret_missing')[0]!.msg, /WALCAST_TEST_NO_SUCH_VAR is not set in the relay environment/);
  await waitFor(
    async () =>
      (await db.query(`select 1 from walcast.broker_status where broker = 'nosecret' and state = 'failed'`)).length ===
      1,
    10_000,
    'walcast.broker_status to say failed',
  );
  assert.match(
    await flowsCli(),
    /^nosecret\s+\S+\s+failed\s+\S+\s+MQTT broker nosecret has password env:WALCAST_TEST_NO_SUCH_VAR/m,
  );
  await db.query(`select walcast.remove_broker('nosecret')`);
});

test('a subscription the broker refuses: the flow shows as refused, logged once; the other flows go on; moved to an allowed topic it ingests', async () => {
  const pub = await publisher(guarded);
  await db.query(`select walcast.add_broker('guarded', $1, username => 'walcast', password => 'right-pass')`, [
    guarded.url,
  ]);
  await db.query(`select walcast.add_flow('allowed', 'guarded', 'ok/{device}/t', 'insert', 'public.readings')`);
  await db.query(`select walcast.add_flow('denied', 'guarded', 'denied/{device}/t', 'insert', 'public.readings')`);
  await waitFor(() => flowSummary('denied')?.state === 'refused', 15_000, 'denied refused');
  await waitFor(() => flowSummary('allowed')?.state === 'running', 15_000, 'allowed to run');
  const link = relay.internals.ingest.pipelines.get('guarded')!.link;
  const connections = link.connections;

  const reason =
    /MQTT broker guarded refused the subscription denied\/\+\/t of flow denied \(reason code 0x87 Not authorized\)/;
  const ready = await readyz();
  const denied = ready.ingest.flows.find((f) => f.name === 'denied')!;
  assert.equal(denied.state, 'refused');
  assert.match(denied.reason!, reason);
  assert.equal(ready.ingest.flows.find((f) => f.name === 'allowed')!.state, 'running');
  await waitFor(
    async () =>
      (await db.query(`select 1 from walcast.flow_stats where flow = 'denied' and state = 'refused'`)).length === 1,
    10_000,
    'walcast.flow_stats to say refused',
  );
  const [stats] = await db.query<{ error: string }>(`select error from walcast.flow_stats where flow = 'denied'`);
  assert.match(stats!.error, reason);
  assert.match(
    await flowsCli(),
    /^denied\s+guarded\s+denied\/\{device\}\/t\s+insert\s+public\.readings\s+refused: MQTT broker guarded refused the subscription/m,
  );

  // The broker's other flow goes on.
  await pub.publishAsync('ok/a-1/t', JSON.stringify({ temperature: 5 }), { qos: 1 });
  await waitRow('a-1');

  // Logged once: a flow added after the refusal runs (its SUBSCRIBE follows any new one of denied/+/t on
  // the connection, so any second refusal would have come before its SUBACK).
  await db.query(`select walcast.add_flow('marker', 'guarded', 'ok/{device}/marker', 'insert', 'public.readings')`);
  await waitFor(() => flowSummary('marker')?.state === 'running', 15_000, 'marker to run');
  await waitFor(() => logs('ingest_subscribe_refused').length > 0, 10_000, 'ingest_subscribe_refused logged');
  assert.equal(logs('ingest_subscribe_refused').length, 1, JSON.stringify(logs('ingest_subscribe_refused')));
  assert.equal(logs('ingest_subscribe_refused')[0]!.flow, 'denied');
  assert.equal(flowSummary('denied')?.state, 'refused');

  // Moved to a topic the ACL allows: it subscribes and ingests, on the same connection.
  await db.query(`select walcast.add_flow('denied', 'guarded', 'other/{device}/t', 'insert', 'public.readings')`);
  await waitFor(() => flowSummary('denied')?.state === 'running', 15_000, 'denied to run on other/+/t');
  await pub.publishAsync('other/o-1/t', JSON.stringify({ temperature: 6 }), { qos: 1 });
  await waitRow('o-1');
  await waitFor(
    async () =>
      (await db.query(`select 1 from walcast.flow_stats where flow = 'denied' and state is null and error is null`))
        .length === 1,
    10_000,
    'walcast.flow_stats to clear the refusal',
  );
  assert.equal(relay.internals.ingest.pipelines.get('guarded')!.link, link, 'the same broker connection');
  assert.equal(link.connections, connections, 'never reconnected');
  assert.ok(
    logged.some((l) => l.flow === 'denied' && /flow denied runs again/.test(l.msg)),
    'the recovery is logged',
  );
});
