// Edge relays (relay/edge/) for the tests: in this process on port 0, or as
// a real `walcast edge` process, against a test database and nats-server.
import { after, before } from 'node:test';
import { startEdge, type EdgeRelay } from '../../relay/edge/edge.ts';
import { createLogger, silentLogger } from '../../relay/log.ts';
import type { Relay, RelayConfig } from '../../relay/relay.ts';
import { relayConfig, waitFor, type relayFixture } from './relay.ts';
import { spawnRelay, type RelayProcess } from './process.ts';
import { startNatsServer, type NatsServer } from './nats.ts';

/** An edge in this process, once it consumes the stream. */
export async function startTestEdge(
  databaseUrl: string,
  natsUrl: string,
  overrides: Partial<RelayConfig> = {},
): Promise<EdgeRelay> {
  const logger = process.env.WALCAST_TEST_LOG ? createLogger('debug', process.stderr) : silentLogger;
  const edge = await startEdge(relayConfig(databaseUrl, { natsUrl, ...overrides }), logger);
  await waitFor(() => edge.internals.source.state === 'consuming', 20_000, 'the edge to consume the stream');
  return edge;
}

/**
 * A test file's deployment (call at the top level): a nats-server and a slot
 * relay with the JetStream sink, started before the file's tests, and edges
 * on its slot, all stopped after them.
 */
export function edgeFixture(fx: ReturnType<typeof relayFixture>): {
  readonly nats: NatsServer;
  readonly relay: Relay;
  /** The edges stopped after the tests (push one started otherwise). */
  readonly edges: EdgeRelay[];
  edge(overrides?: Partial<RelayConfig>): Promise<EdgeRelay>;
  /** Resolves once nats and relay are there (a file's top-level before hooks run concurrently). */
  ready(): Promise<void>;
} {
  let nats: NatsServer | undefined;
  let relay: Relay | undefined;
  let starting: Promise<void> | undefined;
  const edges: EdgeRelay[] = [];
  const ready = () =>
    (starting ??= (async () => {
      nats = await startNatsServer();
      relay = await fx.relay({ natsUrl: nats.url });
    })());
  before(ready);
  fx.cleanup(async () => {
    for (const e of edges) await e.stop();
  });
  after(async () => {
    await nats?.stop();
  });
  return {
    get nats() {
      return nats!;
    },
    get relay() {
      return relay!;
    },
    edges,
    ready,
    async edge(overrides = {}) {
      await ready();
      const e = await startTestEdge(fx.db.url, nats!.url, { slot: relay!.slot, ...overrides });
      edges.push(e);
      return e;
    },
  };
}

/** `walcast edge` as a process (resolves once it serves WebSocket clients); MQTT on any free port unless `args` say. */
export function spawnEdge(args: string[], env: Record<string, string>): Promise<RelayProcess> {
  const mqtt = args.includes('--mqtt-port') ? [] : ['--mqtt-port', '0'];
  return spawnRelay([...mqtt, ...args], env, 60_000, undefined, 'edge');
}

/** The MQTT TCP port an edge process printed (`MQTT: mqtt://host:port …`). */
export function mqttPortOf(p: RelayProcess): number {
  const m = /MQTT:\s+mqtt:\/\/\S+:(\d+)/.exec(p.output());
  if (!m) throw new Error(`no MQTT port in the edge's output: ${p.output().slice(-2000)}`);
  return Number(m[1]);
}
