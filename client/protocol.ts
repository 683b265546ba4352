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

/** Authenticate (or refresh the token of) this connection; see docs/protocol.md "Authentication". */
export interface AuthMessage {
  type: 'auth';
  id?: string;
  token: string;
}

/** Insert one row into a registered table the connection may publish to. */
export interface PublishMessage {
  type: 'publish';
  id?: string;
  table: string;
  row: Record<string, unknown>;
}

export type ClientMessage = SubscribeMessage | UnsubscribeMessage | PingMessage | AuthMessage | PublishMessage;

/** Largest token an auth message, `?token=` or a `bearer.` subprotocol may carry. */
export const MAX_TOKEN_LENGTH = 8192;
/** Subprotocol the relay selects; offer it beside `bearer.<token>` (the token itself is never echoed). */
export const SUBPROTOCOL = 'walcast.v1';
export const BEARER_PREFIX = 'bearer.';

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
  /**
   * An update moved the row between channels: "out" on the channel it left
   * (op "delete", `row` = the old row or key), "in" on the channel it
   * entered (op "insert", `row` = the new row, no `old`).
   */
  moved?: 'in' | 'out';
  /**
   * Generated columns this server does not publish (PostgreSQL before 18,
   * or a publication without publish_generated_columns): absent from `row`
   * in events and snapshot rows alike.
   */
  omitted?: string[];
}

/**
 * A TRUNCATE of a registered table committed: every row of it is gone. Sent
 * once per table to every subscription whose `tables` admit it, whatever its
 * channel (a TRUNCATE has no rows to route), in commit order like other
 * events, and kept in the recovery window. No `row`. `TRUNCATE a, b` and
 * `TRUNCATE … CASCADE` give one per registered table, each with its own
 * position.
 */
export interface TruncateMessage {
  type: 'event';
  channel: string;
  /** The table's name; schema-qualified when not in `public`. */
  table: string;
  op: 'truncate';
  position: string;
  commit_time: string;
}

/** Anything that arrives as `type: "event"`: a row event, or a truncate (narrow on `op`). */
export type AnyEventMessage<Row = Record<string, unknown>> = EventMessage<Row> | TruncateMessage;

export interface PongMessage {
  type: 'pong';
  id?: string;
}

export interface ErrorMessage {
  type: 'error';
  id?: string;
  code: ErrorCode;
  message: string;
  /** With `invalid_row`: what failed validation (at most 20 entries). */
  errors?: ValidationIssue[];
  /**
   * With `event_too_large`: the event that was not sent. `position` is its
   * place in the stream (resume with `since` from it); `bytes` its size.
   */
  channel?: string;
  table?: string;
  position?: string;
  bytes?: number;
}

export interface ValidationIssue {
  /** JSON Pointer into the row, e.g. "/body"; "" for the row itself. */
  path: string;
  message: string;
}

/** The reply to `auth`: the token was accepted; `expires_at` is its `exp` (ISO-8601), absent when it has none. */
export interface AuthenticatedMessage {
  type: 'authenticated';
  id?: string;
  sub?: string;
  expires_at?: string;
}

/** The reply to `publish`, sent after the row's transaction committed. */
export interface PublishedMessage {
  type: 'published';
  id?: string;
  table: string;
}

export type ServerMessage =
  | SubscribedMessage
  | UnsubscribedMessage
  | EventMessage
  | TruncateMessage
  | PongMessage
  | ErrorMessage
  | AuthenticatedMessage
  | PublishedMessage;

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
  /** The connection's token expired and no `auth` message refreshed it in time. */
  tokenExpired: 4001,
  /** Authentication is required and no valid token arrived within the auth timeout. */
  authTimeout: 4002,
  /** The token given at connect (or in the first `auth` message) is invalid. */
  authFailed: 4003,
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
  unauthenticated:
    'this relay requires a token: send {"type":"auth","token":"…"} first (only auth and ping are allowed before)',
  invalid_token: 'the token is not valid (signature, algorithm, expiry, issuer or audience); get a new one',
  forbidden: 'the token does not allow this channel or table',
  rate_limited: 'too many messages; the message was dropped, slow down',
  too_many_connections: 'the client address holds the maximum number of connections (HTTP 429); close some first',
  too_many_replays: 'the client address has the maximum number of HTTP replays in flight (HTTP 429); read those first',
  snapshot_busy: 'too many snapshots are waiting or being read; the subscription was not made, try again shortly',
  host_not_allowed:
    'in open mode the relay answers only requests addressed to localhost or an IP address (Host header); configure a JWT key to serve a DNS name',
  publishing_disabled: 'this relay does not accept publish messages (WALCAST_PUBLISH=off)',
  invalid_row: 'the row does not match the table\'s schema; see "errors"',
  duplicate: 'a row with the same unique key already exists',
  missing_value: 'a required column is null or missing',
  invalid_value: 'a value cannot be stored in its column (wrong format, too long or out of range)',
  reference_not_found: 'a value refers to a row that does not exist (foreign key)',
  check_failed: 'the row violates a check constraint of the table',
  publish_failed: 'the row could not be inserted; it has been logged',
  event_too_large: 'an event was larger than WALCAST_MAX_EVENT_BYTES and was not sent; read the row from its table',
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
      return {
        ok: true,
        message: withId<UnsubscribeMessage>({ type: 'unsubscribe', channel: obj.channel as string }, id),
      };
    }
    case 'ping':
      return { ok: true, message: withId<PingMessage>({ type: 'ping' }, id) };
    case 'auth':
      if (typeof obj.token !== 'string' || obj.token.length === 0 || obj.token.length > MAX_TOKEN_LENGTH) {
        return fail('bad_request', `"token" must be a string of 1 to ${MAX_TOKEN_LENGTH} characters`, id);
      }
      return { ok: true, message: withId<AuthMessage>({ type: 'auth', token: obj.token }, id) };
    case 'publish':
      return parsePublish(obj, id);
    case undefined:
      return fail('bad_request', 'the message has no "type" field', id);
    default:
      // Never String(obj.type): {"toString":""} would make it throw.
      return fail(
        'unknown_type',
        `unknown message type ${typeof obj.type === 'string' ? JSON.stringify(obj.type).slice(0, 80) : `of kind ${typeof obj.type}`}`,
        id,
      );
  }
}

function parseSubscribe(obj: Record<string, unknown>, id: string | undefined): ParseResult {
  const channelError = checkChannel(obj.channel);
  if (channelError) return fail(channelError.code, channelError.message, id);
  const msg = withId<SubscribeMessage>({ type: 'subscribe', channel: obj.channel as string }, id);
  if (obj.tables !== undefined) {
    const t = obj.tables;
    if (
      !Array.isArray(t) ||
      t.length === 0 ||
      t.length > 100 ||
      !t.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 128)
    ) {
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

function parsePublish(obj: Record<string, unknown>, id: string | undefined): ParseResult {
  const { table, row } = obj;
  if (typeof table !== 'string' || table.length === 0 || table.length > 128) {
    return fail('bad_request', '"table" must be a registered table name of 1 to 128 characters', id);
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row)) {
    return fail('bad_request', '"row" must be an object of column names to values', id);
  }
  if (depthOver(row, MAX_ROW_DEPTH)) {
    return fail('bad_request', `"row" is nested deeper than ${MAX_ROW_DEPTH} levels`, id);
  }
  return {
    ok: true,
    message: withId<PublishMessage>({ type: 'publish', table, row: row as Record<string, unknown> }, id),
  };
}

/** Rows nest at most this deep (a jsonb column's value included): deeper input is refused unparsed. */
export const MAX_ROW_DEPTH = 32;

/** Is `value` nested deeper than `max`? Iterative, so hostile input cannot exhaust the stack. */
function depthOver(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

function checkChannel(channel: unknown): { code: ErrorCode; message: string } | undefined {
  if (channel === undefined) return { code: 'bad_request', message: 'the message has no "channel" field' };
  if (typeof channel !== 'string' || channel.length === 0 || channel.length > MAX_CHANNEL_LENGTH) {
    return { code: 'invalid_channel', message: ERROR_CODES.invalid_channel };
  }
  return undefined;
}

export function withId<T extends { id?: string }>(msg: T, id: string | undefined): T {
  if (id !== undefined) msg.id = id;
  return msg;
}
