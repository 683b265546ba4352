// One MQTT connection, over TCP or WebSocket (listener.ts), from CONNECT to
// close. States:
//
//   awaiting CONNECT ──CONNECT ok──▶ connected ──DISCONNECT / close──▶ closed
//          │ (bad version, token,          │ keepalive × 1.5 silent, protocol
//          ▼  or CONNECT timeout)           ▼ error, slow consumer, takeover
//        closed (CONNACK refusal)         closed (will published, unless DISCONNECT)
//
// Packets are parsed by mqtt-packet. Packets that touch the database
// (SUBSCRIBE, UNSUBSCRIBE, PUBLISH) run one after another, in the order
// received, so acknowledgements keep that order (MQTT 4.6) and a client's
// publishes are committed in order. Outgoing packets of one event-loop tick
// are written together (outbox.ts).
import mqttPacket, {
  type IConnectPacket,
  type IPublishPacket,
  type ISubscribePacket,
  type IUnsubscribePacket,
  type Packet,
} from 'mqtt-packet';
import type { Frame, RoutedEvent, Sink } from '../hub/router.ts';
import type { Grants } from '../auth/grants.ts';
import type { TokenBucket } from '../auth/limits.ts';
import { Subscriptions } from './subscriptions.ts';
import { fromRouted, packet, type OutMessage, type ProtocolVersion } from './outgoing.ts';
import { Inflight } from './inflight.ts';
import { publishFromClient, REASON } from './inbound.ts';
import { connect, type Will } from './connect.ts';
import { subscribe, unsubscribe } from './subscribe.ts';
import type { MqttServer } from './server.ts';
import { PacketSizeGuard } from './framing.ts';
import type { Persistent } from './sessions.ts';

export interface Transport {
  readonly remoteAddress: string;
  write(bytes: Buffer): void;
  /** Bytes written but not yet taken by the kernel. */
  buffered(): number;
  pause(): void;
  resume(): void;
  /** Close after what was written. */
  end(): void;
  destroy(): void;
}

/** Packets waiting for the database per session before the relay stops reading its socket. */
export const MAX_QUEUED_PACKETS = 32;

export class Session implements Sink, Persistent {
  version: ProtocolVersion = 4;
  clientId = '';
  /** Sessions are keyed by token subject and client id: one user cannot take over another's. */
  key = '';
  grants: Grants | null = null;
  will: Will | null = null;
  /** MQTT 5: the client's Maximum Packet Size; larger messages are not sent to it (3.1.2.11.4). */
  maxPacket = Infinity;
  receiveMaximum = 65_535;
  connected = false;
  closed = false;
  /** Clean session 0 / Session Expiry Interval > 0: kept in walcast.mqtt_sessions (sessions.ts). */
  persistent = false;
  expirySeconds = 0;
  private disconnected = false;
  readonly subs: Subscriptions;
  bucket: TokenBucket | null = null;
  subject: string | null = null;
  pending: Buffer[] = [];
  pendingBytes = 0;
  private readonly parser = mqttPacket.parser();
  private readonly sizes: PacketSizeGuard;
  private chain: Promise<void> = Promise.resolve();
  private connecting = false;
  private queued = 0;
  private lastHeard = Date.now();
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private readonly inflight = new Inflight(() => this.receiveMaximum);
  /** The resume position of a persistent session (inflight.ts). */
  private safe: string | null = null;
  private lastFrame: Frame | undefined;
  private readonly endHooks: (() => void)[] = [];

  constructor(
    readonly server: MqttServer,
    readonly transport: Transport,
    /** Grants the WebSocket upgrade already decided (a token in the URL), if any. */
    readonly admitted: Grants | null,
  ) {
    this.sizes = new PacketSizeGuard(server.opts.maxPacketBytes);
    this.subs = new Subscriptions(server.opts.router, this, this, () => this.grants, server.opts.position);
    this.parser.on('packet', (p: Packet) => this.onPacket(p));
    this.parser.on('error', (err: Error) => this.protocolError(0x81, `malformed packet: ${err.message}`));
    const connectTimeout = setTimeout(() => {
      if (!this.connected) this.destroy('no CONNECT in time');
    }, server.opts.connectTimeoutMs);
    connectTimeout.unref();
  }

  onData(bytes: Buffer): void {
    if (this.closed) return;
    this.lastHeard = Date.now();
    const oversized = this.sizes.feed(bytes);
    if (oversized === -1) return this.protocolError(0x81, 'malformed Remaining Length');
    // Refused before the parser buffers it (WALCAST_MAX_FRAME_BYTES; MQTT 5 Maximum Packet Size in CONNACK).
    if (oversized !== null)
      return this.protocolError(
        0x95,
        `a packet of ${oversized} bytes is over the ${this.server.opts.maxPacketBytes}-byte limit`,
      );
    this.parser.parse(bytes);
  }

  private onPacket(p: Packet): void {
    if (this.closed) return;
    if (!this.connected) {
      // A client may send packets right after CONNECT (MQTT 3.1.4): they wait for the CONNACK.
      if (this.connecting) return this.serial(() => (this.connected ? this.onPacket(p) : undefined));
      if (p.cmd !== 'connect') return this.destroy('first packet was not CONNECT');
      this.connecting = true;
      return this.serial(() => connect(this, p as IConnectPacket));
    }
    switch (p.cmd) {
      case 'pingreq':
        return this.write(mqttPacket.generate({ cmd: 'pingresp' }));
      case 'puback':
        return this.acked(p.messageId!);
      case 'publish':
        return this.serial(() => this.publish(p));
      case 'pubrel':
        // A QoS 2 flow (3.1.1 clients only, docs/mqtt.md): committed when PUBREC went out.
        return this.write(
          mqttPacket.generate({ cmd: 'pubcomp', messageId: p.messageId! }, { protocolVersion: this.version }),
        );
      case 'subscribe':
        return this.serial(() => subscribe(this, p as ISubscribePacket));
      case 'unsubscribe':
        return this.serial(() => unsubscribe(this, p as IUnsubscribePacket));
      case 'disconnect':
        this.disconnected = true;
        // MQTT 5 reason 0x04: disconnect with will message (3.14.2.1).
        if (this.version !== 5 || p.reasonCode !== 0x04) this.will = null;
        // MQTT 5 may shorten (or end) the session's expiry at DISCONNECT (3.14.2.2.2).
        if (this.persistent && p.properties?.sessionExpiryInterval !== undefined)
          this.expirySeconds = Math.min(this.expirySeconds, p.properties.sessionExpiryInterval);
        if (this.persistent && this.expirySeconds === 0) {
          this.persistent = false;
          void this.server.store?.discard(this.key).catch(() => {});
        }
        return this.close();
      case 'connect':
        return this.protocolError(0x82, 'a second CONNECT (MQTT-3.1.0-2)');
      default:
        return this.protocolError(0x82, `unexpected ${p.cmd} packet`);
    }
  }

  /** Run `step` after the session's earlier database work; pause reading while too much waits. */
  private serial(step: () => Promise<void> | void): void {
    if (++this.queued === MAX_QUEUED_PACKETS) this.transport.pause();
    this.chain = this.chain
      .then(() => (this.closed ? undefined : step()))
      .catch((err: unknown) => {
        this.server.opts.logger.error({ err }, 'MQTT: failed to handle a packet');
        this.destroy('internal error');
      })
      .finally(() => {
        if (--this.queued === MAX_QUEUED_PACKETS - 1) this.transport.resume();
      });
  }

  private async publish(p: IPublishPacket): Promise<void> {
    this.server.counters.messagesIn++;
    if (p.qos === 2 && this.version === 5)
      return this.protocolError(0x9b, 'QoS 2 is not supported: CONNACK said Maximum QoS 1');
    if (p.properties?.topicAlias !== undefined)
      return this.protocolError(0x94, 'topic aliases are not supported (Topic Alias Maximum 0)');
    const ack = (reason: number, message?: string) => this.ackPublish(p, reason, message);
    if (!this.bucket!.take() || (this.server.subjectBucket(this) && !this.server.subjectBucket(this)!.take())) {
      this.server.counters.publishRefused++;
      return ack(REASON.quotaExceeded, 'rate_limited: more messages a second than WALCAST_RATE_LIMIT allows');
    }
    const props = p.properties;
    const result = await publishFromClient(this.server.inbound, this, this.grants!, {
      topic: p.topic,
      payload: typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload,
      qos: p.qos === 0 ? 0 : 1,
      retain: p.retain,
      ...(props ? { properties: pick(props) } : {}),
    });
    if (result.ok) return ack(REASON.success);
    this.server.counters.publishRefused++;
    this.server.opts.logger.info(
      { clientId: this.clientId, topic: p.topic.slice(0, 200), reason: result.message },
      'MQTT publish refused',
    );
    return ack(result.reason, result.message);
  }

  /** PUBACK (QoS 1) or PUBREC (QoS 2, 3.1.1) after the commit; QoS 0 gets nothing. */
  private ackPublish(p: IPublishPacket, reason: number, message?: string): void {
    if (p.qos === 0) return;
    const cmd = p.qos === 2 ? 'pubrec' : 'puback';
    if (this.version === 5) {
      const ack = {
        cmd,
        messageId: p.messageId!,
        reasonCode: reason,
        ...(message ? { properties: { reasonString: message } } : {}),
      };
      return this.write(mqttPacket.generate(ack as mqttPacket.IPubackPacket, { protocolVersion: 5 }));
    }
    // MQTT 3.1.1 has no negative acknowledgement: the refusal is logged and counted (docs/mqtt.md).
    this.write(mqttPacket.generate({ cmd, messageId: p.messageId! } as never, { protocolVersion: 4 }));
  }

  // ---- delivery ----

  send(frame: Frame, event?: RoutedEvent): void {
    if (!event || !this.connected || frame === this.lastFrame) return;
    // The same frame reaches a session through a channel and the every-channel subscription.
    this.lastFrame = frame;
    const m = fromRouted(frame, event, (t) => this.server.keys.get(t));
    if (m) this.subs.route(m);
  }

  /** Delivery for Subscriptions: one PUBLISH to this client. */
  deliver(m: OutMessage, qos: 0 | 1, retain: boolean): void {
    if (this.closed) return;
    const bytes = packet(m, this.version, qos, retain);
    if (bytes.length > this.maxPacket) return; // MQTT-3.1.2-25: discarded for this client
    this.server.counters.messagesOut++;
    // A retained row's position (`…~n`) is not a point in the stream: it does not move the resume position.
    const position = m.position.includes('~') ? null : m.position;
    if (qos === 0) {
      if (position !== null && this.inflight.settled) this.moveSafe(position);
      return this.write(bytes);
    }
    const now = this.inflight.add(bytes, position);
    if (now) this.write(now);
    else this.checkQueue();
  }

  /** Persistent: every QoS 1 message at or before this position was acknowledged. */
  resumeAfter(): string | null {
    return this.safe;
  }

  filters(): Record<string, 0 | 1> {
    return Object.fromEntries([...this.subs.filters].map(([f, sub]) => [f, sub.qos]));
  }

  /** Continue from a stored session's position. */
  resumeFrom(position: string | null): void {
    this.safe = position;
  }

  private moveSafe(position: string): void {
    this.safe = position;
    if (this.persistent) this.server.store?.touch(this);
  }

  overflow(): void {
    this.server.closeSlowConsumer(this);
  }

  /** Retained rows wait while the queue is over a quarter of its bound (well under congestion at half). */
  async drained(): Promise<void> {
    const limit = this.server.opts.sendQueueBytes / 4;
    while (!this.closed && this.queuedBytes() > limit) await new Promise((r) => setTimeout(r, 5));
  }

  private acked(id: number): void {
    const { moved, next } = this.inflight.ack(id);
    if (moved !== undefined) this.moveSafe(moved);
    if (next) this.write(next);
  }

  write(bytes: Buffer): void {
    if (this.closed) return;
    this.server.outbox.enqueue(this, bytes);
    this.checkQueue();
  }

  private checkQueue(): void {
    const queued = this.queuedBytes();
    if (queued > this.server.opts.sendQueueBytes) return this.overflow();
    this.server.congestion.note(this, queued);
  }

  queuedBytes(): number {
    return this.transport.buffered() + this.pendingBytes + this.inflight.waitingBytes;
  }

  // ---- lifecycle ----

  /** Called by connect.ts once CONNACK accepted the client. */
  started(keepaliveSeconds: number): void {
    this.connected = true;
    if (keepaliveSeconds > 0) {
      // MQTT-3.1.2-24: one and a half keepalive periods without a packet ends the connection.
      const limit = keepaliveSeconds * 1500;
      this.keepaliveTimer = setInterval(
        () => {
          if (Date.now() - this.lastHeard > limit) this.destroy('keepalive expired');
        },
        Math.min(limit / 2, 30_000),
      );
      this.keepaliveTimer.unref();
    }
  }

  /** MQTT 5: DISCONNECT with `reason`; 3.1.1: close. Then the connection ends. */
  protocolError(reason: number, message: string): void {
    if (this.closed) return;
    this.server.opts.logger.debug({ clientId: this.clientId, reason, message }, 'MQTT protocol error');
    this.disconnectWith(reason, message);
  }

  disconnectWith(reason: number, message: string): void {
    if (this.closed) return;
    if (this.connected && this.version === 5) {
      this.write(
        mqttPacket.generate(
          { cmd: 'disconnect', reasonCode: reason, properties: { reasonString: message.slice(0, 240) } },
          { protocolVersion: 5 },
        ),
      );
    }
    this.close();
  }

  /** Flush what is queued and end the connection. */
  close(): void {
    if (this.closed) return;
    this.server.outbox.flush(this);
    this.ended();
    this.transport.end();
    setTimeout(() => this.transport.destroy(), 1000).unref();
  }

  destroy(why: string): void {
    if (this.closed) return;
    this.server.opts.logger.debug({ clientId: this.clientId, why }, 'MQTT connection dropped');
    this.ended();
    this.transport.destroy();
  }

  onEnd(hook: () => void): void {
    this.endHooks.push(hook);
  }

  /** The transport closed (or the relay closed it): leave the router, publish the will. */
  ended(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepaliveTimer);
    for (const hook of this.endHooks) hook();
    // Parked before the filters are dropped: park() writes them (synchronously read).
    if (this.persistent && this.connected) this.server.park(this);
    this.subs.clear();
    this.server.forget(this);
    const will = this.will;
    this.will = null;
    if (will && !this.disconnected && this.grants) void this.server.publishWill(this, will);
  }
}

function pick(props: NonNullable<IPublishPacket['properties']>): import('./messages.ts').MessageProperties {
  const out: import('./messages.ts').MessageProperties = {};
  if (props.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = props.payloadFormatIndicator;
  if (props.contentType !== undefined) out.contentType = props.contentType;
  if (props.responseTopic !== undefined) out.responseTopic = props.responseTopic;
  if (props.correlationData !== undefined) out.correlationData = props.correlationData;
  if (props.userProperties !== undefined) out.userProperties = props.userProperties;
  return out;
}
