// The WebSocket endpoint (GET /ws): protocol v1 of client/protocol.ts.
// Each connection is a router sink. Bad input gets an error frame with a
// stable code and the connection stays usable; a frame over the size limit
// closes it with 1009 (ws enforces maxPayload); a client whose send queue
// passes its bound is closed with 4008; one that stops answering pings is
// dropped (heartbeat.ts). Who may connect and what a connection may do is
// decided by relay/auth/ (the gate at upgrade, access.ts per connection);
// publish messages go to relay/publish/.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import {
  CLOSE,
  ERROR_CODES,
  WS_PATH,
  parseClientMessage,
  withId,
  type ClientMessage,
  type ErrorCode,
  type PongMessage,
  type SubscribeMessage,
  type UnsubscribedMessage,
} from '../../client/protocol.ts';
import type { Logger } from '../log.ts';
import type { Router } from '../hub/router.ts';
import type { RecoveryBuffer } from '../hub/recovery.ts';
import type { SnapshotReader } from '../db/snapshot.ts';
import { Heartbeat } from './heartbeat.ts';
import { WriteCoalescer } from './coalesce.ts';
import { Congestion } from './congestion.ts';
import { subscribe, type History } from './subscribe.ts';
import { toShortName } from '../table-names.ts';
import { Gate, type Admission } from '../auth/gate.ts';
import type { Publisher } from '../publish/publisher.ts';
import { Connection, type ConnectionHost } from './connection.ts';

export { Connection } from './connection.ts';

export interface WsServerOptions {
  /** Upgrade paths another front door answers on the same HTTP server (MQTT's /mqtt): left alone here. */
  otherDoors?: readonly string[];
  router: Router;
  logger: Logger;
  maxSubscriptions: number;
  maxFrameBytes: number;
  sendQueueBytes: number;
  /** Largest event the dispatcher sends: the room a queue has beyond sendQueueBytes for large events (send-bound.ts). */
  maxEventBytes: number;
  /** How long a queue may stay over half of sendQueueBytes before 4008 (congestion.ts). */
  slowConsumerMs: number;
  /** Told when sockets are backed up (pause reading the stream) and when they are not. */
  onCongestion?: (congested: boolean) => void;
  heartbeatMs: number;
  /** The position from which a new subscription is sure to receive events. */
  position: () => string;
  /** Whether a table name in a subscribe's `tables` filter is registered. */
  hasTable: (name: string) => boolean;
  recovery: RecoveryBuffer;
  snapshots: SnapshotReader;
  /** Origin, address and token checks (relay/auth/). */
  gate: Gate;
  publisher: Publisher;
  /** Why publishing is off, when the relay knows better than WALCAST_PUBLISH=off (an edge without a primary). */
  publishRefusal?: string | undefined;
  /** [edge] Events older than the recovery window, read from the change stream (subscribe.ts). */
  history?: History | undefined;
}

export class WsServer {
  readonly wss: WebSocketServer;
  readonly connections = new Set<Connection>();
  private readonly heartbeat: Heartbeat;
  /** What each Connection may ask of this server. */
  private readonly host: ConnectionHost;
  readonly coalescer = new WriteCoalescer();
  readonly congestion: Congestion<Connection>;
  slowConsumerCloses = 0;
  /** For /metrics: payload bytes sent, and error frames by code. */
  bytesSent = 0;
  readonly clientErrors: Partial<Record<ErrorCode, number>> = {};

  constructor(readonly opts: WsServerOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxFrameBytes,
      perMessageDeflate: false,
      handleProtocols: Gate.selectProtocol,
    });
    this.wss.on('connection', (ws: WebSocket, req: IncomingMessage, admission: Extract<Admission, { ok: true }>) =>
      this.onConnection(ws, req.socket, admission),
    );
    this.host = {
      gate: opts.gate,
      router: opts.router,
      sendQueueBytes: opts.sendQueueBytes,
      maxEventBytes: opts.maxEventBytes,
      enqueue: (conn, bytes, queued) => {
        this.bytesSent += bytes.length;
        this.coalescer.enqueue(conn, bytes);
        this.congestion.note(conn, queued);
      },
      countError: (code) => {
        this.clientErrors[code] = (this.clientErrors[code] ?? 0) + 1;
      },
      closeConnection: (conn, code, reason) => this.closeConnection(conn, code, reason),
      closeSlowConsumer: (conn) => this.closeSlowConsumer(conn),
    };
    this.heartbeat = new Heartbeat(opts.heartbeatMs, () => this.connections);
    this.congestion = new Congestion<Connection>({
      softBytes: opts.sendQueueBytes / 2,
      graceMs: opts.slowConsumerMs,
      onChange: (congested) => opts.onCongestion?.(congested),
      onStuck: (conn) => this.closeSlowConsumer(conn),
    });
  }

  /** Take over HTTP upgrades on `server` for WS_PATH; other paths are refused. */
  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== undefined && this.opts.otherDoors?.includes(path)) return;
      if (path !== WS_PATH) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      // Node removed its error listener for the upgrade, and ws adds its own
      // only in handleUpgrade: a reset while the token is checked must not
      // be an unhandled 'error'.
      const onError = () => socket.destroy();
      socket.on('error', onError);
      this.opts.gate.admit(req).then(
        (admission) => {
          socket.off('error', onError);
          if (!admission.ok) {
            socket.end(
              `HTTP/1.1 ${admission.status} ${admission.status === 403 ? 'Forbidden' : 'Too Many Requests'}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${admission.reason}\n`,
            );
            return;
          }
          this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit('connection', ws, req, admission));
        },
        (err: unknown) => {
          this.opts.logger.error({ err }, 'WebSocket upgrade failed');
          socket.destroy();
        },
      );
    });
    this.heartbeat.start();
  }

  private onConnection(ws: WebSocket, socket: Duplex, admission: Extract<Admission, { ok: true }>): void {
    const conn = new Connection(ws, this.host, socket);
    this.connections.add(conn);
    conn.access.start(admission);
    ws.on('pong', () => {
      conn.isAlive = true;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      conn.isAlive = true;
      // The rate limit comes first: a frame that fails to parse costs a token too.
      if (!conn.access.take()) return conn.error('rate_limited');
      if (isBinary) return conn.error('binary_not_supported');
      try {
        this.onText(conn, data.toString());
      } catch (err) {
        // A bug must cost one message, never the process (test/integration/fuzz.test.ts).
        this.failed(conn, err, undefined);
      }
    });
    ws.on('error', (err) => this.opts.logger.debug({ err }, 'websocket error'));
    ws.on('close', () => this.drop(conn));
  }

  private onText(conn: Connection, text: string): void {
    if (!this.connections.has(conn)) return; // closed by the relay; the close handshake is under way
    const parsed = parseClientMessage(text);
    if (!parsed.ok) return conn.error(parsed.code, parsed.message, parsed.id);
    if (!conn.access.admit(parsed.message)) return;
    try {
      this.handle(conn, parsed.message);
    } catch (err) {
      this.opts.logger.error({ err }, 'failed to handle a client message');
      conn.error('internal_error', ERROR_CODES.internal_error, parsed.message.id);
    }
  }

  private handle(conn: Connection, msg: ClientMessage): void {
    switch (msg.type) {
      case 'subscribe':
        return this.subscribe(conn, msg);
      case 'unsubscribe':
        if (!conn.subscriptions.delete(msg.channel))
          return conn.error('not_subscribed', `not subscribed to ${msg.channel}`, msg.id);
        this.opts.router.unsubscribe(msg.channel, conn);
        return conn.reply(withId<UnsubscribedMessage>({ type: 'unsubscribed', channel: msg.channel }, msg.id));
      case 'ping':
        return conn.reply(withId<PongMessage>({ type: 'pong' }, msg.id));
      case 'auth':
        return void conn.access.auth(msg).catch((err) => this.failed(conn, err, msg.id));
      case 'publish': {
        const grants = conn.access.grants!;
        if (this.opts.gate.settings.publish === 'off')
          return conn.error('publishing_disabled', this.opts.publishRefusal, msg.id);
        return void this.opts.publisher.publish(conn, grants, msg).then(
          (reply) => conn.reply(reply),
          (err) => this.failed(conn, err, msg.id),
        );
      }
    }
  }

  private failed(conn: Connection, err: unknown, id: string | undefined): void {
    this.opts.logger.error({ err }, 'failed to handle a client message');
    conn.error('internal_error', ERROR_CODES.internal_error, id);
  }

  private subscribe(conn: Connection, msg: SubscribeMessage): void {
    if (!conn.access.grants!.canSubscribe(msg.channel)) {
      return conn.error('forbidden', `this connection may not subscribe to ${msg.channel.slice(0, 120)}`, msg.id);
    }
    if (conn.subscriptions.has(msg.channel))
      return conn.error('already_subscribed', `already subscribed to ${msg.channel}`, msg.id);
    if (conn.subscriptions.size >= this.opts.maxSubscriptions) {
      return conn.error(
        'too_many_subscriptions',
        `a connection may hold ${this.opts.maxSubscriptions} subscriptions`,
        msg.id,
      );
    }
    let tables: Set<string> | null = null;
    if (msg.tables) {
      const names = msg.tables.map(toShortName);
      const unknown = names.find((t) => !this.opts.hasTable(t));
      if (unknown !== undefined)
        return conn.error('unknown_table', `table ${unknown} is not registered with walcast`, msg.id);
      tables = new Set(names);
    }
    void subscribe(this.opts, conn, msg, tables, conn.access.grants!.sub);
  }

  closeSlowConsumer(conn: Connection): void {
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    this.slowConsumerCloses++;
    this.drop(conn);
    conn.flush(); // what was admitted before the overflow goes out before the close frame
    conn.ws.close(CLOSE.slowConsumer, SLOW_CONSUMER_REASON);
    // Its queue is full, so the close frame may never be read: cut it loose.
    setTimeout(() => conn.ws.terminate(), 1000).unref();
    this.opts.logger.warn({ queued: conn.ws.bufferedAmount }, 'closed a slow consumer');
  }

  /** Close one client with `code` and `reason` (auth closes: 4001, 4002, 4003). */
  closeConnection(conn: Connection, code: number, reason: string): void {
    this.drop(conn);
    conn.flush(); // what was sent before the close goes out before it
    if (conn.ws.readyState === WebSocket.OPEN || conn.ws.readyState === WebSocket.CONNECTING)
      conn.ws.close(code, reason);
  }

  private drop(conn: Connection): void {
    this.congestion.forget(conn);
    if (!this.connections.delete(conn)) return;
    conn.access.end();
    for (const channel of conn.subscriptions) this.opts.router.unsubscribe(channel, conn);
    conn.subscriptions.clear();
  }

  /** Close every client with `code` and `reason`; the server keeps accepting. */
  closeAll(code: number, reason: string): void {
    for (const conn of [...this.connections]) {
      this.drop(conn);
      conn.flush();
      conn.ws.close(code, reason);
    }
  }

  /** Close every client with `code` (1001 when the relay stops) and stop the heartbeat. */
  async close(code: number = CLOSE.goingAway, reason = 'relay shutting down'): Promise<void> {
    this.heartbeat.stop();
    this.congestion.stop();
    for (const conn of [...this.connections]) {
      conn.flush();
      conn.ws.close(code, reason);
      this.drop(conn);
    }
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    for (const ws of this.wss.clients) ws.terminate();
  }
}

const SLOW_CONSUMER_REASON = 'slow consumer: send queue over its limit';
