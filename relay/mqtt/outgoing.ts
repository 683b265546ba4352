// What subscribers are sent: a routed event (a row change as the WebSocket
// protocol frames it, or an MQTT message) as an MQTT PUBLISH. The event is
// turned into an OutMessage once, however many MQTT subscribers it reaches
// (WeakMap on the frame the dispatcher shares between them), and each
// packet form (protocol 4 or 5, QoS 0 or 1, retain or not) is serialised
// once; a QoS 1 copy only gets its packet identifier written in.
import mqttPacket from 'mqtt-packet';
import type { RoutedEvent } from '../hub/router.ts';
import type { EventMessage } from '../../client/protocol.ts';
import { decodeMessage, type MessageProperties } from './messages.ts';
import { rowTopic } from './topics.ts';
import { keyText, type TableTopic } from './keys.ts';

export type ProtocolVersion = 4 | 5;

export interface OutMessage {
  topic: string;
  payload: Buffer;
  /** Highest QoS it may be delivered with (an MQTT message's own QoS; rows: 1). */
  qos: 0 | 1;
  table: string;
  position: string;
  xid: number;
  /** A row change (or a current row sent as retained), not an MQTT message. */
  row: boolean;
  /** Stored (a row, or a retained message on a generic topic): a retained read may already include it. */
  stored?: boolean;
  /** MQTT 5 properties: op, position, commit_time as user properties for rows. */
  properties: MessageProperties;
  /** Serialised packets by form; see packet(). */
  packets?: Map<number, Buffer>;
}

const converted = new WeakMap<object, OutMessage | null>();

/** The message for a routed event, or null if it cannot be one. */
export function fromRouted(
  frame: Buffer | string,
  event: RoutedEvent,
  table: (name: string) => TableTopic | undefined,
): OutMessage | null {
  const cacheKey = typeof frame === 'string' ? event : frame;
  let out = converted.get(cacheKey);
  if (out !== undefined) return out;
  if (event.message) out = fromMessage(frame as Buffer, event);
  // The dispatcher's event itself (a row change; truncates carry no body): no JSON.parse per row.
  // An edge relay, which reads frames from JetStream, has no body and parses.
  else if (event.body && isEventFrame(frame)) out = fromRow(event.body, event.xid, table);
  else out = fromFrame(frame, event.xid, table);
  converted.set(cacheKey, out);
  return out;
}

const EVENT_PREFIX = Buffer.from('{"type":"event",');

/**
 * Is `frame` the event itself (not the event_too_large notice that replaces
 * an event over WALCAST_MAX_EVENT_BYTES, hub/too-large.ts)? Both are built
 * with `type` first.
 */
function isEventFrame(frame: Buffer | string): boolean {
  return typeof frame === 'string'
    ? frame.startsWith('{"type":"event",')
    : frame.length > EVENT_PREFIX.length &&
        frame.compare(EVENT_PREFIX, 0, EVENT_PREFIX.length, 0, EVENT_PREFIX.length) === 0;
}

/**
 * A WebSocket event frame as an MQTT message. A row change is one; a
 * truncate (no row, no topic) and an event_too_large notice (not a row) are
 * not published over MQTT (docs/mqtt.md).
 */
function fromFrame(
  frame: Buffer | string,
  xid: number,
  table: (name: string) => TableTopic | undefined,
): OutMessage | null {
  const e = JSON.parse(frame.toString()) as { type: string; op?: string };
  if (e.type !== 'event' || e.op === 'truncate') return null;
  return fromRow(e as EventMessage, xid, table);
}

function fromMessage(content: Buffer, event: RoutedEvent): OutMessage | null {
  const m = decodeMessage(content);
  if (!m) return null;
  return {
    topic: m.topic,
    payload: m.payload,
    qos: m.qos,
    table: event.table,
    position: event.position,
    xid: event.xid,
    row: false,
    stored: m.retained === true,
    properties: m.properties ?? {},
  };
}

/** A row change: upserts carry the row, a delete (or a row moved to another channel) an empty payload. */
export function fromRow(e: EventMessage, xid: number, table: (name: string) => TableTopic | undefined): OutMessage {
  const t = table(e.table);
  let op: string = e.op;
  let payload: Buffer;
  const channelValue = t ? e.row[t.channelColumn] : e.channel;
  if (e.op === 'delete' || (e.op === 'update' && channelValue !== undefined && keyText(channelValue) !== e.channel)) {
    // On the channel it left, a moved row is gone: the retained message is cleared.
    if (e.op === 'update') op = 'delete';
    payload = Buffer.alloc(0);
  } else {
    payload = Buffer.from(JSON.stringify(e.row));
  }
  const source = op === 'delete' && e.op === 'update' ? (e.old ?? e.row) : e.row;
  const key = t ? t.keys.map((k) => keyText(source[k])) : [];
  return {
    topic: rowTopic(e.table, e.channel, key),
    payload,
    qos: 1,
    table: e.table,
    position: e.position,
    xid,
    row: true,
    properties: rowProperties(op, e.position, e.commit_time, payload.length > 0),
  };
}

export function rowProperties(op: string, position: string, commitTime: string, json: boolean): MessageProperties {
  const p: MessageProperties = { userProperties: { op, position, commit_time: commitTime } };
  if (json) {
    p.payloadFormatIndicator = true;
    p.contentType = 'application/json';
  }
  return p;
}

/**
 * The PUBLISH packet for `m` in one form. For QoS 1 the packet identifier is
 * 1 in the cached bytes: withPacketId() copies them with the right one.
 */
export function packet(m: OutMessage, version: ProtocolVersion, qos: 0 | 1, retain: boolean): Buffer {
  const form = version * 4 + qos * 2 + (retain ? 1 : 0);
  const cache = (m.packets ??= new Map());
  let bytes = cache.get(form);
  if (!bytes) {
    const p: mqttPacket.IPublishPacket = {
      cmd: 'publish',
      topic: m.topic,
      payload: m.payload,
      qos,
      retain,
      dup: false,
    };
    if (qos > 0) p.messageId = 1;
    if (version === 5) p.properties = m.properties;
    bytes = mqttPacket.generate(p, { protocolVersion: version });
    cache.set(form, bytes);
  }
  return bytes;
}

/** A copy of a QoS 1 PUBLISH with packet identifier `id` (and DUP when resent). */
export function withPacketId(template: Buffer, id: number, dup = false): Buffer {
  const out = Buffer.from(template);
  let at = 1;
  while (out[at]! & 0x80) at++; // Remaining Length, 1 to 4 bytes (MQTT 2.2.3)
  at++;
  const topicLength = out.readUInt16BE(at);
  out.writeUInt16BE(id, at + 2 + topicLength);
  if (dup) out[0] = out[0]! | 0x08;
  return out;
}
