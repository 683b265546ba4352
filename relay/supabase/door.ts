// The Supabase Realtime front door (docs/supabase.md): realtime-js's
// Phoenix socket at GET /realtime/v1/websocket?apikey=…&vsn=…, on the same
// HTTP server, router, gate and stream as the WebSocket and MQTT doors.
//
// The door is one router sink taking every channel's events while any
// channel is joined (subscribeAll): its own index (bindings.ts) decides who
// gets a row, since Supabase subscribers filter by table and any column,
// not by walcast channel. Broadcasts come back from the stream as logical
// messages (broadcast.ts), presence diffs too, its state in a table shared
// by every relay (presence.ts).
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type pg from 'pg';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Gate } from '../auth/gate.ts';
import type { Grants } from '../auth/grants.ts';
import { openGrants } from '../auth/grants.ts';
import type { Registration } from '../db/registry.ts';
import { WalcastError } from '../errors.ts';
import type { Router, RoutedEvent, Sink } from '../hub/router.ts';
import type { RecoveryBuffer } from '../hub/recovery.ts';
import { replayMissed } from './resume.ts';
import { replayBroadcasts } from './replay.ts';
import type { Logger } from '../log.ts';
import { CLOSE } from '../../client/protocol.ts';
import { WriteCoalescer } from '../ws/coalesce.ts';
import { Heartbeat } from '../ws/heartbeat.ts';
import { Congestion } from '../ws/congestion.ts';
import { BROADCAST_TABLE } from './broadcast.ts';
import { decodeSupabaseMessage } from './messages.ts';
import { PresenceStore } from './presence.ts';
import { Catalog } from './catalog.ts';
import { Channels, reasonOf } from './channels.ts';
import { SupabaseConnection } from './connection.ts';
import { deliverBroadcast, deliverChange, deliverPresence } from './deliver.ts';
import { handleMessage } from './handle.ts';
import { vsnOf, type Vsn } from './serializer.ts';

export const SUPABASE_WS_PATH = '/realtime/v1/websocket';

export interface SupabaseDoorOptions {
  router: Router;
  gate: Gate;
  /** Reads: table columns (catalog.ts), and presence_state when there is no writePool. */
  pool: pg.Pool;
  /**
   * Writes: broadcasts and presence (the slot relay's pool; an edge's
   * WALCAST_PUBLISH_DATABASE_URL). null: refused with supabase_read_only,
   * whose message is `readOnly`.
   */
  writePool: pg.Pool | null;
  /** Why writes are refused when writePool is null (the edge's hint). */
  readOnly?: string;
  logger: Logger;
  registrations: () => Registration[];
  /** The recovery window a resuming channel's missed changes come from (resume.ts). */
  recovery: RecoveryBuffer;
  maxFrameBytes: number;
  sendQueueBytes: number;
  maxEventBytes: number;
  heartbeatMs: number;
  /** Channels one socket may join (WALCAST_MAX_SUBSCRIPTIONS). */
  maxSubscriptions: number;
  /** How long a queue may stay over half of sendQueueBytes before 4008. */
  slowConsumerMs: number;
  /** How long a relay's presences outlive it (WALCAST_PRESENCE_LEASE_MS): renewed every third of it. */
  presenceLeaseMs: number;
  /** Told when sockets are backed up (pause reading the stream) and when they are not. */
  onCongestion: (congested: boolean) => void;
}

export interface SupabaseCounters {
  connections: number;
  channels: number;
  bindings: number;
  deliveries: number;
  broadcasts: number;
}

export class SupabaseDoor {
  readonly wss: WebSocketServer;
  readonly connections = new Set<SupabaseConnection>();
  readonly channels: Channels;
  readonly catalog: Catalog;
  readonly presence: PresenceStore;
  deliveries = 0;
  broadcasts = 0;
  private readonly coalescer = new WriteCoalescer();
  private readonly heartbeat: Heartbeat;
  /** Backed-up sockets pause the stream, as the WebSocket door's do (ws/congestion.ts). */
  private readonly congestion: Congestion<SupabaseConnection>;
  private readonly sink: Sink = { send: (frame, event) => this.route(frame, event) };

  constructor(readonly opts: SupabaseDoorOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxFrameBytes,
      perMessageDeflate: false,
      // realtime-js offers no subprotocol; phoenix.js may offer "phoenix" (with its token beside it, never echoed).
      handleProtocols: (offered) => (offered.has('phoenix') ? 'phoenix' : false),
    });
    this.catalog = new Catalog(opts.pool);
    this.presence = new PresenceStore(
      { read: opts.pool, write: opts.writePool, readOnly: this.readOnlyReason },
      opts.presenceLeaseMs,
      (err, what) => opts.logger.warn({ err }, `Supabase door: could not ${what}`),
    );
    this.channels = new Channels({
      gate: opts.gate,
      catalog: this.catalog,
      registrations: opts.registrations,
      presence: this.presence,
      onPresenceError: (err, topic) =>
        opts.logger.warn({ err, topic }, 'Supabase door: a presence write or read failed'),
      replay: (j, since) =>
        replayMissed(
          j,
          since,
          opts.recovery,
          this.catalog,
          opts.registrations(),
          opts.maxEventBytes,
          opts.router.frontier(),
        ),
      replayBroadcasts: (j, r) => void replayBroadcasts(j, r, opts.recovery),
      onActive: (active) => {
        if (active) opts.router.subscribeAll(this.sink, { tables: null, messages: true });
        else opts.router.unsubscribeAll(this.sink);
      },
    });
    this.heartbeat = new Heartbeat(opts.heartbeatMs, () => this.connections);
    this.congestion = new Congestion<SupabaseConnection>({
      softBytes: opts.sendQueueBytes / 2,
      graceMs: opts.slowConsumerMs,
      onChange: (congested) => opts.onCongestion(congested),
      onStuck: (c) =>
        this.closeConnection(c, CLOSE.slowConsumer, 'the client reads too slowly (WALCAST_SLOW_CONSUMER_MS)'),
    });
  }

  get counters(): SupabaseCounters {
    const { connections, channels, deliveries, broadcasts } = this;
    return {
      connections: connections.size,
      channels: channels.size,
      bindings: channels.index.size,
      deliveries,
      broadcasts,
    };
  }

  /** What a broadcast or track is answered when this door has no writePool (a stable code, then the fix). */
  get readOnlyReason(): string {
    const detail = this.opts.readOnly ?? 'this relay has no database to write to';
    return reasonOf(new WalcastError('supabase_read_only', { detail }));
  }

  /** Answer upgrades to SUPABASE_WS_PATH on `http` (the WebSocket door leaves that path alone). */
  attach(http: Server): void {
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if ((req.url ?? '').split('?')[0] !== SUPABASE_WS_PATH) return;
      const onError = () => socket.destroy();
      socket.on('error', onError);
      this.admit(req).then(
        (admitted) => {
          socket.off('error', onError);
          if ('status' in admitted) return refuse(socket, admitted.status, admitted.reason);
          this.wss.handleUpgrade(req, socket, head, (ws) => this.open(ws, req, admitted.vsn, admitted.grants));
        },
        (err: unknown) => {
          this.opts.logger.error({ err }, 'Supabase door upgrade failed');
          socket.destroy();
        },
      );
    });
    this.heartbeat.start();
    this.presence.start();
  }

  /** The gate's checks (host, origin, address), then the apikey (the anon key: a walcast JWT) and the serializer. */
  private async admit(
    req: IncomingMessage,
  ): Promise<{ vsn: Vsn; grants: Grants } | { status: number; reason: string }> {
    const admission = await this.opts.gate.admit(req);
    if (!admission.ok) return admission;
    const url = new URL(req.url ?? '/', 'http://relay');
    const vsn = vsnOf(url.searchParams.get('vsn'));
    if (!vsn) return { status: 400, reason: 'vsn must be 1.0.0 or 2.0.0 (or absent: 1.0.0)' };
    const { gate } = this.opts;
    if (!gate.authRequired) return { vsn, grants: openGrants(gate.settings.publish === 'open') };
    const apikey = url.searchParams.get('apikey');
    try {
      if (!apikey) throw new Error('no apikey in the query string');
      return { vsn, grants: await this.channels.verify(apikey) };
    } catch (err) {
      const reason =
        err instanceof WalcastError
          ? err
          : new WalcastError('supabase_invalid_token', { detail: (err as Error).message });
      return { status: 401, reason: reasonOf(reason) };
    }
  }

  private open(ws: WebSocket, req: IncomingMessage, vsn: Vsn, grants: Grants): void {
    const conn = new SupabaseConnection(
      ws,
      req.socket,
      vsn,
      grants,
      this.opts.gate.connectionBucket(),
      {
        enqueue: (c, bytes, queued) => {
          this.coalescer.enqueue(c, bytes);
          this.congestion.note(c, queued);
        },
        overflow: (c) => this.closeConnection(c, CLOSE.slowConsumer, 'send queue full: the client reads too slowly'),
        handle: (c, msg) => handleMessage(this, c, msg),
        failed: (c, err) => {
          this.opts.logger.error({ err }, 'Supabase door: a message failed');
          this.closeConnection(c, CLOSE.internalError, 'internal error');
        },
        ended: (c) => this.ended(c),
      },
      this.opts.sendQueueBytes,
      this.opts.maxEventBytes,
    );
    this.connections.add(conn);
  }

  private ended(conn: SupabaseConnection): void {
    if (!this.connections.delete(conn)) return;
    this.congestion.forget(conn);
    for (const j of [...conn.joined.values()]) this.channels.leave(j);
  }

  closeConnection(conn: SupabaseConnection, code: number, reason: string): void {
    conn.ws.close(code, reason);
    this.ended(conn);
  }

  /** The router's events: row changes for the index, and this door's broadcasts. */
  private route(frame: Buffer | string, event: RoutedEvent | undefined): void {
    if (!event) return;
    if (event.message) {
      if (event.table !== BROADCAST_TABLE || typeof frame === 'string') return;
      const m = decodeSupabaseMessage(frame);
      if (m?.kind === 'broadcast') this.broadcasts += deliverBroadcast(this.channels, m.broadcast);
      else if (m) deliverPresence(this.channels, m.presence);
      return;
    }
    this.deliveries += deliverChange(this.channels, this.catalog, event, frame, this.opts.maxEventBytes);
  }

  /** At shutdown: close every socket with `code` (1001) and stop the heartbeats. */
  async close(code: number = CLOSE.goingAway, reason = 'relay shutting down'): Promise<void> {
    this.heartbeat.stop();
    this.congestion.stop();
    // Presence first: this relay's rows leave in one statement, and the sockets' own leaves are then no-ops.
    await this.presence.close();
    await this.closeAll(code, reason);
  }

  /** Close every socket with `code`; one that does not finish the close handshake within 2 s is cut. */
  async closeAll(code: number, reason: string): Promise<void> {
    const closing = [...this.connections].map(
      (c) =>
        new Promise<void>((resolve) => {
          c.ws.once('close', () => resolve());
          this.closeConnection(c, code, reason);
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(closing), new Promise((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
    for (const ws of this.wss.clients) ws.terminate();
  }
}

function refuse(socket: Duplex, status: number, reason: string): void {
  const text =
    status === 401
      ? 'Unauthorized'
      : status === 400
        ? 'Bad Request'
        : status === 403
          ? 'Forbidden'
          : 'Too Many Requests';
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${reason}\n`);
}
