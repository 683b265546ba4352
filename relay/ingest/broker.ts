// One connection to an external MQTT broker (mqtt.js), as a subscriber.
//
//   connecting ──CONNACK──▶ connected ──lost──▶ reconnecting ──CONNACK──▶ connected …
//        └──unreachable──▶ connecting / reconnecting (backoff 1 s doubling to 30 s, jitter)
//        └──CONNACK refusing (bad credentials, not authorized)──▶ refused (retried with the same backoff)
//   any ──close()──▶ closed
//
// Acknowledgements are ours: mqtt.js sends a QoS 1 PUBACK as soon as its
// handleMessage callback returns, and it reads the next packet only after
// that, so acknowledging after a commit would allow one message per commit
// (about 1,100/s). Instead every message is handed on at once and its
// PUBACK is held back until the caller calls ack() (after the row is
// committed or the POST answered); many messages are in flight while a
// batch commits. A PUBACK is sent only on the connection the message came
// on: after a reconnect, the broker sends unacknowledged messages again
// (MQTT 4.4), so one of an earlier connection is dropped, never sent.
//
// Bound: at most MAX_UNACKED QoS 1 messages are unacknowledged, announced to
// the broker as MQTT 5 Receive Maximum (3.1.2.11.3), which the broker must
// respect (Mosquitto 2.0 uses it for MQTT 5 clients instead of its
// max_inflight_messages: 10,000 arrive unacknowledged, measured). QoS 0
// messages beyond that many waiting are dropped (counted): QoS 0 promises no more.
//
// Subscriptions follow setSubscriptions(): added and removed on the live
// connection. After a CONNACK without a session (a clean start, an expired
// session, a broker that lost it) every filter is subscribed again, which
// MQTT clients with clean=false are known to forget. A filter the broker
// refuses (SUBACK reason code 0x80 or more, e.g. 0x87 Not authorized by its
// ACL) is kept in `refused` and tried again every SUBSCRIBE_RETRY_MS (an ACL
// may be fixed on the broker), not every time the catalog is read.
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient, type Packet } from 'mqtt';
import { backoffDelay } from '../../client/backoff.ts';
import { WalcastError } from '../errors.ts';
import type { BrokerDef } from './catalog.ts';

/** QoS 1 messages unacknowledged at once, per broker (MQTT 5 Receive Maximum). */
export const MAX_UNACKED = 10_000;

const RECONNECT = { initialMs: 1000, maxMs: 30_000, factor: 2 };
/** A refused subscription is tried again after this long (on the live connection). */
export const SUBSCRIBE_RETRY_MS = 30_000;

export type BrokerState = 'connecting' | 'connected' | 'reconnecting' | 'refused' | 'closed';

export interface RefusedFilter {
  qos: 0 | 1;
  /** The SUBACK reason code (0x80 Unspecified error, 0x87 Not authorized, …). */
  reason: number;
  at: number;
}

export interface Inbound {
  topic: string;
  payload: Buffer;
  qos: number;
  receivedAt: number;
  /** Sends the PUBACK (QoS 1), if the connection it came on is still up. Once. */
  ack(): void;
}

export interface BrokerEvents {
  message: [Inbound];
  state: [BrokerState, WalcastError | undefined];
  subscribeRefused: [filter: string, reason: number];
}

type SendPacket = (packet: Packet, cb?: () => void) => void;

export class BrokerLink extends EventEmitter<BrokerEvents> {
  state: BrokerState = 'connecting';
  error: WalcastError | undefined;
  unacked = 0;
  droppedQos0 = 0;
  private readonly client: MqttClient;
  private readonly sendPacket: SendPacket;
  /** Increments with each CONNACK: a PUBACK belongs to the connection its message came on. */
  private epoch = 0;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private desired = new Map<string, 0 | 1>();
  /** Subscribed or being subscribed on this connection. */
  private active = new Map<string, 0 | 1>();
  /** Filters the broker granted (SUBACK) on this connection. */
  readonly granted = new Set<string>();
  /** Filters the broker refused (SUBACK ≥ 0x80), until granted or no longer desired. */
  readonly refused = new Map<string, RefusedFilter>();
  private qos0Waiting = 0;
  /** Packet identifiers to acknowledge at the end of this turn, on the connection of `epoch`. */
  private acks: number[] = [];

  constructor(
    readonly def: BrokerDef,
    password: string | undefined,
  ) {
    super();
    const options: IClientOptions = {
      clientId: def.clientId ?? `walcast_${def.name}`,
      clean: def.clean,
      username: def.username ?? undefined,
      password,
      protocolVersion: 5,
      // A persistent session outlives the connection (MQTT 5: expiry 0 would end it at once).
      properties: { receiveMaximum: MAX_UNACKED, ...(def.clean ? {} : { sessionExpiryInterval: 0xffffffff }) },
      reconnectPeriod: 0, // reconnects are ours, with backoff
      resubscribe: false, // so are subscriptions (see subscribeAll)
      connectTimeout: 10_000,
      keepalive: 30,
      // mqtt.js logs through debug on every packet; formatting those calls costs at 40,000 messages/s.
      log: () => {},
    };
    this.client = mqtt.connect(def.url, options);
    // mqtt.js's own PUBACKs (sent when handleMessage returns) are dropped; ack() sends ours.
    const raw = this.client as unknown as { _sendPacket: SendPacket };
    this.sendPacket = raw._sendPacket.bind(this.client);
    raw._sendPacket = (packet, cb) => {
      if (packet.cmd === 'puback') return cb?.();
      this.sendPacket(packet, cb);
    };
    this.client.on('connect', (connack) => this.connected(connack.sessionPresent));
    this.client.on('message', (topic, payload, packet) => this.received(topic, payload, packet));
    this.client.on('error', (err) => this.failed(err));
    this.client.on('close', () => this.lost());
  }

  /** The filters (with their QoS) the flows of this broker need; applied on the live connection. */
  setSubscriptions(filters: Map<string, 0 | 1>): void {
    this.desired = new Map(filters);
    if (this.state === 'connected') this.sync();
  }

  async close(): Promise<void> {
    this.state = 'closed';
    clearTimeout(this.reconnectTimer);
    // PUBACKs just sent are flushed; a broker that does not answer does not hold the relay's stop for long.
    let timer: NodeJS.Timeout | undefined;
    const ended = this.client.endAsync().catch(() => {});
    await Promise.race([ended, new Promise((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
    if (!this.client.disconnected) await this.client.endAsync(true).catch(() => {});
    this.emit('state', 'closed', undefined);
  }

  /** CONNACKs so far: 1 while the first connection lasts. */
  get connections(): number {
    return this.epoch;
  }

  private connected(sessionPresent: boolean): void {
    this.epoch++;
    this.attempt = 0;
    this.unacked = 0;
    this.qos0Waiting = 0;
    this.error = undefined;
    // Without a session the broker has no subscription of ours (the first connection of this process
    // subscribes too: what an old session holds is not known here; Retain Handling 1 avoids resending retained).
    if (!sessionPresent || this.epoch === 1) {
      this.active.clear();
      this.granted.clear();
    }
    this.setState('connected');
    this.sync();
  }

  private received(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const qos = packet.qos;
    if (qos === 0 && this.qos0Waiting >= MAX_UNACKED) {
      this.droppedQos0++;
      return;
    }
    if (qos > 0) this.unacked++;
    else this.qos0Waiting++;
    this.emit('message', new Received(this, this.epoch, topic, payload, qos, packet.messageId));
  }

  /** Received.ack(): once per message, on the connection (`epoch`) it came on. */
  acknowledge(epoch: number, qos: number, messageId: number | undefined): void {
    if (epoch !== this.epoch) return; // that connection is gone; the broker sends it again
    if (qos === 0) return void this.qos0Waiting--;
    this.unacked--;
    this.queueAck(messageId!);
  }

  /** The PUBACKs of one turn (a committed batch) leave in one write, not one packet object and syscall each. */
  private queueAck(messageId: number): void {
    this.acks.push(messageId);
    if (this.acks.length > 1) return;
    const epoch = this.epoch;
    process.nextTick(() => {
      const ids = this.acks;
      this.acks = [];
      if (epoch !== this.epoch || !this.client.connected) return;
      // MQTT 5 section 3.4.2.1: with reason code 0 and no properties, a PUBACK ends after the packet identifier.
      const out = Buffer.allocUnsafe(ids.length * 4);
      for (let i = 0; i < ids.length; i++) {
        out[i * 4] = 0x40;
        out[i * 4 + 1] = 2;
        out.writeUInt16BE(ids[i]!, i * 4 + 2);
      }
      this.client.stream.write(out);
    });
  }

  private failed(err: Error & { code?: number | string }): void {
    const url = this.def.url;
    const refused = typeof err.code === 'number';
    const code = refused ? 'ingest_broker_refused' : 'ingest_broker_unreachable';
    this.error = new WalcastError(code, { broker: this.def.name, url, detail: err.message }, err);
    if (this.state !== 'connected') this.emit('state', this.state, this.error);
  }

  private lost(): void {
    if (this.state === 'closed') return;
    this.error ??= new WalcastError('ingest_broker_unreachable', {
      broker: this.def.name,
      url: this.def.url,
      detail: 'the connection closed',
    });
    const refused = this.error.code === 'ingest_broker_refused';
    this.setState(refused ? 'refused' : this.epoch === 0 ? 'connecting' : 'reconnecting');
    clearTimeout(this.reconnectTimer);
    const delay = RECONNECT.initialMs / 2 + backoffDelay(this.attempt++, RECONNECT);
    this.reconnectTimer = setTimeout(() => {
      if (this.state !== 'closed') this.client.reconnect();
    }, delay);
  }

  private setState(state: BrokerState): void {
    const changed = state !== this.state;
    this.state = state;
    if (changed || state !== 'connected') this.emit('state', state, state === 'connected' ? undefined : this.error);
  }

  /** Subscribes what is desired and not active, unsubscribes what is active and not desired. */
  private sync(): void {
    const now = Date.now();
    for (const [filter, qos] of this.desired) {
      if (this.active.get(filter) === qos) continue;
      const refused = this.refused.get(filter);
      if (refused && refused.qos === qos && now - refused.at < SUBSCRIBE_RETRY_MS) continue;
      this.active.set(filter, qos);
      this.client.subscribe(filter, { qos, rh: 1 }, (err, granted) => {
        // A refusal comes as an error carrying the SUBACK (mqtt.js's ErrorWithSubackPacket).
        const suback = (err as { packet?: { granted?: unknown[] } } | null)?.packet?.granted?.[0];
        const code = typeof suback === 'number' ? suback : err ? 0x80 : (granted?.[0]?.qos ?? 0x80);
        if (this.active.get(filter) !== qos) return; // changed again meanwhile
        if (err || code >= 0x80) {
          this.active.delete(filter);
          this.granted.delete(filter);
          this.refused.set(filter, { qos, reason: code, at: Date.now() });
          this.emit('subscribeRefused', filter, code);
        } else {
          this.refused.delete(filter);
          this.granted.add(filter);
        }
      });
    }
    for (const filter of this.refused.keys()) if (!this.desired.has(filter)) this.refused.delete(filter);
    for (const filter of [...this.active.keys()]) {
      if (this.desired.has(filter)) continue;
      this.active.delete(filter);
      this.granted.delete(filter);
      this.client.unsubscribe(filter);
    }
  }
}

/** A message as the flows get it: a class, not a closure per message (tens of thousands a second). */
class Received implements Inbound {
  readonly receivedAt = Date.now();
  private acked = false;

  constructor(
    private readonly link: BrokerLink,
    private readonly epoch: number,
    readonly topic: string,
    readonly payload: Buffer,
    readonly qos: number,
    private readonly messageId: number | undefined,
  ) {}

  ack(): void {
    if (this.acked) return;
    this.acked = true;
    this.link.acknowledge(this.epoch, this.qos, this.messageId);
  }
}
