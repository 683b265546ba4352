// The change-stream sinks of a relay, as the composition root sees them: one
// object that the dispatcher hands events and commits to, that gates the
// replication stream's delivered position (gate.ts: the slowest sink
// decides), and that reports health and metrics. With no sink it passes
// commits straight through.
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Lsn } from '../replication/lsn.ts';
import type { DispatchSink } from '../hub/dispatcher.ts';
import { JetStreamSink, SINK_STATES, type SinkState } from './jetstream.ts';
import { CommitGate } from './gate.ts';
import { Webhooks } from './webhooks.ts';
import type { SinkEvent, SinkMessage } from './message.ts';
import type { NatsSettings } from './nats-stream.ts';

export interface SinkStatus {
  name: string;
  /** JetStream: its SinkState; a webhook: delivering or retrying. */
  state: SinkState | 'delivering' | 'retrying';
  lag: { events: number; seconds: number; behind: boolean };
  bufferedBytes: number;
  lastError: string | undefined;
}

export interface StreamGate {
  /** Every event at or before `lsn` reached every sink: the slot may move there. */
  delivered(lsn: Lsn, commitTimeMs: number): void;
  /** A sink fell behind and drained: re-read the slot from the delivered position. */
  rewind(): void;
  /** The JetStream sink has more queued than it will publish soon: stop reading the slot until `on` is false. */
  hold(on: boolean): void;
}

type SinkConfig = Pick<
  Config,
  | 'natsUrl'
  | 'natsStream'
  | 'natsToken'
  | 'natsUser'
  | 'natsPassword'
  | 'natsCreds'
  | 'natsCa'
  | 'natsMaxAgeSeconds'
  | 'natsBufferBytes'
  | 'webhookBatchEvents'
  | 'webhookBatchBytes'
  | 'webhookMaxAttempts'
  | 'webhookTimeoutMs'
  | 'webhookRetryMs'
  | 'webhookBufferBytes'
>;

/** The NATS connection and stream of the configuration (also an edge's, relay/edge/). */
export function natsSettings(config: SinkConfig, url: string): NatsSettings {
  return {
    url,
    stream: config.natsStream ?? 'walcast',
    maxAgeSeconds: config.natsMaxAgeSeconds ?? 604_800,
    token: config.natsToken,
    user: config.natsUser,
    password: config.natsPassword,
    credsFile: config.natsCreds,
    caFile: config.natsCa,
  };
}

export class Sinks implements DispatchSink {
  readonly jetstream: JetStreamSink | undefined;
  readonly webhooks: Webhooks;
  private readonly gate: CommitGate;

  constructor(
    config: SinkConfig,
    logger: Logger,
    stream: StreamGate,
    db: { pool: pg.Pool; startPoint(): Promise<string> },
  ) {
    this.gate = new CommitGate((lsn, timeMs) => stream.delivered(lsn, timeMs));
    const gate = this.gate;
    this.webhooks = new Webhooks({
      pool: db.pool,
      logger,
      startPoint: db.startPoint,
      limits: {
        batchEvents: config.webhookBatchEvents ?? 100,
        batchBytes: config.webhookBatchBytes ?? 1024 * 1024,
        maxAttempts: config.webhookMaxAttempts ?? 10,
        timeoutMs: config.webhookTimeoutMs ?? 10_000,
        retry: { initialMs: config.webhookRetryMs ?? 1000, maxMs: 300_000, factor: 2 },
        bufferBytes: config.webhookBufferBytes ?? 16 * 1024 * 1024,
      },
      join: (name) => gate.join(`webhook:${name}`),
      leave: (name) => gate.leave(`webhook:${name}`),
      release: (name, lsn, timeMs) => gate.release(`webhook:${name}`, lsn, timeMs),
      rewind: () => stream.rewind(),
    });
    if (!config.natsUrl) return;
    gate.join('jetstream');
    this.jetstream = new JetStreamSink({
      ...natsSettings(config, config.natsUrl),
      bufferBytes: config.natsBufferBytes ?? 64 * 1024 * 1024,
      logger,
      onSafe: (lsn, timeMs) => gate.release('jetstream', lsn, timeMs),
      onRewind: () => stream.rewind(),
      onHold: (on) => stream.hold(on),
    });
  }

  async start(): Promise<void> {
    await this.jetstream?.start();
    await this.webhooks.start();
  }

  wants(key: string): boolean {
    return (this.jetstream?.wants(key) ?? false) || this.webhooks.wants(key);
  }

  event(e: SinkEvent): void {
    this.jetstream?.event(e);
    this.webhooks.event(e);
  }

  /** Logical messages go to JetStream only: webhooks carry row changes. */
  message(m: SinkMessage): void {
    this.jetstream?.message(m);
  }

  /** The transaction ending at `lsn` was handed to the sockets and to the sinks. */
  commit(lsn: Lsn, timeMs: number): void {
    this.gate.committed(lsn, timeMs);
    this.jetstream?.commit(lsn, timeMs);
    this.webhooks.commit(lsn, timeMs);
  }

  status(): SinkStatus[] {
    const out: SinkStatus[] = this.webhooks.status().map((w) => ({
      name: `webhook:${w.name}`,
      state: w.retrying ? 'retrying' : 'delivering',
      lag: { ...w.lag, behind: false },
      bufferedBytes: 0,
      lastError: undefined,
    }));
    const js = this.jetstream;
    if (js)
      out.unshift({
        name: 'jetstream',
        state: js.state,
        lag: js.lag,
        bufferedBytes: js.bufferedBytes,
        lastError: js.lastError,
      });
    return out;
  }

  async stop(): Promise<void> {
    await this.webhooks.stop();
    await this.jetstream?.stop();
  }

  /** walcast_sink_* metrics (docs/operations.md). */
  register(registry: Registry): void {
    this.registerWebhooks(registry);
    const js = this.jetstream;
    if (!js) return;
    const registers = [registry];
    const labelNames = ['sink'] as const;
    new Gauge({
      name: 'walcast_sink_state',
      help: "1 for the sink's current state",
      labelNames: ['sink', 'state'],
      registers,
      collect() {
        for (const st of SINK_STATES) this.set({ sink: 'jetstream', state: st }, st === js.state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'walcast_sink_lag_events',
      help: 'Messages routed to the sink and not yet acknowledged by it',
      labelNames,
      registers,
      collect() {
        this.set({ sink: 'jetstream' }, js.lag.events);
      },
    });
    new Gauge({
      name: 'walcast_sink_lag_seconds',
      help: 'Age (since commit) of the oldest message not yet acknowledged by the sink',
      labelNames,
      registers,
      collect() {
        this.set({ sink: 'jetstream' }, js.lag.seconds);
      },
    });
    new Gauge({
      name: 'walcast_sink_behind',
      help: '1 while the sink dropped what its buffer could not hold and will re-read it from the slot',
      labelNames,
      registers,
      collect() {
        this.set({ sink: 'jetstream' }, js.lag.behind ? 1 : 0);
      },
    });
    new Gauge({
      name: 'walcast_sink_buffer_bytes',
      help: 'Bytes of messages held for the sink (bounded by WALCAST_NATS_BUFFER_BYTES)',
      labelNames,
      registers,
      collect() {
        this.set({ sink: 'jetstream' }, js.bufferedBytes);
      },
    });
    const total = (name: string, help: string, key: keyof JetStreamSink['counters']) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          this.inc({ sink: 'jetstream' }, js.counters[key]);
        },
      });
    total('walcast_sink_published_total', 'Messages the sink stored (acknowledged, not duplicates)', 'published');
    total(
      'walcast_sink_duplicates_total',
      'Publishes the sink answered as duplicates (Nats-Msg-Id within the window)',
      'duplicates',
    );
    total(
      'walcast_sink_failures_total',
      'Failed publishes or connection losses; each is followed by a resync from the last stored message',
      'failures',
    );
    total('walcast_sink_rewinds_total', 'Times the sink fell behind (buffer full) and re-read the slot', 'rewinds');
    total(
      'walcast_sink_too_large_total',
      "Events over the NATS server's max_payload, stored as event_too_large notices",
      'tooLarge',
    );
  }

  private registerWebhooks(registry: Registry): void {
    const hooks = this.webhooks;
    const registers = [registry];
    const labelNames = ['webhook'] as const;
    const each = (set: (name: string, s: ReturnType<Webhooks['status']>[number]) => void) => () => {
      for (const s of hooks.status()) set(s.name, s);
    };
    new Counter({
      name: 'walcast_webhook_delivered_total',
      help: 'Events a webhook receiver acknowledged with 2xx',
      labelNames,
      registers,
      collect() {
        this.reset();
        each((webhook, s) => this.inc({ webhook }, s.delivered))();
      },
    });
    new Counter({
      name: 'walcast_webhook_failed_total',
      help: 'Webhook attempts that failed (not 2xx, timeout, connection error)',
      labelNames,
      registers,
      collect() {
        this.reset();
        each((webhook, s) => this.inc({ webhook }, s.failed))();
      },
    });
    new Counter({
      name: 'walcast_webhook_dead_lettered_total',
      help: 'Events moved to walcast.webhook_dead_letters after the last attempt',
      labelNames,
      registers,
      collect() {
        this.reset();
        each((webhook, s) => this.inc({ webhook }, s.deadLettered))();
      },
    });
    new Gauge({
      name: 'walcast_webhook_retrying',
      help: '1 while a webhook retries a batch',
      labelNames,
      registers,
      collect() {
        this.reset();
        each((webhook, s) => this.set({ webhook }, s.retrying ? 1 : 0))();
      },
    });
    new Gauge({
      name: 'walcast_webhook_lag_events',
      help: 'Events for a webhook not yet delivered',
      labelNames,
      registers,
      collect() {
        this.reset();
        each((webhook, s) => this.set({ webhook }, s.lag.events))();
      },
    });
    new Gauge({
      name: 'walcast_webhook_lag_seconds',
      help: 'Age (since commit) of the oldest event not yet delivered to a webhook',
      labelNames,
      registers,
      collect() {
        this.reset();
        each((webhook, s) => this.set({ webhook }, s.lag.seconds))();
      },
    });
  }
}
