// Scenario ingest-mqtt (issue 13): N mqtt.js publishers (a child process,
// MQTT 5, QoS 1, a window of unacknowledged publishes each) → Debian's
// Mosquitto (started here on a free port, with docs/ingest.md's settings)
// → a consumer, side by side in one run:
//   walcast   an ingest flow into a table (batches, PUBACK after commit)
//   naive     a gateway as a small Python one does it: one INSERT (autocommit)
//             per message, PUBACK after it, one message at a time (mqtt.js
//             handleMessage)
//   ceiling   a plain QoS 1 subscriber with no database: what this machine's
//             broker and publishers allow at all
// Reported per system: messages/s (from the first publish to the last row
// committed, or received) and p50/p99 from publish to the row's insert
// (clock_timestamp() in the consumer's transaction; walcast's commit follows
// within that batch's transaction) or to receipt (ceiling).
import { fork } from 'node:child_process';
import pg from 'pg';
import mqtt from 'mqtt';
import { startRelay } from '../../relay/relay.ts';
import { silentLogger } from '../../relay/log.ts';
import { relayConfig } from '../../test/helpers/relay.ts';
import { startMosquitto } from '../../test/helpers/mosquitto.ts';
import { dropSlot, openBenchDatabase, type BenchDatabase } from '../lib/env.ts';
import { markdownTable, progress, type Row } from '../lib/report.ts';

export type IngestMqttSystem = 'walcast' | 'naive' | 'ceiling';

export interface IngestMqttPlan {
  publishers: number;
  /** Per publisher. */
  messages: number;
  /** The naive gateway's share (it is slow: a smaller run measures its rate as well). */
  naiveMessages: number;
  window: number;
  systems: IngestMqttSystem[];
  /** Then each system once more at this rate (messages/s in all), for latency below saturation. */
  pacedRate: number;
  pacedSeconds: number;
}

export const INGEST_MQTT_FULL: IngestMqttPlan = {
  publishers: 8,
  messages: 10_000,
  naiveMessages: 2_500,
  window: 100,
  systems: ['ceiling', 'walcast', 'naive'],
  pacedRate: 2_000,
  pacedSeconds: 5,
};
export const INGEST_MQTT_QUICK: IngestMqttPlan = {
  ...INGEST_MQTT_FULL,
  publishers: 4,
  messages: 2_500,
  naiveMessages: 500,
  pacedSeconds: 2,
};

/** docs/ingest.md's settings: no broker cap on messages in flight (walcast's Receive Maximum, 10,000, bounds it), a queue that never drops here. */
const MOSQUITTO_SETTINGS = ['max_inflight_messages 0', 'max_queued_messages 10000000'];
const PUBLISHERS = new URL('../lib/mqtt-publishers.ts', import.meta.url).pathname;
const TABLE = `CREATE TABLE IF NOT EXISTS bench_mqtt (
  id bigserial PRIMARY KEY, device text NOT NULL, seq int NOT NULL, sent float8 NOT NULL, v numeric,
  written_at timestamptz NOT NULL DEFAULT clock_timestamp())`;

interface Measured {
  endMs: number;
  p50: number;
  p99: number;
}

interface Consumer {
  /** Resolves when `total` messages are in (rows or received). */
  finished(total: number): Promise<Measured>;
  stop(): Promise<void>;
}

export async function runIngestMqtt(
  runDb: BenchDatabase,
  plan: IngestMqttPlan,
): Promise<{ rows: Row[]; notes: string[] }> {
  // Commits that wait for the disk, as in production: what batching saves is mostly commits. The run's
  // embedded server has fsync off (the other scenarios measure the relay, not the disk), so this scenario
  // starts one of its own with fsync on; a BENCH_DATABASE_URL server is used as it is configured.
  const db = process.env.BENCH_DATABASE_URL ? runDb : await openBenchDatabase({ fsync: 'on' });
  try {
    await db.pool.query(TABLE);
    const { rows: settings } = await db.pool.query<{ fsync: string; sc: string }>(
      `SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc`,
    );
    const rows = await runSystems(db, plan);
    const note = `PostgreSQL (${db.source}): fsync ${settings[0]!.fsync}, synchronous_commit ${settings[0]!.sc}.`;
    return { rows, notes: [note, comparison(rows)] };
  } finally {
    if (db !== runDb) await db.close();
  }
}

/**
 * Each system in the order of plan.systems, then walcast and the first
 * again (ceiling, walcast, naive, walcast, ceiling): a shared machine's
 * noise falls on both sides; the better run of each is reported.
 */
async function runSystems(db: BenchDatabase, plan: IngestMqttPlan): Promise<Row[]> {
  const order = [...plan.systems, ...plan.systems.filter((s) => s !== 'naive').reverse()];
  const best = new Map<IngestMqttSystem, Row>();
  for (const system of order) {
    const row = await runOnce(db, plan, system);
    const before = best.get(system);
    if (!before || (row['msgs/s'] as number) > (before['msgs/s'] as number)) best.set(system, row);
  }
  const rows: Row[] = plan.systems.map((s) => ({ ...best.get(s)!, runs: order.filter((o) => o === s).length }));
  const paced = Math.round((plan.pacedRate * plan.pacedSeconds) / plan.publishers);
  for (const system of plan.systems)
    rows.push({ ...(await runOnce(db, plan, system, paced, plan.pacedRate)), runs: 1 });
  return rows;
}

/** `rate` 0: as fast as the publishers' windows allow (throughput); else paced (latency). */
async function runOnce(
  db: BenchDatabase,
  plan: IngestMqttPlan,
  system: IngestMqttSystem,
  perPublisher = system === 'naive' ? plan.naiveMessages : plan.messages,
  rate = 0,
): Promise<Row> {
  const total = perPublisher * plan.publishers;
  const offered = rate ? `${rate.toLocaleString('en-US')}/s` : 'max';
  progress(`ingest-mqtt: ${system}, ${plan.publishers} publishers × ${perPublisher} QoS 1 messages, ${offered}`);
  await db.pool.query('TRUNCATE bench_mqtt');
  const broker = await startMosquitto(MOSQUITTO_SETTINGS);
  let consumer: Consumer | undefined;
  try {
    consumer = await CONSUMERS[system](db, broker.url);
    // Every consumer runs in this process (the publishers and the broker do not): its CPU per message
    // does not depend on what else the machine is doing, unlike the rates.
    const cpu0 = process.cpuUsage();
    const { started } = await publish(broker.url, { ...plan, messages: perPublisher }, rate);
    const m = await consumer.finished(total);
    const cpu = process.cpuUsage(cpu0);
    const seconds = (m.endMs - started) / 1000;
    return {
      system,
      offered,
      messages: total,
      'msgs/s': Math.round(total / seconds),
      'p50 ms': round(m.p50),
      'p99 ms': round(m.p99),
      'consumer CPU µs/msg': round((cpu.user + cpu.system) / total),
    };
  } finally {
    await consumer?.stop();
    await broker.stop();
  }
}

const round = (n: number) => Math.round(n * 10) / 10;

/** Starts the publishers' process and returns when they are all acknowledged by the broker. */
async function publish(url: string, plan: IngestMqttPlan, rate: number): Promise<{ started: number; ended: number }> {
  const config = { url, publishers: plan.publishers, messages: plan.messages, window: plan.window, rate };
  const child = fork(PUBLISHERS, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, PUBLISHERS_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = (type: string) =>
    new Promise<Record<string, number>>((resolve, reject) => {
      child.on('message', (m: { type: string }) => m.type === type && resolve(m as unknown as Record<string, number>));
      child.once('exit', (code) => reject(new Error(`publishers exited (${code}) before '${type}'`)));
    });
  await next('ready');
  const done = next('done');
  child.send('go');
  const { started, ended } = await done;
  return { started: started!, ended: ended! };
}

const CONSUMERS: Record<IngestMqttSystem, (db: BenchDatabase, url: string) => Promise<Consumer>> = {
  async walcast(db, url) {
    const slot = `bench_ingest_mqtt_${process.pid}`;
    const relay = await startRelay(relayConfig(db.url, { slot, example: false }), silentLogger);
    await db.pool.query(`SELECT walcast.add_broker('bench', $1, client_id => 'walcast-bench')`, [url]);
    await db.pool.query(`SELECT walcast.add_flow('bench', 'bench', 'bench/{device}/t', 'insert', 'public.bench_mqtt')`);
    const ingest = relay.internals.ingest;
    await until(() => ingest.summary().flows.some((f) => f.name === 'bench' && f.state === 'running'), 15_000);
    return {
      finished: (total) => rowsIn(db, total, () => (ingest.counters.get('bench')?.committed ?? 0) >= total),
      stop: async () => {
        await db.pool.query(`SELECT walcast.remove_flow('bench'); SELECT walcast.remove_broker('bench')`);
        await relay.stop();
        await dropSlot(db.pool, slot);
      },
    };
  },

  async naive(db, url) {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const sub = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: 'naive-gateway' });
    let inserted = 0;
    // mqtt.js waits for this callback before the PUBACK and before the next message: one at a time.
    sub.handleMessage = (packet, done) => {
      const device = String(packet.topic).split('/')[1];
      const m = JSON.parse(packet.payload.toString()) as { seq: number; sent: number; v: number };
      client
        .query('INSERT INTO bench_mqtt (device, seq, sent, v) VALUES ($1, $2, $3, $4)', [device, m.seq, m.sent, m.v])
        .then(
          () => {
            inserted++;
            done();
          },
          (err: Error) => done(err),
        );
    };
    await sub.subscribeAsync('bench/+/t', { qos: 1 });
    return {
      finished: (total) => rowsIn(db, total, () => inserted >= total),
      stop: async () => {
        await sub.endAsync();
        await client.end();
      },
    };
  },

  async ceiling(_db, url) {
    const sub = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: 'plain-subscriber' });
    const latencies: number[] = [];
    let last = 0;
    sub.on('message', (_topic, payload) => {
      last = Date.now();
      latencies.push(last - (JSON.parse(payload.toString()) as { sent: number }).sent);
    });
    await sub.subscribeAsync('bench/+/t', { qos: 1 });
    return {
      finished: async (total) => {
        await until(() => latencies.length >= total, 300_000);
        latencies.sort((a, b) => a - b);
        const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
        return { endMs: last, p50: at(0.5), p99: at(0.99) };
      },
      stop: () => sub.endAsync(),
    };
  },
};

/**
 * Waits until the consumer says `total` rows are committed (its own count, in this process: a `count(*)` every
 * 100 ms would load the database being measured); then checks the table has them, and reads the last insert's
 * time and the publish → insert percentiles from the rows.
 */
async function rowsIn(db: BenchDatabase, total: number, committed: () => boolean): Promise<Measured> {
  await until(committed, 600_000);
  const { rows: count } = await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM bench_mqtt');
  if (Number(count[0]!.n) < total) throw new Error(`ingest-mqtt: ${count[0]!.n} rows in the table, ${total} reported`);
  const { rows } = await db.pool.query<{ end_ms: number; p50: number; p99: number }>(
    `SELECT extract(epoch FROM max(written_at)) * 1000 AS end_ms,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM written_at) * 1000 - sent) AS p50,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM written_at) * 1000 - sent) AS p99
     FROM bench_mqtt`,
  );
  const r = rows[0]!;
  return { endMs: Number(r.end_ms), p50: Number(r.p50), p99: Number(r.p99) };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`ingest-mqtt: timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** walcast ÷ the ceiling (target ≥ 0.8) and ÷ the naive gateway (target ≥ 5), from this run. */
function comparison(rows: Row[]): string {
  const rate = (system: string) => rows.find((r) => r.system === system && r.offered === 'max')?.['msgs/s'];
  const ratio = (a: unknown, b: unknown) =>
    typeof a === 'number' && typeof b === 'number' && b > 0 ? Number((a / b).toFixed(2)) : null;
  const out: Row[] = [
    {
      'walcast msgs/s': rate('walcast') ?? null,
      'vs ceiling (target ≥ 0.8)': ratio(rate('walcast'), rate('ceiling')),
      'vs naive gateway (target ≥ 5)': ratio(rate('walcast'), rate('naive')),
    },
  ];
  return `Comparison (same run, same broker settings and publishers):\n\n${markdownTable(out)}`;
}
