// Scenario 2, fan-out: C subscribers on one channel, or spread over C/10
// channels; rows inserted at a fixed rate. For each system (walcast and the
// baselines and alternatives of lib/targets.ts), deliveries per second,
// the system's CPU seconds per million deliveries, latency from the row's
// created_at to receipt, its RSS, and the CPU of the clients and the load
// generator (so it is visible when they, not the system, are the limit).
import { setTimeout as sleep } from 'node:timers/promises';
import { startFleet, type Fleet } from '../lib/fleet.ts';
import { startLoad, type Load } from '../lib/load.ts';
import { cpuSeconds, rssBytes } from '../lib/proc.ts';
import { progress, markdownTable, type Row } from '../lib/report.ts';
import { ALL_SYSTEMS, startTarget, type SystemName, type Target } from '../lib/targets.ts';
import type { BenchDatabase } from '../lib/env.ts';

export interface FanoutPlan {
  subscribers: number[];
  layouts: ('one' | 'spread')[];
  rates: number[];
  systems: SystemName[];
  warmupMs: number;
  measureMs: number;
}

export const FANOUT_FULL: FanoutPlan = {
  subscribers: [100, 1_000, 5_000],
  layouts: ['one', 'spread'],
  rates: [100, 1_000, 5_000],
  systems: ALL_SYSTEMS,
  warmupMs: 1_500,
  measureMs: 5_000,
};
export const FANOUT_QUICK: FanoutPlan = {
  subscribers: [100],
  layouts: ['one', 'spread'],
  rates: [1_000],
  systems: ALL_SYSTEMS,
  warmupMs: 500,
  measureMs: 2_000,
};

/** Channel prefix of the rows measure()'s load generator inserts (mqtt.ts uses it too). */
export const PREFIX = 'bench-';

export async function runFanout(db: BenchDatabase, plan: FanoutPlan): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  for (const subscribers of plan.subscribers) {
    for (const layout of plan.layouts) {
      const channels = layout === 'one' ? 1 : Math.max(1, subscribers / 10);
      for (const system of plan.systems) {
        let target: Target | undefined;
        let fleet: Fleet | undefined;
        try {
          for (const rate of plan.rates) {
            if (!target || !fleet) {
              target = await startTarget(system, db, { channels, prefix: PREFIX });
              fleet = await startFleet({
                url: target.wsUrl,
                count: subscribers,
                channels,
                prefix: PREFIX,
                concurrency: 50,
              });
            }
            progress(`fanout: ${system}, ${subscribers} subscribers on ${channels} channel(s), ${rate} rows/s`);
            const row = await measure(db, plan, target, fleet, { subscribers, channels, rate });
            rows.push(row);
            // A run that closed slow consumers leaves fewer clients: start afresh.
            if (Number(row.closed) > 0) {
              await fleet.stop();
              await target.stop();
              target = fleet = undefined;
            }
          }
        } finally {
          await fleet?.stop();
          await target?.stop();
        }
      }
    }
  }
  return { rows, notes: [comparison(rows)] };
}

export interface Cell {
  subscribers: number;
  channels: number;
  rate: number;
}

export async function measure(
  db: BenchDatabase,
  plan: Pick<FanoutPlan, 'warmupMs' | 'measureMs'>,
  target: Target,
  fleet: Fleet,
  cell: Cell,
): Promise<Row> {
  let load: Load | undefined;
  if (target.setRate) target.setRate(cell.rate);
  else load = await startLoad(db.url, cell.rate, cell.channels, PREFIX);
  await sleep(plan.warmupMs);
  const before = await fleet.report();
  await fleet.reset();
  const cpu0 = cpuSeconds(target.pid);
  const genCpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(plan.measureMs);
  const after = await fleet.report();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(target.pid) - cpu0;
  const genCpu = process.cpuUsage(genCpu0);
  const rss = rssBytes(target.pid);
  if (load) await load.stop();
  else target.setRate!(0);
  await settle(fleet);
  const deliveries = after.received / seconds;
  const ms = (us: number) => Number((us / 1000).toFixed(2));
  return {
    system: target.name,
    subscribers: cell.subscribers,
    channels: cell.channels,
    'rows/s': cell.rate,
    'deliveries/s': Math.round(deliveries),
    'offered/s': Math.round((cell.rate * cell.subscribers) / cell.channels),
    'CPU s per M deliveries': after.received ? Number(((cpu / after.received) * 1e6).toFixed(2)) : null,
    'CPU %': Math.round((cpu / seconds) * 100),
    'p50 ms': ms(after.p50),
    'p99 ms': ms(after.p99),
    'p99.9 ms': ms(after.p999),
    'RSS MiB': Math.round(rss / 1048576),
    'clients CPU %': Math.round(((after.cpuSeconds - before.cpuSeconds) / seconds) * 100),
    'loadgen CPU %': Math.round(((genCpu.user + genCpu.system) / 1e6 / seconds) * 100),
    closed: after.closed,
  };
}

/** Wait until the clients stop receiving (the system drained), at most 10 s. */
async function settle(fleet: Fleet): Promise<void> {
  let last = -1;
  for (let i = 0; i < 40; i++) {
    const n = await fleet.count();
    if (n === last) return;
    last = n;
    await sleep(250);
  }
}

/** walcast against the others, cell by cell: throughput and CPU efficiency ratios, p99s. */
function comparison(rows: Row[]): string {
  const key = (r: Row) => `${r.subscribers}/${r.channels}/${r['rows/s']}`;
  const by = new Map<string, Map<string, Row>>();
  for (const r of rows) {
    if (!by.has(key(r))) by.set(key(r), new Map());
    by.get(key(r))!.set(String(r.system), r);
  }
  const out: Row[] = [];
  for (const [k, systems] of by) {
    const w = systems.get('walcast');
    if (!w) continue;
    const [subscribers, channels, rate] = k.split('/');
    const ratio = (a: unknown, b: unknown) =>
      typeof a === 'number' && typeof b === 'number' && b > 0 ? Number((a / b).toFixed(2)) : null;
    const c = systems.get('ws-coalesce');
    const n = systems.get('listen-notify');
    const p = systems.get('polling');
    out.push({
      subscribers: Number(subscribers),
      channels: Number(channels),
      'rows/s': Number(rate),
      'throughput vs coalescing ws': ratio(w['deliveries/s'], c?.['deliveries/s']),
      'efficiency vs coalescing ws (≥0.8)': ratio(c?.['CPU s per M deliveries'], w['CPU s per M deliveries']),
      'throughput vs LISTEN/NOTIFY (≥2)': ratio(w['deliveries/s'], n?.['deliveries/s']),
      'p99 walcast ms': w['p99 ms'] ?? null,
      'p99 LISTEN/NOTIFY ms': n?.['p99 ms'] ?? null,
      'p99 polling ÷ walcast (≥10)': ratio(p?.['p99 ms'], w['p99 ms']),
    });
  }
  return `Comparison (walcast ÷ the others; efficiency = deliveries per CPU-second):\n\n${markdownTable(out)}`;
}
