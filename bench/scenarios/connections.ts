// Scenario 3, connections: N idle WebSockets, each subscribed to one of N/10
// channels; memory per connection = (RSS with them − RSS before) / N. The
// coalescing ws baseline is measured the same way, for scale.
import { setTimeout as sleep } from 'node:timers/promises';
import { startFleet } from '../lib/fleet.ts';
import { rssBytes } from '../lib/proc.ts';
import { progress, type Row } from '../lib/report.ts';
import { startTarget, type SystemName } from '../lib/targets.ts';
import type { BenchDatabase } from '../lib/env.ts';

export interface ConnectionsPlan {
  connections: number;
  systems: SystemName[];
}

export const CONNECTIONS_FULL: ConnectionsPlan = { connections: 10_000, systems: ['walcast', 'ws-coalesce'] };
export const CONNECTIONS_QUICK: ConnectionsPlan = { connections: 1_000, systems: ['walcast', 'ws-coalesce'] };

export async function runConnections(
  db: BenchDatabase,
  plan: ConnectionsPlan,
): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  const n = plan.connections;
  const channels = Math.max(1, n / 10);
  for (const system of plan.systems) {
    const target = await startTarget(system, db, { channels, prefix: 'idle-' });
    try {
      await sleep(1000);
      const before = rssBytes(target.pid);
      progress(`connections: ${system}, opening ${n.toLocaleString('en-US')} subscribed WebSockets`);
      const fleet = await startFleet(
        { url: target.wsUrl, count: n, channels, prefix: 'idle-', concurrency: 100 },
        300_000,
      );
      try {
        await sleep(2000);
        const after = rssBytes(target.pid);
        const report = await fleet.report();
        rows.push({
          system,
          connections: report.open,
          'RSS before MiB': Math.round(before / 1048576),
          'RSS after MiB': Math.round(after / 1048576),
          'KiB per connection (≤10)': Number(((after - before) / n / 1024).toFixed(2)),
        });
      } finally {
        await fleet.stop();
      }
    } finally {
      await target.stop();
    }
  }
  return { rows, notes: ['RSS includes garbage not yet collected: an upper bound.'] };
}
