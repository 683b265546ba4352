// Scenario "edges": one slot relay publishing to JetStream and one or two
// edge relays serving the fan-out scenario's fleet (the same clients and
// rows as fanout.ts), beside the single relay serving the same fleet in the
// same run. For each process: deliveries/s, CPU seconds per million
// deliveries, CPU %; for the clients: p50/p99 from the row's created_at to
// receipt. On one machine this simulates more machines: the per-edge
// figures are what a real deployment multiplies.
//
// With two edges each serves half the fleet, so each pays for reading every
// message over half the deliveries. Beside the single relay serving the
// whole fleet, the run therefore also has a single relay serving one edge's
// share (same channels, half the clients): the edge against it is the cost
// of reading JetStream instead of the slot; against the whole fleet it adds
// what splitting the fleet costs any server (docs/scaling.md#sizing).
//
// Every cell is measured after a warm-up long enough for V8 to have
// compiled the hot paths: a fresh relay's first seconds cost about twice
// its steady state per delivery (bench/README §9), more so for a process
// with fewer deliveries, so a short warm-up overstated an edge of two.
//
// Then the edge's subscription design, measured (edge-filters.ts): one
// consumer on every subject, filtered locally (what relay/edge/source.ts
// does), against a consumer filtered to the wanted channels' subjects.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFleet, type Fleet } from '../lib/fleet.ts';
import { startLoad } from '../lib/load.ts';
import { cpuSeconds } from '../lib/proc.ts';
import { progress, markdownTable, type Row } from '../lib/report.ts';
import { spawnWalcast } from '../lib/targets.ts';
import { dropSlot, type BenchDatabase } from '../lib/env.ts';
import { startNatsServer, type NatsServer } from '../../test/helpers/nats.ts';
import { PREFIX } from './fanout.ts';
import { FILTERS_FULL, FILTERS_QUICK, measureFilters, type FilterPlan } from './edge-filters.ts';

export interface EdgesPlan {
  subscribers: number[];
  rate: number;
  warmupMs: number;
  measureMs: number;
  /** Edges per cell: 0 is the single relay, serving the fleet itself. */
  edges: number[];
  /** The subscribe-all vs filtered-consumer measurement (edge-filters.ts); undefined: not run. */
  filter: FilterPlan | undefined;
}
export const EDGES_FULL: EdgesPlan = {
  subscribers: [1_000, 4_000],
  rate: 1_000,
  warmupMs: 10_000,
  measureMs: 5_000,
  edges: [0, 1, 2],
  filter: FILTERS_FULL,
};
export const EDGES_QUICK: EdgesPlan = {
  subscribers: [200],
  rate: 500,
  warmupMs: 3_000,
  measureMs: 2_000,
  edges: [0, 1, 2],
  filter: FILTERS_QUICK,
};

interface Proc {
  name: string;
  pid: number;
  url: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** `single, half`: the single relay serving one edge of two's share of the fleet (every channel, half the clients). */
type Layout = 'single' | 'single, half' | '1 edge' | '2 edges';
const LAYOUTS: Layout[] = ['single', '1 edge', '2 edges'];

export async function runEdges(db: BenchDatabase, plan: EdgesPlan): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  for (const subscribers of plan.subscribers) {
    const layouts = plan.edges.map((n) => LAYOUTS[n]!);
    if (layouts.includes('2 edges')) layouts.splice(layouts.indexOf('2 edges'), 0, 'single, half');
    for (const layout of layouts) {
      progress(`edges: ${layout}, ${subscribers} subscribers, ${plan.rate} rows/s`);
      rows.push(...(await runLayout(db, plan, layout, subscribers)));
    }
  }
  const notes = [comparison(rows)];
  if (plan.filter) notes.push(await measureFilters(plan.filter));
  return { rows, notes };
}

async function runLayout(db: BenchDatabase, plan: EdgesPlan, layout: Layout, subscribers: number): Promise<Row[]> {
  const slot = `bench_edges_${randomBytes(3).toString('hex')}`;
  const single = layout.startsWith('single');
  const nats: NatsServer | undefined = single ? undefined : await startNatsServer();
  const procs: Proc[] = [];
  const fleets: Fleet[] = [];
  const channels = Math.max(1, subscribers / 10);
  const clients = layout === 'single, half' ? subscribers / 2 : subscribers;
  try {
    const env: Record<string, string> = nats ? { WALCAST_NATS_URL: nats.url } : {};
    const relay = await spawnWalcast(db.url, slot, env);
    procs.push({
      name: single ? `single relay${layout === 'single' ? '' : ' (half)'}` : `slot relay (${layout})`,
      ...relay,
    });
    const servers = single ? [procs[0]!] : [];
    for (let i = 0; i < (layout === '2 edges' ? 2 : layout === '1 edge' ? 1 : 0); i++) {
      // BENCH_EDGE_ENV_A / _B: more environment (JSON) for edge A or B, to compare two settings side by side in one cell.
      const variant = process.env[`BENCH_EDGE_ENV_${'AB'[i]}`];
      const edge = await spawnWalcast(db.url, slot, { ...env, ...(variant ? JSON.parse(variant) : {}) }, 'edge');
      const proc = { name: `edge ${'AB'[i]} (${layout})`, ...edge };
      procs.push(proc);
      servers.push(proc);
    }
    // The same fleet, split evenly over the servers; every channel on each.
    for (const s of servers) {
      fleets.push(
        await startFleet({
          url: s.url,
          count: clients / servers.length,
          channels,
          prefix: PREFIX,
          concurrency: 50,
        }),
      );
    }
    return await measure(db, plan, procs, servers, fleets, { subscribers: clients, channels, layout });
  } finally {
    for (const f of fleets) await f.stop();
    for (const p of procs.reverse()) await p.stop('SIGTERM');
    await dropSlot(db.pool, slot);
    await nats?.stop();
  }
}

async function measure(
  db: BenchDatabase,
  plan: EdgesPlan,
  procs: Proc[],
  servers: Proc[],
  fleets: Fleet[],
  cell: { subscribers: number; channels: number; layout: Layout },
): Promise<Row[]> {
  const load = await startLoad(db.url, plan.rate, cell.channels, PREFIX);
  await sleep(plan.warmupMs);
  for (const f of fleets) await f.reset();
  const cpu0 = procs.map((p) => cpuSeconds(p.pid));
  const t0 = performance.now();
  await sleep(plan.measureMs);
  const reports = await Promise.all(fleets.map((f) => f.report()));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = procs.map((p, i) => cpuSeconds(p.pid) - cpu0[i]!);
  await load.stop();
  const pauses = await Promise.all(procs.map((p) => edgePauses(p)));
  const ms = (us: number) => Number((us / 1000).toFixed(2));
  return procs.map((p, i) => {
    const served = servers.indexOf(p);
    const r = served >= 0 ? reports[served]! : undefined;
    const received = r?.received ?? 0;
    return {
      layout: cell.layout,
      process: p.name,
      subscribers: r ? cell.subscribers / servers.length : 0,
      channels: cell.channels,
      'rows/s': plan.rate,
      'deliveries/s': Math.round(received / seconds),
      'CPU %': Math.round((cpu[i]! / seconds) * 100),
      'CPU s per M deliveries': received ? Number(((cpu[i]! / received) * 1e6).toFixed(2)) : null,
      'p50 ms': r ? ms(r.p50) : null,
      'p99 ms': r ? ms(r.p99) : null,
      closed: r?.closed ?? 0,
      'stream pauses': pauses[i] ?? null,
    };
  });
}

/** An edge's walcast_edge_pauses_total (it stops reading the stream while sockets are backed up); null for relays. */
async function edgePauses(p: Proc): Promise<number | null> {
  if (!p.name.startsWith('edge')) return null;
  const text = await (await fetch(p.url.replace(/^ws/, 'http').replace(/\/ws$/, '/metrics'))).text();
  const m = /^walcast_edge_pauses_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/**
 * The targets, from the rows of one run. A cell is one fleet (its
 * channels say which): each edge against the single relay serving the whole
 * fleet (the target), and an edge of two against the single relay serving
 * the same share of it (what reading JetStream instead of the slot costs).
 */
function comparison(rows: Row[]): string {
  const out: Row[] = [];
  const ratio = (a: unknown, b: unknown) =>
    typeof a === 'number' && typeof b === 'number' && b > 0 ? Number((a / b).toFixed(2)) : null;
  const perDelivery = (r: Row | undefined) => r?.['CPU s per M deliveries'];
  for (const channels of new Set(rows.map((r) => r.channels))) {
    const cell = rows.filter((r) => r.channels === channels);
    const single = cell.find((r) => r.layout === 'single');
    if (!single) continue;
    const half = cell.find((r) => r.layout === 'single, half');
    for (const e of cell.filter((r) => String(r.process).startsWith('edge'))) {
      const share = e.layout === '2 edges' ? half : single;
      out.push({
        subscribers: single.subscribers ?? null,
        edge: String(e.process),
        'edge CPU/delivery ÷ single relay (≤1.3)': ratio(perDelivery(e), perDelivery(single)),
        '÷ single relay serving the same clients as this edge': ratio(perDelivery(e), perDelivery(share)),
        'extra hop p50 ms (≤5)': Number((Number(e['p50 ms']) - Number(single['p50 ms'])).toFixed(2)),
        'extra hop p99 ms': Number((Number(e['p99 ms']) - Number(single['p99 ms'])).toFixed(2)),
        'slot relay CPU % (no clients)':
          cell.find((s) => s.layout === e.layout && s !== e && String(s.process).startsWith('slot'))?.['CPU %'] ?? null,
        'single relay CPU %': single['CPU %'] ?? null,
      });
    }
  }
  return `Edges against the single relay serving the same fleet in the same run:\n\n${markdownTable(out)}`;
}
