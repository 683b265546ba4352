// The replication connection: streams the slot with pgoutput, hands each
// decoded message to the relay synchronously and in order, confirms LSNs
// only when told they are delivered, and reconnects with backoff.
//
//   idle ──start()──▶ connecting ──START_REPLICATION──▶ streaming
//                        ▲                                  │ error / server gone
//                        └──── reconnecting (backoff) ◀─────┘
//   any ──stop()──▶ closed
//
// pg-logical-replication carries the connection and the CopyBoth protocol;
// walcast supplies the decoder (decoder.ts) and does its own acknowledgement:
// the library's auto-acknowledge would confirm what was *received*, not what
// was delivered, and it does not answer keepalives by itself.
import { EventEmitter } from 'node:events';
import { LogicalReplicationService } from 'pg-logical-replication';
import type { Client } from 'pg';
import type { Logger } from '../log.ts';
import { SQLSTATE, WalcastError, sqlState } from '../errors.ts';
import { PgoutputDecoder, type PgoutputMessage } from './decoder.ts';
import { TEXT_FORMAT_OPTIONS as SESSION_OPTIONS } from './values.ts';
import { formatLsn, parseLsn, type Lsn } from './lsn.ts';
import { HEARTBEAT_PREFIX } from './messages.ts';

export type StreamState = 'idle' | 'connecting' | 'streaming' | 'reconnecting' | 'closed';

export interface StreamOptions {
  connectionString: string;
  slot: string;
  publication: string;
  logger: Logger;
  /** Called for every message, in WAL order; it must not throw. */
  onMessage: (msg: PgoutputMessage) => void;
  /** How often confirmed progress is sent when nothing asks for it, ms. */
  statusIntervalMs?: number;
  /** Backoff bounds for reconnecting, ms. */
  backoff?: { initialMs: number; maxMs: number };
  /**
   * Hold confirmation back by this long (the recovery window): PostgreSQL
   * keeps that much WAL, and a restarted relay re-reads it to rebuild the
   * window. 0 confirms what is delivered at once.
   */
  holdMs?: number;
  /**
   * Hold confirmation back by at most this many bytes of WAL behind what is
   * delivered, whatever holdMs says. A restarted relay re-reads what was not
   * confirmed before live rows flow, and PostgreSQL decodes all of it (even
   * what it then skips), so this bounds that wait; positions older than the
   * bound are not resumable after a restart. Unset: no bound.
   */
  holdMaxBytes?: number;
  /**
   * Called before reconnecting after the slot vanished (dropped) or was
   * invalidated (wal_status lost): recreate it, and say where the new slot
   * starts. Without it such a failure is retried as it is.
   */
  recreateSlot?: (reason: string) => Promise<RecreatedSlot>;
}

/** A slot made anew after the old one was lost. */
export interface RecreatedSlot {
  /** The new incarnation (walcast.slots). */
  epoch: string;
  /** Streaming starts after it. */
  confirmedFlushLsn: Lsn;
  /** The server's WAL position once it was created: events before it are not live news. */
  liveFromLsn: Lsn;
}

export interface StreamEvents {
  state: [state: StreamState];
  /** A position was sent to PostgreSQL as flushed. */
  confirmed: [lsn: Lsn];
  /** Every event at or before this LSN reached the sockets (a commit, or a keepalive with nothing pending). */
  dispatched: [lsn: Lsn];
  /** The connection failed; a reconnect is scheduled. */
  failure: [err: Error];
  /**
   * The slot was recreated, before streaming it: earlier positions are gone.
   * Listeners run synchronously, before the first message of the new slot.
   */
  slotRecreated: [slot: RecreatedSlot, reason: string];
}

/** Well under half of wal_sender_timeout's default (60 s), when the server starts asking. */
const STATUS_REFRESH_MS = 10_000;

// The shape of the library's (unexported) AbstractPlugin.
export class WalcastPgoutputPlugin {
  readonly decoder = new PgoutputDecoder();
  constructor(readonly options: { publication: string }) {}
  get name(): string {
    return 'pgoutput';
  }
  parse(buffer: Buffer): PgoutputMessage {
    return this.decoder.decode(buffer);
  }
  start(client: Client, slotName: string, lastLsn: string): Promise<unknown> {
    // Names are validated identifiers (config.ts); quoting keeps them exact.
    const sql =
      `START_REPLICATION SLOT "${slotName}" LOGICAL ${lastLsn} ` +
      `(proto_version '1', publication_names '"${this.options.publication}"', messages 'true')`;
    return client.query(sql);
  }
}

/** The socket a replication service reads from, to pause it (backpressure). */
export function serviceSocket(
  service: LogicalReplicationService | undefined,
): { pause(): void; resume(): void } | undefined {
  // The library's connection (pg's Connection) reads from this net.Socket.
  return (service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } } | undefined)
    ?._connection?.stream;
}

export class ReplicationStream extends EventEmitter<StreamEvents> {
  state: StreamState = 'idle';
  lastError: Error | undefined;
  /** Highest LSN whose events have all been handed to the sockets. */
  private deliveredLsn: Lsn = 0n;
  /**
   * [sinks] Highest LSN whose events reached the sockets, whether or not a
   * sink (relay/sinks/) has them yet: what the WebSocket side's lag is
   * measured against. Without a sink it equals deliveredLsn.
   */
  private dispatchedLsn: Lsn = 0n;
  /** Highest LSN sent to PostgreSQL as flushed. */
  private confirmedLsn: Lsn = 0n;
  /** Inside Begin…Commit: keepalive positions must not be confirmed. */
  private inTransaction = false;
  /** End LSN of the last Commit received; until it is delivered, keepalives confirm nothing. */
  private receivedCommitLsn: Lsn = 0n;
  /** (LSN, time) samples of delivered progress, for the hold; at most one per 100 ms. */
  private samples: { lsn: Lsn; timeMs: number }[] = [];
  private slotLost: string | undefined;
  private statusSentAt = 0;
  private paused = false;
  /** Why reading is paused (hold); empty: reading. */
  private readonly holds = new Set<string>();
  private service: LogicalReplicationService | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private readonly plugin: WalcastPgoutputPlugin;

  constructor(private readonly opts: StreamOptions) {
    super();
    this.plugin = new WalcastPgoutputPlugin({ publication: opts.publication });
  }

  /** Start streaming after `fromLsn` (the slot's confirmed position, or 0 for the slot's own). */
  start(fromLsn: Lsn): void {
    this.deliveredLsn = fromLsn;
    this.dispatchedLsn = fromLsn;
    this.confirmedLsn = fromLsn;
    this.statusTimer = setInterval(() => this.sendStatus(false), this.opts.statusIntervalMs ?? 1000);
    this.statusTimer.unref();
    void this.connect();
  }

  /** Every event at or before `lsn` (committed at `timeMs`) has been handed to the sockets. */
  delivered(lsn: Lsn, timeMs = Date.now()): void {
    if (lsn <= this.deliveredLsn) return;
    this.deliveredLsn = lsn;
    if (!this.opts.holdMs) return;
    const last = this.samples[this.samples.length - 1];
    if (last && timeMs - last.timeMs < 100) last.lsn = lsn;
    else this.samples.push({ lsn, timeMs });
  }

  /** [sinks] Every event at or before `lsn` reached the sockets (a sink may still hold it: see `delivered`). */
  dispatched(lsn: Lsn): void {
    if (lsn <= this.dispatchedLsn) return;
    this.dispatchedLsn = lsn;
    this.emit('dispatched', lsn);
  }

  /**
   * [sinks] Re-read the slot from the delivered position (a sink fell behind
   * and dropped what it could not hold). The dispatcher skips for the
   * sockets what they already had.
   */
  rewind(): void {
    const service = this.service;
    if (!service || this.state !== 'streaming') return; // a reconnect starts from the delivered position anyway
    this.service = undefined;
    void service.destroy().catch(() => {});
    this.setState('reconnecting');
    this.retryTimer = setTimeout(() => void this.connect(), 0);
  }

  /** What may be confirmed now: delivered, and (with a hold) older than the window or than holdMaxBytes. */
  private confirmable(): Lsn {
    if (!this.opts.holdMs) return this.deliveredLsn;
    const horizon = Date.now() - this.opts.holdMs;
    const floor = this.opts.holdMaxBytes === undefined ? 0n : this.deliveredLsn - BigInt(this.opts.holdMaxBytes);
    let lsn = this.confirmedLsn;
    let drop = 0;
    for (const s of this.samples) {
      if (s.timeMs > horizon && s.lsn > floor) break;
      lsn = s.lsn;
      drop++;
    }
    if (drop > 0) this.samples.splice(0, drop);
    if (floor > lsn) lsn = floor;
    return lsn > this.deliveredLsn ? this.deliveredLsn : lsn;
  }

  /**
   * Stop reading from PostgreSQL while any `reason` holds: a front door's
   * sockets are backed up (ws/congestion.ts), or the JetStream sink has more
   * queued than it publishes soon (sinks/jetstream.ts). The server keeps what
   * is not read yet, so a burst is paced by the slowest instead of piling up
   * in the relay's memory.
   */
  hold(reason: string, on: boolean): void {
    if (on) this.holds.add(reason);
    else this.holds.delete(reason);
    const paused = this.holds.size > 0;
    if (paused === this.paused) return;
    this.paused = paused;
    if (paused) this.socket()?.pause();
    else this.socket()?.resume();
  }

  private socket(): { pause(): void; resume(): void } | undefined {
    return serviceSocket(this.service);
  }

  get confirmed(): Lsn {
    return this.confirmedLsn;
  }

  /** Highest LSN whose events have all been handed to the sockets (and to the sinks). */
  get deliveredPosition(): Lsn {
    return this.deliveredLsn;
  }

  /** [sinks] Highest LSN whose events have all been handed to the sockets. */
  get dispatchedPosition(): Lsn {
    return this.dispatchedLsn > this.deliveredLsn ? this.dispatchedLsn : this.deliveredLsn;
  }

  /**
   * The slot can no longer be trusted (the watchdog saw wal_status
   * 'unreserved' or 'lost'): drop the connection, and recreate the slot
   * (recreateSlot) before reconnecting.
   */
  invalidate(reason: string): void {
    if (this.state === 'closed' || !this.opts.recreateSlot) return;
    this.slotLost = reason;
    if (this.service) this.onFailure(this.service, new Error(`the replication slot is unusable: ${reason}`));
  }

  async stop(): Promise<void> {
    if (this.state === 'closed') return;
    this.sendStatus(false);
    this.setState('closed');
    clearInterval(this.statusTimer);
    clearTimeout(this.retryTimer);
    const service = this.service;
    this.service = undefined;
    await service?.destroy().catch(() => {});
  }

  private async connect(): Promise<void> {
    if (this.state === 'closed') return;
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    if (this.slotLost && this.opts.recreateSlot) {
      const reason = this.slotLost;
      let slot: RecreatedSlot;
      try {
        slot = await this.opts.recreateSlot(reason);
      } catch (err) {
        return this.onFailure(undefined, err as Error);
      }
      this.slotLost = undefined;
      this.deliveredLsn = this.dispatchedLsn = this.confirmedLsn = slot.confirmedFlushLsn;
      this.receivedCommitLsn = 0n;
      this.samples = [];
      this.emit('slotRecreated', slot, reason);
      if ((this.state as StreamState) === 'closed') return;
    }
    const service = new LogicalReplicationService(
      { connectionString: this.opts.connectionString, options: SESSION_OPTIONS },
      { acknowledge: { auto: false, timeoutSeconds: 0 } },
    );
    this.service = service;
    this.inTransaction = false;
    service.on('data', (_lsn: string, msg: PgoutputMessage) => this.onData(msg));
    service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => this.onKeepalive(lsn, shouldRespond));
    service.on('start', () => {
      this.attempt = 0;
      this.lastError = undefined;
      this.setState('streaming');
      if (this.paused) this.socket()?.pause();
      this.opts.logger.info({ slot: this.opts.slot, lsn: formatLsn(this.deliveredLsn) }, 'replication streaming');
    });
    service.on('error', (err: Error) => this.onFailure(service, err));
    // Resume after what was delivered, not merely confirmed: PostgreSQL skips
    // transactions that committed before the requested position.
    service
      .subscribe(
        this.plugin as unknown as Parameters<LogicalReplicationService['subscribe']>[0],
        this.opts.slot,
        formatLsn(this.deliveredLsn),
      )
      .then(() => this.onFailure(service, new Error('the server ended the replication stream')))
      .catch((err: Error) => this.onFailure(service, err));
  }

  private onData(msg: PgoutputMessage): void {
    if (msg.tag === 'message' && !msg.transactional && msg.prefix === HEARTBEAT_PREFIX) {
      // The watchdog's heartbeat: no event; its position is delivered once
      // nothing before it is pending, so an idle publication moves the slot.
      this.idleAt(msg.lsn);
      return;
    }
    if (msg.tag === 'begin') this.inTransaction = true;
    else if (msg.tag === 'commit') {
      this.inTransaction = false;
      this.receivedCommitLsn = msg.endLsn;
    }
    this.opts.onMessage(msg);
  }

  private onKeepalive(lsnText: string, shouldRespond: boolean): void {
    // Nothing pending: the server's position is delivered too, so an idle
    // publication does not pin WAL.
    this.idleAt(parseLsn(lsnText));
    // The server asks for a reply when it is shutting down: its walsender
    // exits only once the flush position reaches what it sent, so a held
    // window would stall a fast shutdown. (The periodic status below keeps
    // it from asking otherwise.) The hold yields; the window in memory stays.
    if (shouldRespond) this.sendStatus(true, true);
  }

  /** A position with no event (keepalive, heartbeat): reached once nothing before it is pending. */
  private idleAt(lsn: Lsn): void {
    if (this.inTransaction) return;
    if (this.dispatchedPosition >= this.receivedCommitLsn) this.dispatched(lsn);
    if (this.deliveredLsn >= this.receivedCommitLsn) this.delivered(lsn);
  }

  private sendStatus(force: boolean, release = false): void {
    const service = this.service;
    if (!service || this.state !== 'streaming') return;
    if (release) this.samples = [];
    const lsn = release ? this.deliveredLsn : this.confirmable();
    // Unchanged positions are re-sent now and then so that wal_sender_timeout
    // never makes the server ask (see onKeepalive).
    if (!force && lsn === this.confirmedLsn && Date.now() - this.statusSentAt < STATUS_REFRESH_MS) return;
    this.statusSentAt = Date.now();
    if (lsn === 0n) return;
    // The library reports `lsn + 1` (it treats the argument as the last byte
    // received). PostgreSQL takes the flush position as confirmed_flush_lsn
    // and skips transactions whose commit record starts before it, so
    // confirming end+1 could skip a transaction committed right at `end`.
    void service.acknowledge(formatLsn(lsn - 1n)).catch(() => {});
    this.confirmedLsn = lsn;
    this.emit('confirmed', lsn);
  }

  private onFailure(service: LogicalReplicationService | undefined, err: Error): void {
    if (service !== this.service || this.state === 'closed') return;
    this.service = undefined;
    void service?.destroy().catch(() => {});
    this.lastError = err;
    const state = sqlState(err);
    // 42704: the slot does not exist (dropped); 55000: it can no longer be
    // used (invalidated: wal_status lost, or a removed WAL segment).
    if (state === SQLSTATE.undefinedObject || state === SQLSTATE.objectNotInPrerequisiteState) {
      this.slotLost = `${err.message} (SQLSTATE ${state})`;
    }
    this.emit('failure', err);
    const initial = this.opts.backoff?.initialMs ?? 200;
    const max = this.opts.backoff?.maxMs ?? 10_000;
    const delay = Math.min(max, initial * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt++;
    const wrapped = new WalcastError('replication_failed', { detail: err.message }, err);
    this.opts.logger.warn({ err: wrapped, attempt: this.attempt, delayMs: Math.round(delay) }, wrapped.message);
    this.setState('reconnecting');
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private setState(state: StreamState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }
}
