// Phoenix channel frames as realtime-js speaks them. Pure: bytes in,
// messages out, and back. Two serializers (the `vsn` query parameter):
//   1.0.0  JSON objects {topic, event, payload, ref, join_ref}
//   2.0.0  JSON arrays  [join_ref, ref, topic, event, payload], plus binary
//          frames: a client's broadcast is sent as a "user broadcast push"
//          (kind 3), decoded here into the same message a JSON push gives.
// Broadcasts to 2.0.0 clients go out as binary "user broadcast" frames
// (kind 4). realtime-js lib/serializer.ts is the reference for the layout.

export type Vsn = '1.0.0' | '2.0.0';

export interface PhxMessage {
  topic: string;
  event: string;
  payload: Record<string, unknown>;
  ref: string | null;
  join_ref: string | null;
}

export const VSNS: readonly Vsn[] = ['1.0.0', '2.0.0'];

/** The serializer asked for in the query string; none means 1.0.0 (Phoenix's default), an unknown one null. */
export function vsnOf(param: string | null): Vsn | null {
  if (param === null || param === '') return '1.0.0';
  return (VSNS as readonly string[]).includes(param) ? (param as Vsn) : null;
}

export class FrameError extends Error {}

/** Kinds of binary frames (realtime-js Serializer.KINDS). */
const KIND_USER_BROADCAST_PUSH = 3;
const KIND_USER_BROADCAST = 4;
const JSON_ENCODING = 1;

/** Decode one WebSocket message; throws FrameError with what is wrong. */
export function decode(data: Buffer, binary: boolean, vsn: Vsn): PhxMessage {
  if (binary) {
    if (vsn !== '2.0.0') throw new FrameError('binary frames need vsn=2.0.0');
    return decodeBinary(data);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch {
    throw new FrameError('the frame is not JSON');
  }
  const m = vsn === '2.0.0' ? fromArray(parsed) : parsed;
  return check(m);
}

function fromArray(parsed: unknown): unknown {
  if (!Array.isArray(parsed) || parsed.length !== 5)
    throw new FrameError('vsn 2.0.0 frames are arrays [join_ref, ref, topic, event, payload]');
  const [join_ref, ref, topic, event, payload] = parsed as unknown[];
  return { join_ref, ref, topic, event, payload };
}

function check(m: unknown): PhxMessage {
  const o = m as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null) throw new FrameError('a frame is an object');
  if (typeof o.topic !== 'string' || typeof o.event !== 'string')
    throw new FrameError('a frame needs a string topic and event');
  const payload = o.payload ?? {};
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    throw new FrameError('a frame payload is an object');
  return {
    topic: o.topic,
    event: o.event,
    payload: payload as Record<string, unknown>,
    ref: refOf(o.ref),
    join_ref: refOf(o.join_ref),
  };
}

function refOf(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return null;
}

/**
 * kind 3: kind, join_ref size, ref size, topic size, event size, metadata
 * size, payload encoding (1 byte each), then those strings, then the payload.
 */
function decodeBinary(buf: Buffer): PhxMessage {
  if (buf.length < 7 || buf[0] !== KIND_USER_BROADCAST_PUSH)
    throw new FrameError('the only binary frame a client sends is a user broadcast push (kind 3)');
  const sizes = [buf[1]!, buf[2]!, buf[3]!, buf[4]!, buf[5]!];
  const encoding = buf[6]!;
  let at = 7;
  const parts: string[] = [];
  for (const size of sizes) {
    if (at + size > buf.length) throw new FrameError('a binary frame is shorter than its header says');
    parts.push(buf.toString('utf8', at, at + size));
    at += size;
  }
  const [joinRef, ref, topic, event, metadata] = parts as [string, string, string, string, string];
  const body = buf.subarray(at);
  let payload: unknown;
  if (encoding === JSON_ENCODING) {
    try {
      payload = JSON.parse(body.toString('utf8'));
    } catch {
      throw new FrameError('the broadcast payload is not JSON');
    }
  } else payload = { binary: body.toString('base64') };
  const inner: Record<string, unknown> = { type: 'broadcast', event, payload };
  if (metadata) {
    try {
      Object.assign(inner, JSON.parse(metadata));
    } catch {
      throw new FrameError('the broadcast metadata is not JSON');
    }
  }
  return { topic, event: 'broadcast', payload: inner, ref: ref || null, join_ref: joinRef || null };
}

/** One message as text for `vsn`. `payloadJson` is the payload already serialised (shared by many sockets). */
export function encode(vsn: Vsn, m: Omit<PhxMessage, 'payload'>, payloadJson: string): string {
  const topic = JSON.stringify(m.topic);
  const event = JSON.stringify(m.event);
  const ref = m.ref === null ? 'null' : JSON.stringify(m.ref);
  const joinRef = m.join_ref === null ? 'null' : JSON.stringify(m.join_ref);
  if (vsn === '2.0.0') return `[${joinRef},${ref},${topic},${event},${payloadJson}]`;
  return `{"topic":${topic},"event":${event},"payload":${payloadJson},"ref":${ref},"join_ref":${joinRef}}`;
}

/** The same, for a payload object. */
export function encodeMessage(vsn: Vsn, m: PhxMessage): string {
  return encode(vsn, m, JSON.stringify(m.payload));
}

/**
 * kind 4, what realtime-js decodes into a broadcast: kind, topic size, event
 * size, metadata size, payload encoding, then the strings and the JSON
 * payload. How vsn 2.0.0 clients receive broadcasts, as from upstream.
 */
export function encodeUserBroadcast(topic: string, event: string, payload: unknown): Buffer {
  const t = Buffer.from(topic);
  const e = Buffer.from(event);
  const body = Buffer.from(JSON.stringify(payload));
  if (t.length > 255 || e.length > 255) throw new FrameError('topic and event are at most 255 bytes');
  return Buffer.concat([Buffer.from([KIND_USER_BROADCAST, t.length, e.length, 0, JSON_ENCODING]), t, e, body]);
}
