// The walcast client SDK, browser-safe entry: the native WebSocket, no
// dependencies. Under Node 20 (no global WebSocket) use client/node.ts.
// The relay serves this module, bundled, at /client.js.
export { createClient, WalcastClient, wsUrl, DEFAULT_CONNECT_TIMEOUT_MS } from './sdk.ts';
export type { ClientOptions, SocketLike, WebSocketConstructor } from './sdk.ts';
export { Subscription, type SubscribeOptions } from './subscription.ts';
export {
  WalcastClientError,
  RelayError,
  ConnectionError,
  HeartbeatTimeoutError,
  ConnectTimeoutError,
  ClientClosedError,
  type ClientErrorCode,
  type ConnectionErrorCode,
} from './errors.ts';
export type {
  AnyRows,
  ClientNotices,
  ResyncNotice,
  SkippedNotice,
  Status,
  StatusEvent,
  SubscribedNotice,
  SubscriptionNotices,
  SyncedNotice,
  TableEvent,
  TableRows,
} from './events.ts';
export type { Row, Rows, WireValue } from './drizzle.ts';
export { DEFAULT_BACKOFF, backoffDelay, backoffCeiling, type BackoffOptions } from './backoff.ts';
export { DEFAULT_HEARTBEAT, type HeartbeatOptions } from './heartbeat.ts';
export {
  CLOSE,
  ERROR_CODES,
  PROTOCOL_VERSION,
  type AnyEventMessage,
  type ErrorCode,
  type EventMessage,
  type Op,
  type TruncateMessage,
} from './protocol.ts';
