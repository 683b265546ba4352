// The change-stream sinks of a relay, as the composition root sees them: one
// object that the dispatcher hands events and commits to, that gates the
// replication stream's delivered position, and that reports health and
// metrics. With no sink configured it passes commits straight through.
import type { Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Lsn } from '../replication/lsn.ts';
import type { DispatchSink } from '../hub/dispatcher.ts';
import { JetStreamSink, SINK_STATES, type SinkState } from './jetstream.ts';

export interface SinkStatus {
  name: string;
  state: SinkState;
  lag: { events: number; seconds: number; behind: boolean };
  bufferedBytes: number;
  lastError: string | undefined;
}

export interface StreamGate {
  /** Every event at or before `lsn` reached every sink: the slot may move there. */
  delivered(lsn: Lsn, commitTimeMs: number): void;
  /** A sink fell behind and drained: re-read the slot from the delivered position. */
  rewind(): void;
}

export class Sinks {
  readonly jetstream: JetStreamSink | undefined;

  constructor(config: Pick<Config, 'natsUrl' | 'natsStream' | 'natsToken' | 'natsUser' | 'natsPassword' | 'natsCreds' | 'natsCa' | 'natsMaxAgeSeconds' | 'natsBufferBytes'>, logger: Logger, private readonly gate: StreamGate) {
    if (!config.natsUrl) return;
    this.jetstream = new JetStreamSink({
      url: config.natsUrl,
      stream: config.natsStream ?? 'walcast',
      maxAgeSeconds: config.natsMaxAgeSeconds ?? 604_800,
      bufferBytes: config.natsBufferBytes ?? 64 * 1024 * 1024,
      token: config.natsToken,
      user: config.natsUser,
      password: config.natsPassword,
      credsFile: config.natsCreds,
      caFile: config.natsCa,
      logger,
      onSafe: (lsn, timeMs) => gate.delivered(lsn, timeMs),
      onRewind: () => gate.rewind(),
    });
  }

  /** What the dispatcher gives events to; undefined without a sink (nothing extra is serialised). */
  get dispatchSink(): DispatchSink | undefined {
    return this.jetstream;
  }

  async start(): Promise<void> {
    await this.jetstream?.start();
  }

  /** The transaction ending at `lsn` was handed to the sockets and to the sinks. */
  commit(lsn: Lsn, timeMs: number): void {
    if (this.jetstream) this.jetstream.commit(lsn, timeMs);
    else this.gate.delivered(lsn, timeMs);
  }

  status(): SinkStatus[] {
    const js = this.jetstream;
    if (!js) return [];
    return [{ name: 'jetstream', state: js.state, lag: js.lag, bufferedBytes: js.bufferedBytes, lastError: js.lastError }];
  }

  async stop(): Promise<void> {
    await this.jetstream?.stop();
  }

  /** walcast_sink_* metrics (docs/operations.md). */
  register(registry: Registry): void {
    const js = this.jetstream;
    if (!js) return;
    const registers = [registry];
    const labelNames = ['sink'] as const;
    new Gauge({
      name: 'walcast_sink_state', help: "1 for the sink's current state", labelNames: ['sink', 'state'], registers,
      collect() { for (const st of SINK_STATES) this.set({ sink: 'jetstream', state: st }, st === js.state ? 1 : 0); },
    });
    new Gauge({ name: 'walcast_sink_lag_events', help: 'Messages routed to the sink and not yet acknowledged by it', labelNames, registers, collect() { this.set({ sink: 'jetstream' }, js.lag.events); } });
    new Gauge({ name: 'walcast_sink_lag_seconds', help: 'Age (since commit) of the oldest message not yet acknowledged by the sink', labelNames, registers, collect() { this.set({ sink: 'jetstream' }, js.lag.seconds); } });
    new Gauge({ name: 'walcast_sink_behind', help: '1 while the sink dropped what its buffer could not hold and will re-read it from the slot', labelNames, registers, collect() { this.set({ sink: 'jetstream' }, js.lag.behind ? 1 : 0); } });
    new Gauge({ name: 'walcast_sink_buffer_bytes', help: 'Bytes of messages held for the sink (bounded by WALCAST_NATS_BUFFER_BYTES)', labelNames, registers, collect() { this.set({ sink: 'jetstream' }, js.bufferedBytes); } });
    const total = (name: string, help: string, key: keyof JetStreamSink['counters']) =>
      new Counter({ name, help, labelNames, registers, collect() { this.reset(); this.inc({ sink: 'jetstream' }, js.counters[key]); } });
    total('walcast_sink_published_total', 'Messages the sink stored (acknowledged, not duplicates)', 'published');
    total('walcast_sink_duplicates_total', 'Publishes the sink answered as duplicates (Nats-Msg-Id within the window)', 'duplicates');
    total('walcast_sink_failures_total', 'Failed publishes or connection losses; each is followed by a resync from the last stored message', 'failures');
    total('walcast_sink_rewinds_total', 'Times the sink fell behind (buffer full) and re-read the slot', 'rewinds');
  }
}
