// The ingest's Prometheus metrics (docs/ingest.md#metrics), read from its
// counters when scraped: per flow, messages received, committed (rows
// written or POSTs answered 2xx), duplicates and dead letters by code; per
// broker, whether it is connected and how many QoS 1 messages wait for
// their PUBACK.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Ingest } from './ingest.ts';

export function registerIngestMetrics(registry: Registry, ingest: Ingest): void {
  const registers = [registry];
  const perFlow = (name: string, help: string, read: (c: ReturnType<Ingest['counter']>) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['flow'],
      registers,
      collect() {
        this.reset();
        for (const [flow, c] of ingest.counters) this.inc({ flow }, read(c));
      },
    });
  perFlow('walcast_ingest_received_total', 'MQTT messages a flow received', (c) => c.received);
  perFlow(
    'walcast_ingest_committed_total',
    'Messages of a flow committed as rows (or POSTed with a 2xx)',
    (c) => c.committed,
  );
  perFlow(
    'walcast_ingest_duplicates_total',
    'Redelivered messages whose dedup key was seen before (no second row)',
    (c) => c.duplicates,
  );
  new Counter({
    name: 'walcast_ingest_dead_letters_total',
    help: 'Messages of a flow written to walcast.dead_letters, by code',
    labelNames: ['flow', 'code'],
    registers,
    collect() {
      this.reset();
      for (const [flow, c] of ingest.counters)
        for (const [code, n] of Object.entries(c.dead)) this.inc({ flow, code }, n);
    },
  });
  const perBroker = (
    name: string,
    help: string,
    read: (p: Ingest['pipelines'] extends Map<string, infer P> ? P : never) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['broker'],
      registers,
      collect() {
        this.reset();
        for (const [broker, p] of ingest.pipelines) this.set({ broker }, read(p));
      },
    });
  perBroker('walcast_ingest_broker_connected', '1 while the connection to the broker is up', (p) =>
    p.link.state === 'connected' ? 1 : 0,
  );
  perBroker(
    'walcast_ingest_unacked_messages',
    'QoS 1 messages received and not acknowledged yet (bounded by 10,000)',
    (p) => p.link.unacked,
  );
  perBroker(
    'walcast_ingest_qos0_dropped',
    'QoS 0 messages dropped because 10,000 were waiting',
    (p) => p.link.droppedQos0,
  );
}
