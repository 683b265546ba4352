// The walcast WebSocket protocol, version 1: the one source of truth for the
// wire. The relay imports these types and the parser; the SDK builds on them.
// docs/protocol.md describes the same thing in prose; keep them in step.

export const PROTOCOL_VERSION = 1;
export const WS_PATH = '/ws';

/** Channels are strings of 1 to 200 characters. */
export const MAX_CHANNEL_LENGTH = 200;
/** Request ids are echoed back; they are strings of up to 64 characters. */
export const MAX_ID_LENGTH = 64;

/** `snapshot`: a current row sent on subscribe with `snapshot: true`, before the live stream. */
export type Op = 'insert' | 'update' | 'delete' | 'snapshot';

/** Most rows one snapshot of an event table sends (`limit` on subscribe). */
export const MAX_SNAPSHOT_LIMIT = 1000;

// ---- client → relay ----

export interface SubscribeMessage {
  type: 'subscribe';
  id?: string;
  channel: string;
  /** Only rows of these tables (names as registered, e.g. "chat_messages"). */
  tables?: string[];
  /** Resume: send every event after this position first (see `recovered`). */
  since?: string;
  /** Send the channel's current rows first, as `op: "snapshot"` events. */
  snapshot?: boolean;
  /** With `snapshot`: the newest N rows of event tables (state tables send every row). */
  limit?: number;
}

export interface UnsubscribeMessage {
  type: 'unsubscribe';
  id?: string;
  channel: string;
}

export interface PingMessage {
  type: 'ping';
  id?: string;
}

export type ClientMessage = SubscribeMessage | UnsubscribeMessage | PingMessage;

// ---- relay → client ----

export interface SubscribedMessage {
  type: 'subscribed';
  id?: string;
  channel: string;
  /** Every event with a greater position reaches this subscription. */
  position: string;
  /**
   * Present when the subscribe had `since`: true when every event after it
   * was still available and has been (or is being) sent, in order, before the
   * live stream; false when it was not (nothing was replayed: resync).
   */
  recovered?: boolean;
  /**
   * Present when the reply opens a snapshot: the number of `op:"snapshot"`
   * events that follow it, before the live events.
   */
  snapshot?: number;
}

export interface UnsubscribedMessage {
  type: 'unsubscribed';
  id?: string;
  channel: string;
}

export interface EventMessage<Row = Record<string, unknown>> {
  type: 'event';
  channel: string;
  /** The table's name; schema-qualified when not in `public`. */
  table: string;
  op: Op;
  position: string;
  commit_time: string;
  /** The new row (insert, update) or the removed row (delete). */
  row: Row;
  /** The old row or key, for updates and deletes, as REPLICA IDENTITY gives it. */
  old?: Partial<Row>;
  /** Columns whose unchanged TOASTed value PostgreSQL did not send; absent from `row`. */
  unchanged?: string[];
}

export interface PongMessage {
  type: 'pong';
  id?: string;
}

export interface ErrorMessage {
  type: 'error';
  id?: string;
  code: ErrorCode;
  message: string;
}

export type ServerMessage = SubscribedMessage | UnsubscribedMessage | EventMessage | PongMessage | ErrorMessage;

// ---- errors and close codes ----

/** WebSocket close codes the relay uses (RFC 6455 §7.4 and the 4000-4999 private range). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
  /** The client's send queue exceeded its bound; it reads too slowly. */
  slowConsumer: 4008,
  /** The client stopped answering pings. */
  heartbeatTimeout: 4009,
  /** The replication slot was recreated: positions from before cannot be resumed. */
  streamReset: 4010,
} as const;

/** Every error code a client can receive, with what it means. */
export const ERROR_CODES = {
  bad_request: 'the message is missing a field or a field has the wrong type',
  invalid_json: 'the frame is not valid JSON',
  binary_not_supported: 'binary frames are not part of the protocol; send JSON text frames',
  unknown_type: 'the message type is not one the relay knows',
  invalid_channel: `channels are strings of 1 to ${MAX_CHANNEL_LENGTH} characters`,
  too_many_subscriptions: 'the connection holds the maximum number of subscriptions',
  already_subscribed: 'the connection is already subscribed to this channel',
  not_subscribed: 'the connection is not subscribed to this channel',
  unknown_table: 'a table named in `tables` is not registered with walcast',
  snapshot_failed: 'reading the current rows for a snapshot failed; subscribe again',
  internal_error: 'the relay failed to handle the request; it has been logged',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

// ---- parsing client messages ----

export type ParseResult =
  | { ok: true; message: ClientMessage }
  | { ok: false; code: ErrorCode; message: string; id?: string };

const fail = (code: ErrorCode, message: string, id?: string): ParseResult =>
  id === undefined ? { ok: false, code, message } : { ok: false, code, message, id };

/**
 * Parse one text frame from a client. Pure: it never throws, and a bad frame
 * yields the error code to send back (with the request's id when it had one).
 */
export function parseClientMessage(text: string): ParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('invalid_json', 'the frame is not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return fail('bad_request', 'a message is a JSON object with a "type" field');
  }
  const obj = raw as Record<string, unknown>;
  let id: string | undefined;
  if (obj.id !== undefined) {
    if (typeof obj.id !== 'string' || obj.id.length > MAX_ID_LENGTH) {
      return fail('bad_request', `"id" must be a string of at most ${MAX_ID_LENGTH} characters`);
    }
    id = obj.id;
  }
  switch (obj.type) {
    case 'subscribe':
      return parseSubscribe(obj, id);
    case 'unsubscribe': {
      const channelError = checkChannel(obj.channel);
      if (channelError) return fail(channelError.code, channelError.message, id);
      return { ok: true, message: withId<UnsubscribeMessage>({ type: 'unsubscribe', channel: obj.channel as string }, id) };
    }
    case 'ping':
      return { ok: true, message: withId<PingMessage>({ type: 'ping' }, id) };
    case undefined:
      return fail('bad_request', 'the message has no "type" field', id);
    default:
      return fail('unknown_type', `unknown message type ${JSON.stringify(String(obj.type)).slice(0, 80)}`, id);
  }
}

function parseSubscribe(obj: Record<string, unknown>, id: string | undefined): ParseResult {
  const channelError = checkChannel(obj.channel);
  if (channelError) return fail(channelError.code, channelError.message, id);
  const msg = withId<SubscribeMessage>({ type: 'subscribe', channel: obj.channel as string }, id);
  if (obj.tables !== undefined) {
    const t = obj.tables;
    if (!Array.isArray(t) || t.length === 0 || t.length > 100 || !t.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 128)) {
      return fail('bad_request', '"tables" must be a non-empty array of up to 100 table names', id);
    }
    msg.tables = t as string[];
  }
  if (obj.since !== undefined) {
    if (typeof obj.since !== 'string' || obj.since.length === 0 || obj.since.length > 64) {
      return fail('bad_request', '"since" must be a position string from an event or a subscribed reply', id);
    }
    msg.since = obj.since;
  }
  if (obj.snapshot !== undefined) {
    if (typeof obj.snapshot !== 'boolean') return fail('bad_request', '"snapshot" must be true or false', id);
    msg.snapshot = obj.snapshot;
  }
  if (obj.limit !== undefined) {
    const l = obj.limit;
    if (typeof l !== 'number' || !Number.isInteger(l) || l < 1 || l > MAX_SNAPSHOT_LIMIT) {
      return fail('bad_request', `"limit" must be an integer from 1 to ${MAX_SNAPSHOT_LIMIT}`, id);
    }
    msg.limit = l;
  }
  return { ok: true, message: msg };
}

function checkChannel(channel: unknown): { code: ErrorCode; message: string } | undefined {
  if (channel === undefined) return { code: 'bad_request', message: 'the message has no "channel" field' };
  if (typeof channel !== 'string' || channel.length === 0 || channel.length > MAX_CHANNEL_LENGTH) {
    return { code: 'invalid_channel', message: ERROR_CODES.invalid_channel };
  }
  return undefined;
}

function withId<T extends { id?: string }>(msg: T, id: string | undefined): T {
  if (id !== undefined) msg.id = id;
  return msg;
}
