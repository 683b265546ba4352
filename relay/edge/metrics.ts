// /metrics of an edge: the slot relay's metrics (relay/metrics.ts) over the
// edge's parts (an edge has no slot: its stream state is its consumer's),
// and the consumer's own: state, lag, messages read.
import { Counter, Gauge } from 'prom-client';
import { RelayMetrics } from '../metrics.ts';
import type { DispatcherCounters } from '../hub/dispatcher.ts';
import type { Router } from '../hub/router.ts';
import type { RecoveryBuffer } from '../hub/recovery.ts';
import type { WsServer } from '../ws/server.ts';
import type { Gate } from '../auth/gate.ts';
import type { Publisher } from '../publish/publisher.ts';
import { SOURCE_STATES, type StreamSource } from './source.ts';

export interface EdgeParts {
  source: StreamSource;
  counters: DispatcherCounters;
  ws: WsServer;
  router: Router;
  recovery: RecoveryBuffer;
  gate: Gate;
  publisher: Publisher;
}

export function edgeMetrics(p: EdgeParts): RelayMetrics {
  const metrics = new RelayMetrics({
    counters: () => p.counters,
    connections: () => p.ws.connections.size,
    subscriptions: () => p.router.subscriptionCount,
    channels: () => p.router.channelCount,
    bytesSent: () => p.ws.bytesSent,
    slowConsumerCloses: () => p.ws.slowConsumerCloses,
    clientErrors: () => p.ws.clientErrors as Record<string, number>,
    streamState: () =>
      p.source.state === 'consuming' ? 'streaming' : p.source.state === 'closed' ? 'closed' : 'reconnecting',
    slot: () => undefined,
    heartbeats: () => 0,
    recoveryEvents: () => p.recovery.count,
    recoveryBytes: () => p.recovery.bytes,
    gate: () => p.gate.counters,
    publish: () => p.publisher.counters,
  });
  const registers = [metrics.registry];
  const { source } = p;
  new Gauge({
    name: 'walcast_edge_consumer_state',
    help: "1 for the edge's stream consumer state",
    labelNames: ['state'],
    registers,
    collect() {
      for (const s of SOURCE_STATES) this.set({ state: s }, s === source.state ? 1 : 0);
    },
  });
  new Gauge({
    name: 'walcast_edge_lag_messages',
    help: 'Stream messages not yet read by this edge',
    registers,
    collect() {
      this.set(source.lag.messages);
    },
  });
  new Gauge({
    name: 'walcast_edge_lag_seconds',
    help: 'Age (since commit) of the last message read, while behind',
    registers,
    collect() {
      this.set(source.lag.seconds);
    },
  });
  new Counter({
    name: 'walcast_edge_messages_total',
    help: 'Stream messages read by this edge',
    registers,
    collect() {
      this.reset();
      this.inc(source.counters.messages);
    },
  });
  new Counter({
    name: 'walcast_edge_pauses_total',
    help: 'Times the edge stopped reading the stream because sockets were backed up',
    registers,
    collect() {
      this.reset();
      this.inc(source.counters.pauses);
    },
  });
  new Counter({
    name: 'walcast_edge_repeats_total',
    help: 'Stream messages not routed because their position was routed already (a repeat)',
    registers,
    collect() {
      this.reset();
      this.inc(source.counters.repeats);
    },
  });
  return metrics;
}
