// The Supabase door's numbers on /metrics (docs/operations.md), read from
// the door when Prometheus scrapes.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { SupabaseCounters } from './door.ts';

const METRICS: [name: string, kind: 'gauge' | 'counter', help: string, key: keyof SupabaseCounters][] = [
  ['walcast_supabase_connections', 'gauge', 'Open Supabase Realtime sockets', 'connections'],
  ['walcast_supabase_channels', 'gauge', 'Channels joined on Supabase Realtime sockets', 'channels'],
  ['walcast_supabase_bindings', 'gauge', 'postgres_changes bindings of joined channels', 'bindings'],
  ['walcast_supabase_deliveries_total', 'counter', 'postgres_changes frames sent to channels', 'deliveries'],
  ['walcast_supabase_broadcasts_total', 'counter', 'Broadcast frames sent to channels', 'broadcasts'],
];

export function registerSupabaseMetrics(registry: Registry, read: () => SupabaseCounters): void {
  for (const [name, kind, help, key] of METRICS) {
    if (kind === 'gauge')
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read()[key]);
        },
      });
    else
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read()[key]);
        },
      });
  }
}
