// The MQTT front door (docs/mqtt.md): tables as topics, the current row as
// the retained message, publishing with retain as writing the row. It holds
// the sessions and what they share, and plugs into the relay's router,
// gate, publisher and replication flow control; there is no second router
// and no second store. relay.ts starts it (startMqtt) after the WebSocket
// server; an edge relay (relay/edge/mqtt.ts) the same way, on its stream
// source, reading from its DATABASE_URL and writing to its publish URL.
import type net from 'node:net';
import pg from 'pg';
import type { WebSocketServer } from 'ws';
import type { Router } from '../hub/router.ts';
import type { Gate } from '../auth/gate.ts';
import type { Publisher } from '../publish/publisher.ts';
import type { Registration } from '../db/registry.ts';
import type { Logger } from '../log.ts';
import type { TokenBucket } from '../auth/limits.ts';
import type { Grants } from '../auth/grants.ts';
import { Congestion } from '../ws/congestion.ts';
import { Session, type Transport } from './session.ts';
import { Outbox } from './outbox.ts';
import { TableKeys } from './keys.ts';
import { RetainedReader, type RetainedRead } from './retained.ts';
import { publishFromClient, type InboundDeps } from './inbound.ts';
import type { Will } from './connect.ts';
import { SessionStore } from './sessions.ts';
import type { RecoveryBuffer } from '../hub/recovery.ts';
import type { History } from '../ws/subscribe.ts';

export interface MqttOptions {
  /** Where table keys and retained rows are read (on an edge: a read-only role or a replica). */
  databaseUrl: string;
  /**
   * Where the door writes: MQTT messages, deletes, stored retained messages,
   * persistent sessions. Unset: databaseUrl. null (an edge without
   * WALCAST_PUBLISH_DATABASE_URL): publishes are refused with
   * `publishRefusal`, and sessions are not kept past their connection.
   */
  writeDatabaseUrl?: string | null;
  /** Why publishes are refused when writeDatabaseUrl is null. */
  publishRefusal?: string;
  /** Waited for before retained rows are read (an edge on a read replica, relay/edge/snapshots.ts). */
  beforeRead?: () => Promise<void>;
  /** Why CONNECT is refused with Server unavailable now (an edge not consuming its stream yet); null: accepted. */
  unavailable?: () => string | null;
  router: Router;
  gate: Gate;
  publisher: Publisher;
  logger: Logger;
  registrations: () => Registration[];
  /** The position from which a new subscription is sure to receive events. */
  position: () => string;
  /** Where persistent sessions resume from. */
  recovery: RecoveryBuffer;
  /** [edge] Where a session resumes from when its position is before the recovery window: the change stream. */
  history?: History;
  maxPacketBytes: number;
  sendQueueBytes: number;
  slowConsumerMs: number;
  maxSubscriptions: number;
  retainedLimit: number;
  connectTimeoutMs: number;
  /** Told when MQTT clients are backed up (pause reading the replication stream) and when not. */
  onCongestion: (congested: boolean) => void;
}

export interface MqttCounters {
  connectionsTotal: number;
  messagesIn: number;
  messagesOut: number;
  publishRefused: number;
  slowConsumerCloses: number;
}

export class MqttServer {
  readonly sessions = new Set<Session>();
  private readonly byKey = new Map<string, Session>();
  readonly counters: MqttCounters = {
    connectionsTotal: 0,
    messagesIn: 0,
    messagesOut: 0,
    publishRefused: 0,
    slowConsumerCloses: 0,
  };
  readonly outbox = new Outbox();
  readonly congestion: Congestion<Session>;
  readonly keys: TableKeys;
  readonly inbound: InboundDeps;
  /** null: persistent sessions are not kept (no database to write them to). */
  readonly store: SessionStore | null;
  /** Persistent sessions being written at disconnect, by key: a reconnect waits for its own. */
  private readonly parking = new Map<string, Promise<void>>();
  private readonly pool: pg.Pool;
  private readonly writePool: pg.Pool | null;
  private readonly retained: RetainedReader;
  private readonly subjects = new Map<Session, TokenBucket>();
  tcp: net.Server | undefined;
  wss: WebSocketServer | undefined;

  constructor(readonly opts: MqttOptions) {
    const pool = (connectionString: string) => {
      const p = new pg.Pool({ connectionString, max: 4 });
      p.on('error', (err) => opts.logger.warn({ err }, 'idle MQTT database connection failed'));
      return p;
    };
    this.pool = pool(opts.databaseUrl);
    const writeUrl = opts.writeDatabaseUrl === undefined ? opts.databaseUrl : opts.writeDatabaseUrl;
    this.writePool = writeUrl === null ? null : writeUrl === opts.databaseUrl ? this.pool : pool(writeUrl);
    this.keys = new TableKeys(this.pool, opts.registrations, opts.logger);
    this.retained = new RetainedReader(opts.databaseUrl);
    this.store = this.writePool && new SessionStore(this.writePool, opts.logger);
    this.store?.start();
    this.inbound = {
      publisher: opts.publisher,
      // Without a write pool publishing is off: the read pool is never written to.
      pool: this.writePool ?? this.pool,
      keys: this.keys,
      logger: opts.logger,
      publishing: this.writePool ? opts.gate.settings.publish : 'off',
      ...(opts.publishRefusal ? { refusal: opts.publishRefusal } : {}),
    };
    this.congestion = new Congestion<Session>({
      softBytes: opts.sendQueueBytes / 2,
      graceMs: opts.slowConsumerMs,
      onChange: (congested) => opts.onCongestion(congested),
      onStuck: (s) => this.closeSlowConsumer(s),
    });
  }

  get subscriptionCount(): number {
    let n = 0;
    for (const s of this.sessions) n += s.subs.size;
    return n;
  }

  accept(transport: Transport, grants: Grants | null): Session {
    const s = new Session(this, transport, grants);
    this.sessions.add(s);
    this.counters.connectionsTotal++;
    return s;
  }

  /** CONNECT accepted: take over an older connection of the same session (MQTT-3.1.4-3), count the subject. */
  admitted(s: Session, grants: Grants): void {
    const older = this.byKey.get(s.key);
    if (older && older !== s)
      older.disconnectWith(0x8e, 'session taken over by a new connection with the same client id');
    this.byKey.set(s.key, s);
    s.bucket = this.opts.gate.connectionBucket();
    if (grants.sub !== null) {
      s.subject = grants.sub;
      this.subjects.set(s, this.opts.gate.subjectBucket(grants.sub));
    }
    if (grants.expiresAtMs !== null) {
      const t = setTimeout(
        () => s.disconnectWith(0x87, 'token expired: reconnect with a fresh token'),
        Math.min(Math.max(0, grants.expiresAtMs - Date.now()), 2 ** 31 - 1),
      );
      t.unref();
      s.onEnd(() => clearTimeout(t));
    }
  }

  subjectBucket(s: Session): TokenBucket | undefined {
    return this.subjects.get(s);
  }

  forget(s: Session): void {
    this.sessions.delete(s);
    this.congestion.forget(s);
    if (this.byKey.get(s.key) === s) this.byKey.delete(s.key);
    if (this.subjects.delete(s) && s.subject !== null) this.opts.gate.releaseSubject(s.subject);
  }

  /** A persistent session's connection ended: write its filters and position. */
  park(s: Session): void {
    if (!this.store) return;
    this.store.forget(s);
    const saved = this.store
      .save(s)
      .catch((err: unknown) =>
        this.opts.logger.error({ err, clientId: s.clientId }, 'MQTT: saving a persistent session failed'),
      );
    this.parking.set(s.key, saved);
    void saved.finally(() => {
      if (this.parking.get(s.key) === saved) this.parking.delete(s.key);
    });
  }

  /** Wait until an earlier connection of the session `key` has been written. */
  async parked(key: string): Promise<void> {
    await this.parking.get(key);
  }

  async readRetained(s: Session, filters: string[]): Promise<RetainedRead> {
    const grants = s.grants!;
    await this.opts.beforeRead?.();
    return this.retained.read(
      s.subs.plans(filters),
      this.keys.list(),
      this.opts.retainedLimit,
      this.opts.position(),
      (c) => grants.canSubscribe(c),
    );
  }

  /** A will is published as the client would have published it (same grants), when its connection ended without DISCONNECT. */
  async publishWill(s: Session, will: Will): Promise<void> {
    try {
      const result = await publishFromClient(this.inbound, s, s.grants!, will);
      if (!result.ok)
        this.opts.logger.info(
          { clientId: s.clientId, topic: will.topic, reason: result.message },
          'MQTT will message refused',
        );
    } catch (err) {
      this.opts.logger.error({ err, clientId: s.clientId }, 'MQTT will message failed');
    }
  }

  closeSlowConsumer(s: Session): void {
    if (s.closed) return;
    this.counters.slowConsumerCloses++;
    this.opts.logger.warn({ clientId: s.clientId, queued: s.queuedBytes() }, 'closed a slow MQTT consumer');
    // Its queue is full: a DISCONNECT would wait behind it. Cut it.
    s.destroy('slow consumer');
  }

  /** Disconnect every client (MQTT 5: with `reason`); the listeners keep accepting. */
  disconnectAll(reason: number, message: string): void {
    for (const s of [...this.sessions]) s.disconnectWith(reason, message);
  }

  async close(): Promise<void> {
    this.congestion.stop();
    this.store?.stop();
    this.disconnectAll(0x8b, 'relay shutting down: reconnect');
    await Promise.all([
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
      new Promise<void>((r) => (this.wss ? this.wss.close(() => r()) : r())),
    ]);
    for (const ws of this.wss?.clients ?? []) ws.terminate();
    await Promise.all([...this.parking.values()]);
    await this.retained.close();
    if (this.writePool && this.writePool !== this.pool) await this.writePool.end();
    await this.pool.end();
  }
}
