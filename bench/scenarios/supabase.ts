// Scenario supabase (issue 17): the fan-out of fanout.ts through the
// Supabase Realtime door, with supabase-js-shaped subscribers (one
// postgres_changes binding with an eq filter on the channel column each,
// raw Phoenix frames: lib/supabase-fleet-child.ts), beside walcast's own
// WebSocket protocol in the same run, against the same relay build and
// rows. Per cell: deliveries/s, CPU seconds per million deliveries, p50/p99
// from the row's created_at to receipt. Targets (docs/supabase.md): CPU per
// delivery ≤ 1.3× the own protocol's, p99 within 2×.
import { startFleet, type Fleet } from '../lib/fleet.ts';
import { markdownTable, progress, type Row } from '../lib/report.ts';
import { startTarget, type Target } from '../lib/targets.ts';
import type { BenchDatabase } from '../lib/env.ts';
import { measure, PREFIX } from './fanout.ts';

export type SupabaseSystem = 'walcast' | 'supabase-v1' | 'supabase-v2';

export interface SupabasePlan {
  subscribers: number[];
  layouts: ('one' | 'spread')[];
  rates: number[];
  systems: SupabaseSystem[];
  warmupMs: number;
  measureMs: number;
}

// 1,000 subscribers of one channel at 1,000 rows/s (a million deliveries a second) saturate a 2-core machine's
// client fleet whatever the protocol; 200 rows/s is the same fan-out within what it can take.
export const SUPABASE_FULL: SupabasePlan = {
  subscribers: [100, 1_000],
  layouts: ['one', 'spread'],
  rates: [200, 1_000],
  systems: ['walcast', 'supabase-v1', 'supabase-v2'],
  warmupMs: 1_500,
  measureMs: 5_000,
};
// CI's smoke test: one small cell per system, at half the rate (a busy 2-core machine).
export const SUPABASE_QUICK: SupabasePlan = {
  subscribers: [100],
  layouts: ['one'],
  rates: [500],
  systems: ['walcast', 'supabase-v2'],
  warmupMs: 500,
  measureMs: 2_000,
};

const CHILD = new URL('../lib/supabase-fleet-child.ts', import.meta.url).pathname;

export async function runSupabase(db: BenchDatabase, plan: SupabasePlan): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  for (const subscribers of plan.subscribers) {
    for (const layout of plan.layouts) {
      const channels = layout === 'one' ? 1 : Math.max(1, subscribers / 10);
      for (const system of plan.systems) {
        for (const rate of plan.rates) {
          const target = await startTarget('walcast', db, { channels, prefix: PREFIX });
          let fleet: Fleet | undefined;
          try {
            fleet = await startSystemFleet(system, target, subscribers, channels);
            progress(`supabase: ${system}, ${subscribers} subscribers on ${channels} channel(s), ${rate} rows/s`);
            rows.push({ ...(await measure(db, plan, target, fleet, { subscribers, channels, rate })), system });
          } finally {
            await fleet?.stop();
            await target.stop();
          }
        }
      }
    }
  }
  return { rows, notes: [comparison(rows)] };
}

function startSystemFleet(system: SupabaseSystem, target: Target, count: number, channels: number): Promise<Fleet> {
  if (system === 'walcast') return startFleet({ url: target.wsUrl, count, channels, prefix: PREFIX, concurrency: 50 });
  const url = target.wsUrl.replace(/^ws/, 'http').replace(/\/ws$/, '');
  const vsn = system === 'supabase-v1' ? '1.0.0' : '2.0.0';
  return startFleet({ url, count, channels, prefix: PREFIX, concurrency: 50, vsn }, 120_000, CHILD);
}

const targetsMet = (cpu: number | null, p99: number | null) =>
  cpu !== null && p99 !== null ? (cpu <= 1.3 && p99 <= 2 ? 'yes' : 'no') : null;

/**
 * A cell where a system delivered under 90 % of what was offered, or closed
 * clients as slow: the client fleet on the same cores is the limit (p50 in
 * seconds), and CPU per delivery there says how long the relay waited, not
 * what a delivery costs. Such cells are shown, and marked, not judged.
 */
function saturated(r: Row): boolean {
  const delivered = r['deliveries/s'];
  const offered = r['offered/s'];
  if (typeof delivered !== 'number' || typeof offered !== 'number') return false;
  return delivered < 0.9 * offered || (typeof r.closed === 'number' && r.closed > 0);
}

/** The Supabase door ÷ walcast's own protocol per cell: CPU per delivery (target ≤ 1.3) and p99 (target ≤ 2). */
function comparison(rows: Row[]): string {
  const out: Row[] = [];
  const ratio = (a: unknown, b: unknown) =>
    typeof a === 'number' && typeof b === 'number' && b > 0 ? Number((a / b).toFixed(2)) : null;
  for (const s of rows.filter((r) => r.system !== 'walcast')) {
    const w = rows.find(
      (r) =>
        r.system === 'walcast' &&
        r.subscribers === s.subscribers &&
        r.channels === s.channels &&
        r['rows/s'] === s['rows/s'],
    );
    const cpu = ratio(s['CPU s per M deliveries'], w?.['CPU s per M deliveries']);
    const p99 = ratio(s['p99 ms'], w?.['p99 ms']);
    out.push({
      system: s.system!,
      subscribers: s.subscribers!,
      channels: s.channels!,
      'rows/s': s['rows/s']!,
      'deliveries/s vs own': ratio(s['deliveries/s'], w?.['deliveries/s']),
      'CPU per delivery vs own (≤1.3)': cpu,
      'p99 vs own (≤2)': p99,
      'targets met': saturated(s) || (w && saturated(w)) ? 'saturated' : targetsMet(cpu, p99),
    });
  }
  return `Comparison (the Supabase door ÷ walcast's own WebSocket protocol, same relay, same rows):\n\n${markdownTable(out)}`;
}
