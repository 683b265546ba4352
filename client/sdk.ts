// The walcast client: one WebSocket to the relay, any number of channel
// subscriptions on it, kept alive across network failures and relay
// restarts. The connection's states are reconnect.ts's state machine; this
// module owns the socket, the timers and the routing of replies.
//
// After every (re)connect each subscription is sent again with `since` = the
// last position it saw (subscription.ts), so the relay replays what was
// missed, or answers recovered:false, which the subscription reports as a
// `resync`.
import { BEARER_PREFIX, SUBPROTOCOL, WS_PATH, type ClientMessage, type ServerMessage } from './protocol.ts';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from './backoff.ts';
import { DEFAULT_HEARTBEAT, Heartbeat, type HeartbeatOptions } from './heartbeat.ts';
import { INITIAL_STATE, step, type ConnectionState, type Input } from './reconnect.ts';
import { Emitter } from './emitter.ts';
import { StatusQueue } from './status.ts';
import {
  ClientClosedError,
  ConnectTimeoutError,
  ConnectionError,
  HeartbeatTimeoutError,
  RelayError,
  WalcastClientError,
} from './errors.ts';
import type { AnyRows, ClientNotices, Status, StatusEvent, TableEvent, TableRows } from './events.ts';
import { Subscription, type SubscribeOptions } from './subscription.ts';

/** The part of the WebSocket API the client uses: the browser's, or `ws` under Node. */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string[]) => SocketLike;

export interface ClientOptions {
  /** The WebSocket class; the browser's by default (client/node.ts passes `ws`). */
  WebSocket?: WebSocketConstructor;
  backoff?: Partial<BackoffOptions>;
  heartbeat?: Partial<HeartbeatOptions>;
  /** A connect attempt that has not opened by then counts as failed, ms. */
  connectTimeoutMs?: number;
  /**
   * A connection that stays open this long counts as healthy, and only then
   * does the backoff start over (ms). A relay that closes each connection
   * right after it opened is retried at growing intervals, not in a loop.
   */
  healthyMs?: number;
  /** Random source for the backoff jitter (tests pass a fixed one). */
  random?: () => number;
  /**
   * A JWT for relays that require one (docs/security.md), or a function that
   * returns the current one: it is called at every (re)connect, so a
   * refreshed token is picked up. Sent as a WebSocket subprotocol, never in
   * the URL (URLs end up in logs).
   */
  token?: string | (() => string);
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_HEALTHY_MS = 5_000;
const OPEN = 1;

export class WalcastClient {
  /** The relays to use, in order: after a lost connection the client moves to the next one (edge relays, docs/scaling.md). */
  readonly urls: readonly string[];
  private urlIndex = 0;
  private readonly WebSocketClass: WebSocketConstructor;
  private readonly backoff: BackoffOptions;
  private readonly connectTimeoutMs: number;
  private readonly healthyMs: number;
  private healthTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly token: ClientOptions['token'];
  private readonly random: () => number;
  private readonly notices = new Emitter<ClientNotices>();
  private readonly statusQueues = new Set<StatusQueue>();
  // biome-ignore lint/suspicious/noExplicitAny: each subscription has its own row type
  private readonly subs = new Map<string, Subscription<any>>();
  private readonly heartbeat: Heartbeat;
  private state: ConnectionState = INITIAL_STATE;
  private socket: SocketLike | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Pending retries of refused subscribes, cleared by close(). */
  private readonly retryTimers = new Set<ReturnType<typeof setTimeout>>();
  private nextId = 1;

  /**
   * `url`: one relay, or several (edge relays and the slot relay: positions
   * are valid on each). Every lost connection moves to the next URL, and the
   * subscriptions resume there with `since`.
   */
  constructor(url: string | readonly string[], options: ClientOptions = {}) {
    const urls = typeof url === 'string' ? [url] : url;
    if (urls.length === 0) throw new TypeError('createClient needs at least one URL');
    this.urls = urls.map(wsUrl);
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS)
      throw new TypeError('no WebSocket in this runtime: under Node 20 import the client from "walcast/client/node"');
    this.WebSocketClass = WS;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.healthyMs = options.healthyMs ?? DEFAULT_HEALTHY_MS;
    this.token = options.token;
    this.random = options.random ?? Math.random;
    this.heartbeat = new Heartbeat(
      { ...DEFAULT_HEARTBEAT, ...options.heartbeat },
      () => this.send({ type: 'ping', id: 'hb' }),
      (waited) => this.lost(new HeartbeatTimeoutError(waited)),
    );
    this.connect();
  }

  /** The URL in use (or the next one tried). */
  get url(): string {
    return this.urls[this.urlIndex]!;
  }

  /** The connection's status now. */
  get status(): Status {
    return this.state.status;
  }

  /**
   * Subscribe to a channel. `onEvent` receives its row events, typed by
   * `T` (table name → row type). At most one subscription per channel.
   */
  subscribe<T extends TableRows = AnyRows>(
    channel: string,
    options: SubscribeOptions,
    onEvent: (event: TableEvent<T>) => void,
  ): Subscription<T> {
    if (this.state.status === 'closed') throw new ClientClosedError();
    if (this.subs.has(channel)) {
      throw new WalcastClientError('already_subscribed', `already subscribed to ${channel}: unsubscribe first`, false);
    }
    const sub = new Subscription<T>(channel, options, onEvent, (s) => this.removed(s));
    this.subs.set(channel, sub);
    if (this.state.status === 'open') this.sendSubscribe(sub);
    return sub;
  }

  /** Listen to `status` changes or connection `error`s; returns a function that stops. */
  on<K extends keyof ClientNotices>(type: K, listener: (notice: ClientNotices[K]) => void): () => void {
    return this.notices.on(type, listener);
  }

  /** Status changes as an async iterator; it ends after `closed`. */
  statuses(): AsyncIterableIterator<StatusEvent> {
    const queue = new StatusQueue(() => this.statusQueues.delete(queue));
    if (this.state.status === 'closed') queue.end();
    else this.statusQueues.add(queue);
    return queue;
  }

  /** Close the connection and end every subscription. Final. */
  close(): void {
    this.drive({ type: 'close' });
  }

  // ---- the connection ----

  private drive(input: Input, error?: ConnectionError): void {
    const { state, effect } = step(this.state, input, (attempt) => backoffDelay(attempt, this.backoff, this.random));
    const changed = state.status !== this.state.status;
    this.state = state;
    switch (effect.type) {
      case 'connect':
        this.connect();
        return;
      case 'wait':
        this.timer = setTimeout(() => this.drive({ type: 'timer' }), effect.ms);
        this.emitStatus({
          status: 'reconnecting',
          attempt: state.attempt,
          delayMs: effect.ms,
          error: error ?? new ConnectionError(1006, ''),
        });
        return;
      case 'shutdown':
        this.shutdown();
        return;
      case 'none':
        if (changed && state.status === 'open') this.emitStatus({ status: 'open' });
    }
  }

  private connect(): void {
    this.emitStatus({ status: 'connecting', attempt: this.state.attempt });
    let socket: SocketLike;
    try {
      const token = typeof this.token === 'function' ? this.token() : this.token;
      socket = token
        ? new this.WebSocketClass(this.url, [SUBPROTOCOL, BEARER_PREFIX + token])
        : new this.WebSocketClass(this.url);
    } catch (err) {
      // A malformed URL: retrying will not help, but the state machine stays uniform.
      this.lost(new ConnectionError(1006, (err as Error).message, 'connection_lost', { cause: err }));
      return;
    }
    this.socket = socket;
    this.timer = setTimeout(() => this.lost(new ConnectTimeoutError(this.connectTimeoutMs)), this.connectTimeoutMs);
    socket.onopen = () => this.opened();
    socket.onmessage = (ev) => this.received(ev.data);
    // A close event always follows an error event; it carries the code. An
    // upgrade refused with 403 (Origin or address not allowed) is told only
    // by the error (under Node; browsers do not say why).
    let refused: number | undefined;
    socket.onclose = (ev) =>
      this.lost(
        refused === 403
          ? new ConnectionError(
              ev.code,
              'the relay refused the connection with HTTP 403 (Origin or address not allowed)',
              'forbidden',
            )
          : new ConnectionError(ev.code, ev.reason),
      );
    socket.onerror = (ev) => (refused = refusedStatus(ev));
  }

  private opened(): void {
    clearTimeout(this.timer);
    this.drive({ type: 'opened' });
    this.healthTimer = setTimeout(() => this.drive({ type: 'healthy' }), this.healthyMs);
    this.heartbeat.start();
    for (const sub of this.subs.values()) this.sendSubscribe(sub);
  }

  private lost(error: ConnectionError): void {
    if (this.state.status === 'closed' || this.state.status === 'reconnecting') return;
    clearTimeout(this.timer);
    clearTimeout(this.healthTimer);
    this.heartbeat.stop();
    this.dropSocket(error.code === 'heartbeat_timeout' ? 4009 : 1000, error.code);
    for (const sub of this.subs.values()) sub.suspend();
    // The next relay of the list: a dead edge's clients move to another one.
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    this.notices.emit('error', error);
    // Refused for good (a rejected token, a 403): trying again would be refused again.
    this.drive(error.retryable ? { type: 'lost' } : { type: 'close' }, error);
  }

  private shutdown(): void {
    clearTimeout(this.timer);
    clearTimeout(this.healthTimer);
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    this.heartbeat.stop();
    this.dropSocket(1000, 'client closed');
    for (const sub of [...this.subs.values()]) sub.unsubscribe();
    this.emitStatus({ status: 'closed' });
    for (const q of this.statusQueues) q.end();
    this.statusQueues.clear();
    this.notices.clear();
  }

  /** Detach from the socket and close it; a dead one is cut without a handshake. */
  private dropSocket(code: number, reason: string): void {
    const socket = this.socket;
    if (!socket) return;
    this.socket = undefined;
    socket.onopen = socket.onmessage = socket.onclose = null;
    socket.onerror = () => {};
    const terminate = (socket as { terminate?: () => void }).terminate;
    try {
      if (code === 4009 && terminate) terminate.call(socket);
      else socket.close(code, reason);
    } catch {
      // Closing a socket that never opened may throw in some runtimes; it is gone either way.
    }
  }

  private send(msg: ClientMessage): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(msg));
  }

  private emitStatus(event: StatusEvent): void {
    this.notices.emit('status', event);
    for (const q of this.statusQueues) q.push(event);
  }

  // ---- subscriptions and replies ----

  // biome-ignore lint/suspicious/noExplicitAny: each subscription has its own row type
  private sendSubscribe(sub: Subscription<any>): void {
    this.send(sub.request(`s${this.nextId++}`));
  }

  // biome-ignore lint/suspicious/noExplicitAny: each subscription has its own row type
  private removed(sub: Subscription<any>): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    // Sent even while the subscribe is in flight: the relay handles them in order.
    if (this.state.status === 'open') this.send({ type: 'unsubscribe', channel: sub.channel });
  }

  private received(data: unknown): void {
    this.heartbeat.received();
    let msg: ServerMessage;
    try {
      msg = JSON.parse(String(data)) as ServerMessage;
    } catch {
      return; // The relay sends JSON text frames only.
    }
    switch (msg.type) {
      case 'event':
        this.subs.get(msg.channel)?.event(msg);
        return;
      case 'subscribed': {
        const sub = this.subs.get(msg.channel);
        if (sub && sub.requestId === msg.id) sub.subscribed(msg);
        return;
      }
      case 'pong':
        for (const sub of this.subs.values()) sub.settle();
        return;
      case 'error':
        // An event over the relay's size limit, in the event's place: the subscription moves past it.
        if (msg.code === 'event_too_large' && msg.channel !== undefined)
          return this.subs.get(msg.channel)?.skipped(msg);
        this.relayError(new RelayError(msg.code, msg.message, msg.id));
        return;
      case 'unsubscribed':
        return;
    }
  }

  private relayError(err: RelayError): void {
    const sub = [...this.subs.values()].find((s) => err.requestId !== undefined && s.requestId === err.requestId);
    if (!sub) {
      // Unsubscribes of subscriptions the relay had already dropped end here too.
      if (err.code !== 'not_subscribed') this.notices.emit('error', err);
      return;
    }
    const refused = new RelayError(err.code, err.message, err.requestId, sub.channel);
    if (!refused.retryable) return sub.fail(refused);
    this.notices.emit('error', refused);
    sub.requestId = undefined;
    const delay = backoffDelay(sub.retries++, this.backoff, this.random);
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      if (!sub.closed && this.state.status === 'open' && sub.requestId === undefined) this.sendSubscribe(sub);
    }, delay);
    this.retryTimers.add(timer);
  }
}

/** The HTTP status of a refused upgrade, from the `ws` package's error ("Unexpected server response: 403"). */
function refusedStatus(ev: unknown): number | undefined {
  const message = (ev as { message?: unknown } | null)?.message;
  const m = typeof message === 'string' ? /server response: (\d{3})/.exec(message) : null;
  return m ? Number(m[1]) : undefined;
}

/** Accept http(s) and ws(s) URLs, with or without the /ws path. */
export function wsUrl(url: string): string {
  const u = new URL(url, (globalThis as { location?: { href: string } }).location?.href);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '/' || u.pathname === '') u.pathname = WS_PATH;
  return u.toString();
}

export function createClient(url: string | readonly string[], options?: ClientOptions): WalcastClient {
  return new WalcastClient(url, options);
}
