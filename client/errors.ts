// The SDK's errors: one class per condition, each with a stable `code` (the
// protocol's error code when the relay sent one, a close code's name when
// the connection ended) and `retryable`, whether trying again can help.
import { CLOSE, ERROR_CODES, type ErrorCode } from './protocol.ts';

export type ConnectionErrorCode =
  | 'connection_lost'
  | 'connect_timeout'
  | 'heartbeat_timeout'
  | 'relay_going_away'
  | 'slow_consumer'
  | 'message_too_big'
  | 'stream_reset'
  | 'auth_failed'
  | 'forbidden';

export type ClientErrorCode = ErrorCode | ConnectionErrorCode | 'client_closed' | 'already_subscribed';

export class WalcastClientError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The relay answered a request with an `error` message. */
export class RelayError extends WalcastClientError {
  declare readonly code: ErrorCode;

  constructor(
    code: ErrorCode,
    message: string,
    /** The id of the request it answers, when it had one. */
    readonly requestId?: string,
    /** The channel of the subscription it concerns, when known. */
    readonly channel?: string,
  ) {
    // A failed snapshot read or an internal failure may pass; a bad request will not.
    super(code, message || ERROR_CODES[code] || code, code === 'snapshot_failed' || code === 'internal_error');
  }
}

const CLOSE_NAMES: Record<number, ConnectionErrorCode> = {
  [CLOSE.goingAway]: 'relay_going_away',
  [CLOSE.messageTooBig]: 'message_too_big',
  [CLOSE.slowConsumer]: 'slow_consumer',
  [CLOSE.heartbeatTimeout]: 'heartbeat_timeout',
  [CLOSE.streamReset]: 'stream_reset',
  [CLOSE.authFailed]: 'auth_failed',
};

/**
 * Closes that end the client instead of a retry, because the same attempt
 * would be refused again: the token was rejected (4003), or the relay
 * refused the upgrade with HTTP 403 (Origin or address not allowed).
 */
const FINAL: ReadonlySet<ConnectionErrorCode> = new Set(['auth_failed', 'forbidden']);

/** The connection ended or could not be made. The client reconnects. */
export class ConnectionError extends WalcastClientError {
  declare readonly code: ConnectionErrorCode;

  constructor(
    /** The WebSocket close code (1006 when the connection dropped without one). */
    readonly closeCode: number,
    readonly reason: string,
    code: ConnectionErrorCode = CLOSE_NAMES[closeCode] ?? 'connection_lost',
    options?: { cause?: unknown },
  ) {
    super(
      code,
      `walcast connection ${code.replace(/_/g, ' ')} (close ${closeCode}${reason ? `: ${reason}` : ''})`,
      !FINAL.has(code),
      options,
    );
  }
}

/** The heartbeat went unanswered: the connection is presumed dead. */
export class HeartbeatTimeoutError extends ConnectionError {
  constructor(readonly waitedMs: number) {
    super(CLOSE.heartbeatTimeout, `no message from the relay for ${waitedMs} ms after a ping`, 'heartbeat_timeout');
  }
}

/** The connection did not open in time. */
export class ConnectTimeoutError extends ConnectionError {
  constructor(readonly waitedMs: number) {
    super(1006, `the WebSocket did not open within ${waitedMs} ms`, 'connect_timeout');
  }
}

/** An operation on a client that was closed with close(). */
export class ClientClosedError extends WalcastClientError {
  constructor() {
    super('client_closed', 'the walcast client is closed; create a new one', false);
  }
}
