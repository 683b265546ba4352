// A message of the change stream (relay/sinks/message.ts wrote it) → the
// event an edge routes. Pure. The payload is already the frame WebSocket
// clients get; the headers carry what routing needs, so the JSON is never
// parsed: the position (Walcast-Position), the table (Walcast-Table), the
// transaction (Walcast-Xid) and the commit time; the channel is the
// subject's last token (subject.ts).
import {
  MESSAGE_SUBJECT_START,
  NO_CHANNEL_TOKEN,
  SUBJECT_PREFIX,
  decodeToken,
  messageChannelOf,
} from '../sinks/subject.ts';

export interface StreamEvent {
  /** The stream sequence it was read at. */
  seq: number;
  /** undefined: a table-wide event (a truncate, channel token `%`). */
  channel: string | undefined;
  table: string;
  position: string;
  epoch: string;
  xid: number;
  timeMs: number;
  /** The frame, UTF-8, as the slot relay sends it; for a logical message, its content. */
  bytes: Buffer;
  /** A logical message (walcast.%.%%<channel>: an MQTT message, a Supabase broadcast or presence diff), not a row event. */
  message?: true;
}

/** What the decoder reads of a message (a JsMsg has these). */
export interface RawMessage {
  seq: number;
  subject: string;
  data: Uint8Array;
  header(name: string): string | undefined;
}

/**
 * The xid of a message written before the sink sent Walcast-Xid: one no
 * snapshot ever includes, so after a snapshot it is sent (a possible repeat
 * of a row the snapshot has, never a loss).
 */
export const UNKNOWN_XID = 0xffffffff;

/** <commit LSN, 16>-<index, 8>-<epoch> (replication/position.ts): the epoch starts at 26. */
const EPOCH_AT = 26;
const POSITION = /^[0-9A-F]{16}-[0-9A-F]{8}-[0-9a-z]{1,16}$/;

/** Commit times repeat for every event of a transaction: parse each once. */
let lastTimeText = '';
let lastTimeMs = 0;

export function commitTimeMs(text: string | undefined): number {
  if (!text) return Date.now();
  if (text !== lastTimeText) {
    const ms = Date.parse(text);
    lastTimeText = text;
    lastTimeMs = Number.isNaN(ms) ? Date.now() : ms;
  }
  return lastTimeMs;
}

/** The channel of a subject `walcast.<table>.<channel>`; null when the subject is not walcast's. */
export function channelOfSubject(subject: string): string | undefined | null {
  const first = subject.indexOf('.');
  const last = subject.lastIndexOf('.');
  if (first !== SUBJECT_PREFIX.length || last <= first || !subject.startsWith(SUBJECT_PREFIX)) return null;
  const token = subject.slice(last + 1);
  if (token === NO_CHANNEL_TOKEN) return undefined;
  try {
    return token.includes('%') ? decodeToken(token) : token;
  } catch {
    return null;
  }
}

/** The event in a stream message; undefined for a message that is not walcast's (skipped, logged by the caller). */
export function decodeMessage(m: RawMessage): StreamEvent | undefined {
  const position = m.header('Walcast-Position');
  const table = m.header('Walcast-Table');
  if (!position || !table || !POSITION.test(position)) return undefined;
  const message = m.subject.startsWith(MESSAGE_SUBJECT_START);
  const channel = message ? (messageChannelOf(m.subject) ?? null) : channelOfSubject(m.subject);
  if (channel === null) return undefined;
  const xidText = m.header('Walcast-Xid');
  const xid = xidText ? Number(xidText) : UNKNOWN_XID;
  const e: StreamEvent = {
    seq: m.seq,
    channel,
    table,
    position,
    epoch: position.slice(EPOCH_AT),
    xid: Number.isInteger(xid) ? xid : UNKNOWN_XID,
    timeMs: commitTimeMs(m.header('Walcast-Commit-Time')),
    bytes: Buffer.from(m.data),
  };
  if (message) e.message = true;
  return e;
}
