// Scenario mqtt (issue 12): fan-out of the same rows to N MQTT subscribers
// (QoS 0, 3.1.1, one filter each: `chat_messages/<channel>/#`), on one
// channel or spread over N/10, at a fixed row rate; walcast's MQTT front
// door side by side with Debian's Mosquitto (started here on a free port in
// a temporary directory, never the machine's 1883), which is fed the same
// rows by a publisher that dual-writes: INSERT, then publish each row (the
// two-system set-up walcast replaces). Per cell, as in fanout.ts:
// deliveries/s, CPU seconds per million deliveries, p50/p99 from the row's
// created_at to receipt.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import mqtt from 'mqtt';
import { startFleet, type Fleet } from '../lib/fleet.ts';
import { markdownTable, progress, type Row } from '../lib/report.ts';
import { startTarget, type Target } from '../lib/targets.ts';
import type { BenchDatabase } from '../lib/env.ts';
import { measure, PREFIX } from './fanout.ts';
import { freePort, waitForPort } from '../../test/helpers/mosquitto.ts';
import { writeFloor } from '../lib/write-floor.ts';

export interface MqttPlan {
  subscribers: number[];
  layouts: ('one' | 'spread')[];
  rates: number[];
  systems: ('walcast' | 'mosquitto')[];
  warmupMs: number;
  measureMs: number;
}

export const MQTT_FULL: MqttPlan = {
  subscribers: [100, 1_000],
  layouts: ['one', 'spread'],
  rates: [1_000],
  systems: ['walcast', 'mosquitto'],
  warmupMs: 1_500,
  measureMs: 5_000,
};
// Quick is CI's smoke test: half the rate, so the client fleet is not the limit on a busy 2-core machine.
export const MQTT_QUICK: MqttPlan = {
  subscribers: [100],
  layouts: ['one'],
  rates: [500],
  systems: ['walcast', 'mosquitto'],
  warmupMs: 500,
  measureMs: 2_000,
};

const CHILD = new URL('../lib/mqtt-fleet-child.ts', import.meta.url).pathname;
const MOSQUITTO = '/usr/sbin/mosquitto';

export async function runMqtt(db: BenchDatabase, plan: MqttPlan): Promise<{ rows: Row[]; notes: string[] }> {
  if (plan.systems.includes('mosquitto') && !existsSync(MOSQUITTO)) {
    throw new Error(
      `${MOSQUITTO} not found: the mqtt scenario compares with Debian's mosquitto (apt-get install -y mosquitto; .ci/run installs it)`,
    );
  }
  const rows: Row[] = [];
  for (const subscribers of plan.subscribers) {
    for (const layout of plan.layouts) {
      const channels = layout === 'one' ? 1 : Math.max(1, subscribers / 10);
      for (const system of plan.systems) {
        for (const rate of plan.rates) {
          const port = await freePort();
          const target =
            system === 'walcast' ? await startWalcast(db, port, channels) : await startMosquitto(db, port, channels);
          let fleet: Fleet | undefined;
          try {
            fleet = await startFleet(
              { port, count: subscribers, channels, prefix: PREFIX, concurrency: 50 },
              120_000,
              CHILD,
            );
            progress(`mqtt: ${system}, ${subscribers} subscribers on ${channels} channel(s), ${rate} rows/s`);
            rows.push({ ...(await measure(db, plan, target, fleet, { subscribers, channels, rate })), system });
          } finally {
            await fleet?.stop();
            await target.stop();
          }
        }
      }
    }
  }
  return { rows, notes: [comparison(rows), await floors(plan)].filter(Boolean) };
}

/**
 * Spread over channels, a subscriber gets about one message per event-loop
 * tick, so each delivery is a socket write of its own for walcast as for
 * Mosquitto. What such a write alone costs a Node process, measured now
 * (lib/write-floor.ts), tells how far per-delivery work can be cut at all.
 */
async function floors(plan: MqttPlan): Promise<string> {
  if (!plan.layouts.includes('spread') || !plan.systems.includes('walcast')) return '';
  const lines: string[] = [];
  for (const subscribers of plan.subscribers) {
    for (const rate of plan.rates) {
      const writes = rate * 10; // subscribers / channels = 10 per row
      const floor = await writeFloor(subscribers, writes, plan.measureMs);
      lines.push(
        `- ${subscribers} sockets, ${writes.toLocaleString('en')} writes/s: ${floor.toFixed(2)} CPU s per M writes`,
      );
    }
  }
  return `Write floor (a bare Node server, one 250-byte write per delivery, no other work: lib/write-floor.ts):\n\n${lines.join('\n')}`;
}

async function startWalcast(db: BenchDatabase, port: number, channels: number): Promise<Target> {
  return startTarget('walcast', db, { channels, prefix: PREFIX }, { WALCAST_MQTT_PORT: String(port) });
}

/** Debian's mosquitto on `port`, and a dual-writing publisher whose rate measure() sets. */
async function startMosquitto(db: BenchDatabase, port: number, channels: number): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'walcast-bench-mosquitto-'));
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\nmax_queued_messages 100000\n`,
  );
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitForPort(port);
  const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4 });
  const writer = new pg.Client({ connectionString: db.url });
  writer.on('error', () => {}); // the run's database is dropped at the end; a query in flight fails in dualWrite
  await writer.connect();
  let load: Promise<void> | undefined;
  let running = false;
  const dualWrite = async (rate: number) => {
    const t0 = performance.now();
    let sent = 0;
    const body = 'x'.repeat(64);
    while (running) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate) - sent;
      if (due > 0) {
        const chans = Array.from({ length: due }, (_, i) => `${PREFIX}${(sent + i) % channels}`);
        const { rows } = await writer.query<{ c: string; id: string; j: string }>(
          `INSERT INTO chat_messages (channel_id, sender, body) SELECT c, 'bench', $2 FROM unnest($1::text[]) AS c
           RETURNING channel_id AS c, id::text AS id, row_to_json(chat_messages)::text AS j`,
          [chans, body],
        );
        for (const r of rows) publisher.publish(`chat_messages/${r.c}/${r.id}`, r.j, { qos: 0 });
        sent += due;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return {
    name: 'mosquitto' as Target['name'],
    pid: child.pid!,
    wsUrl: `mqtt://127.0.0.1:${port}`,
    setRate: (rate) => {
      running = rate > 0;
      if (running) load = dualWrite(rate);
    },
    stop: async () => {
      running = false;
      await load;
      await publisher.endAsync();
      await writer.end();
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** walcast ÷ Mosquitto per cell: deliveries per CPU-second (target ≥ 2) and p99s (target: walcast's no worse). */
function comparison(rows: Row[]): string {
  const out: Row[] = [];
  for (const w of rows.filter((r) => r.system === 'walcast')) {
    const m = rows.find(
      (r) =>
        r.system === 'mosquitto' &&
        r.subscribers === w.subscribers &&
        r.channels === w.channels &&
        r['rows/s'] === w['rows/s'],
    );
    const ratio = (a: unknown, b: unknown) =>
      typeof a === 'number' && typeof b === 'number' && b > 0 ? Number((a / b).toFixed(2)) : null;
    out.push({
      subscribers: w.subscribers!,
      channels: w.channels!,
      'rows/s': w['rows/s']!,
      'efficiency vs Mosquitto (≥2)': ratio(m?.['CPU s per M deliveries'], w['CPU s per M deliveries']),
      'throughput vs Mosquitto': ratio(w['deliveries/s'], m?.['deliveries/s']),
      'p99 walcast ms': w['p99 ms'] ?? null,
      'p99 Mosquitto ms': m?.['p99 ms'] ?? null,
    });
  }
  return `Comparison (walcast's MQTT ÷ Mosquitto fed by a dual-writing publisher; efficiency = deliveries per CPU-second):\n\n${markdownTable(out)}`;
}
