// Prometheus metrics (GET /metrics). Each relay has its own Registry, so
// several relays in one process (the tests) do not collide. The hot path
// stays as it was: the dispatcher and the WebSocket server bump plain number
// fields, and the metrics read them when scraped (collect()). Only the
// commit-to-dispatch histogram is observed directly, once per transaction.
// docs/operations.md lists every metric with its meaning and an alert.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DispatcherCounters } from './hub/dispatcher.ts';
import type { StreamState } from './replication/stream.ts';
import { WAL_STATUSES, type SlotStatus } from './replication/watchdog.ts';

export interface MetricsSource {
  counters: () => DispatcherCounters;
  connections: () => number;
  subscriptions: () => number;
  channels: () => number;
  bytesSent: () => number;
  slowConsumerCloses: () => number;
  /** Error frames sent to clients, by protocol error code. */
  clientErrors: () => Record<string, number>;
  streamState: () => StreamState;
  slot: () => SlotStatus | undefined;
  heartbeats: () => number;
  recoveryEvents: () => number;
  recoveryBytes: () => number;
  /** Connections refused before or at authentication (relay/auth/gate.ts). */
  gate: () => { refusedOrigin: number; refusedAddress: number; authFailures: number };
  /** Rows clients published over WebSocket, and refusals (relay/publish/publisher.ts). */
  publish: () => { published: number; invalid: number; forbidden: number; failed: number };
}

const STREAM_STATES: readonly StreamState[] = ['idle', 'connecting', 'streaming', 'reconnecting', 'closed'];

export class RelayMetrics {
  readonly registry = new Registry();
  readonly commitToDispatch: Histogram;
  readonly errors: Counter<'code'>;
  readonly pruned: Counter<'table'>;
  readonly slotRecreated: Counter;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    const total = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const gauge = (name: string, help: string, read: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const v = read();
          if (v === undefined) this.reset();
          else this.set(v);
        },
      });

    total(
      'walcast_rows_received_total',
      'Row changes decoded from the slot (inserts, updates, deletes), routed or not',
      () => source.counters().rows,
    );
    total(
      'walcast_events_dispatched_total',
      'Events serialised for a channel (one per row and channel)',
      () => source.counters().events,
    );
    total('walcast_deliveries_total', 'Events handed to a subscriber socket', () => source.counters().deliveries);
    total('walcast_transactions_total', 'Committed transactions dispatched', () => source.counters().transactions);
    total(
      'walcast_rows_unrouted_total',
      'Rows of tables in the publication that are not registered',
      () => source.counters().unrouted,
    );
    total(
      'walcast_events_too_large_total',
      'Events over WALCAST_MAX_EVENT_BYTES, sent as an event_too_large error instead',
      () => source.counters().tooLarge,
    );
    total('walcast_sent_bytes_total', 'Bytes of frame payloads sent to clients (UTF-8)', source.bytesSent);
    total(
      'walcast_slow_consumer_closes_total',
      'Clients closed with 4008 because their send queue passed WALCAST_SEND_QUEUE_BYTES',
      source.slowConsumerCloses,
    );
    total('walcast_heartbeats_total', 'Heartbeat messages the slot watchdog emitted', source.heartbeats);
    gauge('walcast_connections', 'Open WebSocket connections', source.connections);
    gauge('walcast_subscriptions', 'Subscriptions across all connections', source.subscriptions);
    gauge('walcast_channels', 'Channels with at least one subscriber', source.channels);
    gauge('walcast_recovery_events', 'Events held in the recovery window', source.recoveryEvents);
    gauge(
      'walcast_recovery_bytes',
      'Bytes of events held in the recovery window (bounded by WALCAST_RECOVERY_MAX_BYTES)',
      source.recoveryBytes,
    );
    gauge(
      'walcast_replication_lag_bytes',
      'WAL written that walcast has not dispatched yet (pg_current_wal_lsn - delivered)',
      () => source.slot()?.lagBytes,
    );
    gauge(
      'walcast_replication_lag_seconds',
      'How long the oldest undispatched WAL has been waiting',
      () => source.slot()?.lagSeconds,
    );
    gauge(
      'walcast_slot_unconfirmed_bytes',
      "pg_current_wal_lsn - the slot's confirmed_flush_lsn (includes the recovery window's hold)",
      () => source.slot()?.unconfirmedBytes,
    );
    gauge(
      'walcast_slot_retained_wal_bytes',
      "pg_current_wal_lsn - the slot's restart_lsn: WAL the server keeps for walcast",
      () => source.slot()?.retainedBytes,
    );
    gauge(
      'walcast_slot_safe_wal_size_bytes',
      'pg_replication_slots.safe_wal_size: WAL that can still be written before the slot is in danger (absent: unlimited)',
      () => source.slot()?.safeWalSize ?? undefined,
    );

    new Gauge({
      name: 'walcast_slot_wal_status',
      help: "1 for the slot's current wal_status (missing: no such slot)",
      labelNames: ['status'],
      registers,
      collect() {
        const s = source.slot()?.walStatus;
        for (const st of WAL_STATUSES) this.set({ status: st }, st === s ? 1 : 0);
      },
    });
    new Gauge({
      name: 'walcast_replication_state',
      help: "1 for the replication stream's current state",
      labelNames: ['state'],
      registers,
      collect() {
        const s = source.streamState();
        for (const st of STREAM_STATES) this.set({ state: st }, st === s ? 1 : 0);
      },
    });
    new Counter({
      name: 'walcast_client_errors_total',
      help: 'Error frames sent to clients, by protocol error code',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const [code, n] of Object.entries(source.clientErrors())) this.inc({ code }, n);
      },
    });
    new Counter({
      name: 'walcast_connections_refused_total',
      help: 'WebSocket upgrades refused: a browser Origin not allowed, or too many connections from one address',
      labelNames: ['reason'],
      registers,
      collect() {
        const g = source.gate();
        this.reset();
        this.inc({ reason: 'origin' }, g.refusedOrigin);
        this.inc({ reason: 'address_limit' }, g.refusedAddress);
      },
    });
    total(
      'walcast_auth_failures_total',
      'Tokens refused: invalid, expired or missing when required',
      () => source.gate().authFailures,
    );
    total(
      'walcast_published_rows_total',
      'Rows clients published over WebSocket, committed',
      () => source.publish().published,
    );
    new Counter({
      name: 'walcast_publish_rejected_total',
      help: 'Publishes refused: invalid (schema), forbidden (grants), failed (database)',
      labelNames: ['reason'],
      registers,
      collect() {
        const p = source.publish();
        this.reset();
        for (const r of ['invalid', 'forbidden', 'failed'] as const) this.inc({ reason: r }, p[r]);
      },
    });
    this.errors = new Counter({
      name: 'walcast_errors_total',
      help: 'Relay errors (docs/errors.md), by code',
      labelNames: ['code'],
      registers,
    });
    this.pruned = new Counter({
      name: 'walcast_ttl_pruned_rows_total',
      help: 'Rows deleted by the TTL job, by table',
      labelNames: ['table'],
      registers,
    });
    this.slotRecreated = new Counter({
      name: 'walcast_slot_recreated_total',
      help: 'Times the slot was recreated (dropped or invalidated); each loses the events in between',
      registers,
    });
    this.commitToDispatch = new Histogram({
      name: 'walcast_commit_to_dispatch_seconds',
      help: "From a transaction's commit in PostgreSQL to its events handed to the sockets",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
