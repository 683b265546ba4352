// Starting the MQTT front door: the TCP listener on WALCAST_MQTT_PORT
// (default 1883; `0` any free port; `off` none), the WebSocket door at
// /mqtt, the table keys, and its metrics. The default port is often taken by
// another broker on the machine: then the relay warns with the fix and
// serves MQTT over WebSocket only. A port set explicitly that cannot be
// bound stops start-up with listen_failed.
import type { Server } from 'node:http';
import type net from 'node:net';
import { Counter, Gauge, type Registry } from 'prom-client';
import { WalcastError } from '../errors.ts';
import type { Config } from '../config.ts';
import { MqttServer, type MqttOptions } from './server.ts';
import { attachWebSocket, listenTcp, MQTT_WS_PATH } from './listener.ts';

export const DEFAULT_MQTT_PORT = 1883;

export interface MqttStart extends MqttOptions {
  host: string;
  /** undefined: the default port, given up with a warning if taken. */
  port: number | 'off' | undefined;
  http: Server;
  registry: Registry;
}

/** The door's listener and limits from the configuration (the slot relay's and an edge's alike). */
export function mqttSettings(
  config: Pick<
    Config,
    | 'host'
    | 'mqttPort'
    | 'maxFrameBytes'
    | 'sendQueueBytes'
    | 'slowConsumerMs'
    | 'maxSubscriptions'
    | 'mqttRetainedLimit'
    | 'authTimeoutMs'
  >,
) {
  return {
    host: config.host,
    port: config.mqttPort,
    maxPacketBytes: config.maxFrameBytes,
    sendQueueBytes: config.sendQueueBytes,
    slowConsumerMs: config.slowConsumerMs,
    maxSubscriptions: config.maxSubscriptions,
    retainedLimit: config.mqttRetainedLimit ?? 1000,
    connectTimeoutMs: config.authTimeoutMs ?? 10_000,
  };
}

export interface MqttFrontDoor {
  server: MqttServer;
  /** The TCP port, or null when MQTT is served over WebSocket only. */
  port: number | null;
  /** For /readyz. */
  summary(): {
    port: number | null;
    connections: number;
    subscriptions: number;
    messages_in: number;
    messages_out: number;
  };
  close(): Promise<void>;
}

export async function startMqtt(o: MqttStart): Promise<MqttFrontDoor> {
  const server = new MqttServer(o);
  await server.keys.refresh();
  server.wss = attachWebSocket(server, o.http);
  try {
    server.tcp =
      (await bindTcp(
        (p) => listenTcp(server, o.host, p),
        o.port,
        DEFAULT_MQTT_PORT,
        o.host,
        (msg, fields) => o.logger.warn(fields, msg),
      )) ?? undefined;
  } catch (err) {
    await server.close();
    throw err;
  }
  const address = server.tcp?.address();
  const port = typeof address === 'object' && address ? address.port : null;
  registerMetrics(server, o.registry);
  o.logger.info({ port, path: MQTT_WS_PATH }, port === null ? 'MQTT over WebSocket only' : 'MQTT listening');
  const summary = () => ({
    port,
    connections: server.sessions.size,
    subscriptions: server.subscriptionCount,
    messages_in: server.counters.messagesIn,
    messages_out: server.counters.messagesOut,
  });
  return { server, port, summary, close: () => server.close() };
}

/**
 * The TCP listener: `wanted` explicit (a port, 0) must bind or start-up stops
 * with listen_failed; unset, the default is tried and, if it cannot be bound,
 * given up with a warning (null: MQTT over WebSocket only); 'off': none.
 */
export async function bindTcp(
  listen: (port: number) => Promise<net.Server>,
  wanted: number | 'off' | undefined,
  defaultPort: number,
  host: string,
  warn: (message: string, fields: object) => void,
): Promise<net.Server | null> {
  if (wanted === 'off') return null;
  const port = wanted ?? defaultPort;
  try {
    return await listen(port);
  } catch (err) {
    if (wanted !== undefined)
      throw new WalcastError(
        'listen_failed',
        {
          host,
          port,
          detail: `MQTT: ${(err as Error).message}`,
          fix: 'Set WALCAST_MQTT_PORT (or --mqtt-port) to a free port, 0 (any free port) or off',
        },
        err,
      );
    warn(
      `MQTT port ${port} cannot be bound (another broker?): serving MQTT over WebSocket only, at ${MQTT_WS_PATH}. Set WALCAST_MQTT_PORT to a free port (0: any) or to off`,
      { host, port, err: (err as Error).message },
    );
    return null;
  }
}

function registerMetrics(server: MqttServer, registry: Registry): void {
  const registers = [registry];
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
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  gauge('walcast_mqtt_connections', 'Open MQTT connections (TCP and WebSocket)', () => server.sessions.size);
  gauge(
    'walcast_mqtt_subscriptions',
    'MQTT topic filters subscribed across all connections',
    () => server.subscriptionCount,
  );
  total(
    'walcast_mqtt_connections_total',
    'MQTT connections accepted since start',
    () => server.counters.connectionsTotal,
  );
  total(
    'walcast_mqtt_messages_received_total',
    'PUBLISH packets received from MQTT clients',
    () => server.counters.messagesIn,
  );
  total('walcast_mqtt_messages_sent_total', 'PUBLISH packets sent to MQTT clients', () => server.counters.messagesOut);
  total(
    'walcast_mqtt_publish_refused_total',
    'MQTT publishes refused (grants, validation, rate limit, database)',
    () => server.counters.publishRefused,
  );
  total(
    'walcast_mqtt_slow_consumer_closes_total',
    'MQTT clients closed because their send queue passed WALCAST_SEND_QUEUE_BYTES',
    () => server.counters.slowConsumerCloses,
  );
}
