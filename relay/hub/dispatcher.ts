// Turns decoded pgoutput messages into events and hands them to the router.
//
// pgoutput (protocol 1) sends a transaction only after it committed, whole
// and in commit order, so rows are dispatched as they arrive: a rolled-back
// transaction never reaches walcast, and a transaction of a million rows is
// streamed, not held in memory. The commit's end LSN is reported as delivered
// once the Commit message is handled, after every row of it went to the
// sockets: that is the LSN the stream may confirm.
//
// Positions are (commit LSN, index of the change in its transaction). After a
// reconnect PostgreSQL may resend a transaction that was partly dispatched;
// every change at or before the last dispatched position is skipped, so no
// client sees an event twice.
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.ts';
import type { PgoutputMessage, Relation } from '../replication/decoder.ts';
import { pgTimeToIso, pgTimeToMs } from '../replication/decoder.ts';
import { formatPosition, maxPosition, streamPoint } from '../replication/position.ts';
import type { Lsn } from '../replication/lsn.ts';
import type { Registration } from '../db/registry.ts';
import { TableRoutes, type Route } from './table-routes.ts';
import { sends } from './change-events.ts';
import { PRUNE_MESSAGE_PREFIX } from '../replication/messages.ts';
import type { Router } from './router.ts';
import type { RecoveryBuffer } from './recovery.ts';
import type { EventMessage, Op, TruncateMessage } from '../../client/protocol.ts';
import { eventFrame } from './too-large.ts';
import { orderKey } from '../replication/position.ts';
import type { DispatchSink } from './sink.ts';
import { deliver, deliverMessage, deliverTruncate, keeps, type Hub } from './deliver.ts';
import type { Via } from '../replication/handover.ts';

export type { DispatchSink } from './sink.ts';

interface Transaction {
  finalLsn: Lsn;
  xid: number;
  commitTime: bigint;
  commitTimeIso: string | undefined;
  index: number;
  /** Carries the TTL job's message: its deletes are not events. */
  prune: boolean;
}

export interface DispatcherCounters {
  rows: number;
  events: number;
  deliveries: number;
  unrouted: number;
  transactions: number;
  /** Events over maxEventBytes, replaced by an event_too_large notice. */
  tooLarge: number;
}

export interface DispatcherOptions {
  router: Router;
  logger: Logger;
  /** Where the stream starts: no event at or before it will be dispatched. */
  startLsn: Lsn;
  /** The slot's incarnation, part of every position. */
  epoch: string;
  /**
   * The server's WAL position when the relay started. Events before it were
   * committed before this relay ran: they are replayed from the slot into the
   * recovery window, but a new subscription does not receive them as live.
   */
  liveFromLsn: Lsn;
  recovery: RecoveryBuffer;
  /** Largest event frame (UTF-8 bytes) sent; larger ones become an event_too_large notice. */
  maxEventBytes: number;
  /**
   * [sinks] A change stream to another system (relay/sinks/): it gets every
   * routed event, and after a rewind (the stream re-read from an earlier
   * position) the events it asks for again, which the sockets do not get twice.
   */
  sink?: DispatchSink | undefined;
  /**
   * Where a transactional logical message goes, if anywhere: the channel and
   * the table name subscriptions filter on (the MQTT front door's messages,
   * relay/mqtt/messages.ts). Routed to the subscriptions that take messages.
   */
  messageRoute?: (prefix: string, content: Buffer) => { channel: string; table: string } | undefined;
  /**
   * During a restart's hand-over (replication/handover.ts): which
   * subscriptions the fresh event at `position` is for, or 'skip' (the
   * temporary stream after the hand-over), and where new subscriptions
   * start. Absent: every subscription, from the dispatcher's own position.
   */
  handover?: { via(position: string): Via | 'skip'; frontier(): string | undefined } | undefined;
}

export interface DispatcherEvents {
  /** Every event at or before `lsn` (committed at `commitTimeMs`) has been handed to the sockets (and buffered). */
  delivered: [lsn: Lsn, commitTimeMs: number];
}

export class Dispatcher extends EventEmitter<DispatcherEvents> {
  readonly counters: DispatcherCounters = {
    rows: 0,
    events: 0,
    deliveries: 0,
    unrouted: 0,
    transactions: 0,
    tooLarge: 0,
  };
  private tx: Transaction | undefined;
  private lastLsn: Lsn;
  private lastIndex = 0;
  private epoch: string;
  private liveFrom: string;
  private readonly tables: TableRoutes;

  /** Where fresh events go (deliver.ts): the router, the window, the counters. */
  private readonly hub: Hub;

  constructor(private readonly opts: DispatcherOptions) {
    super();
    this.hub = { router: opts.router, recovery: opts.recovery, counters: this.counters };
    this.tables = new TableRoutes(opts.logger);
    this.lastLsn = opts.startLsn;
    this.epoch = opts.epoch;
    this.liveFrom = streamPoint(opts.liveFromLsn, opts.epoch);
    opts.recovery.reset(streamPoint(opts.startLsn, opts.epoch), opts.epoch);
  }

  /** The slot was recreated: a new epoch starts at `startLsn`, with an empty window. */
  reset(epoch: string, startLsn: Lsn, liveFromLsn: Lsn): void {
    this.tx = undefined;
    this.epoch = epoch;
    this.lastLsn = startLsn;
    this.lastIndex = 0;
    this.liveFrom = streamPoint(liveFromLsn, epoch);
    this.opts.recovery.reset(streamPoint(startLsn, epoch), epoch);
  }

  get currentEpoch(): string {
    return this.epoch;
  }

  setRegistrations(regs: Registration[]): void {
    this.tables.set(regs);
  }

  registrationList(): Registration[] {
    return this.tables.list();
  }

  /** Is `name` ("chat_messages" or "schema.table") a registered table? */
  hasTable(name: string): boolean {
    return this.tables.has(name);
  }

  /** Where a new subscription starts: every later event reaches it. */
  position(): string {
    const last =
      this.lastIndex === 0
        ? streamPoint(this.lastLsn, this.epoch)
        : formatPosition(this.lastLsn, this.lastIndex, this.epoch);
    const frontier = this.opts.handover?.frontier();
    const own = maxPosition(last, this.liveFrom);
    return frontier === undefined ? own : maxPosition(own, frontier);
  }

  handle(msg: PgoutputMessage): void {
    switch (msg.tag) {
      case 'begin':
        this.tx = {
          finalLsn: msg.finalLsn,
          xid: msg.xid,
          commitTime: msg.commitTime,
          commitTimeIso: undefined,
          index: 0,
          prune: false,
        };
        return;
      case 'commit':
        this.tx = undefined;
        this.counters.transactions++;
        this.opts.recovery.evict(Date.now());
        this.emit('delivered', msg.endLsn, pgTimeToMs(msg.commitTime));
        return;
      case 'relation':
        this.tables.forget(msg.relation.oid);
        return;
      case 'message':
        if (msg.transactional && msg.prefix === PRUNE_MESSAGE_PREFIX && this.tx) this.tx.prune = true;
        else if (msg.transactional && this.tx && this.opts.messageRoute)
          this.logicalMessage(msg.prefix, msg.content, this.tx);
        return;
      case 'insert':
      case 'update':
      case 'delete':
        this.change(msg);
        return;
      case 'truncate':
        this.truncate(msg.relations);
        return;
      default:
        // type, origin: nothing to route.
        return;
    }
  }

  /**
   * The next change of the transaction: its index, and whether it is fresh
   * (not dispatched before a reconnect or a sink's rewind). A change that is
   * not fresh goes only to a sink that asks for it again.
   */
  private next(tx: Transaction): { index: number; fresh: boolean } {
    const index = ++tx.index;
    const fresh = !(tx.finalLsn < this.lastLsn || (tx.finalLsn === this.lastLsn && index <= this.lastIndex));
    if (fresh) {
      this.lastLsn = tx.finalLsn;
      this.lastIndex = index;
    }
    return { index, fresh };
  }

  /** Is this change wanted at all: fresh, or asked for again by a rewinding sink? */
  private wanted(tx: Transaction, index: number, fresh: boolean): boolean {
    return fresh || this.opts.sink?.wants(orderKey(tx.finalLsn, index)) === true;
  }

  private change(msg: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>): void {
    const tx = this.tx;
    if (!tx) return;
    const { index, fresh } = this.next(tx);
    if (!this.wanted(tx, index, fresh)) return;
    if (fresh) this.counters.rows++;
    const route = this.tables.route(msg.relation);
    if (route.kind === 'registry') return fresh ? this.tables.registryChange(msg) : undefined;
    if (route.kind === 'none') {
      if (fresh) this.counters.unrouted++;
      return;
    }
    if (msg.tag === 'delete' && tx.prune) return;
    this.deliverEvent(msg, tx, index, route, fresh);
  }

  /** Build the change's event and hand it to the router and the recovery window, for each channel it belongs to. */
  private deliverEvent(
    msg: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>,
    tx: Transaction,
    index: number,
    route: Extract<Route, { kind: 'table' }>,
    fresh: boolean,
  ): void {
    const column = route.channelColumn;
    const event: EventMessage = {
      type: 'event',
      channel: '',
      table: msg.relation.shortName,
      op: msg.tag as Op,
      position: formatPosition(tx.finalLsn, index, this.epoch),
      commit_time: (tx.commitTimeIso ??= pgTimeToIso(tx.commitTime)),
      row: {},
    };
    if (route.omitted) event.omitted = route.omitted;
    const out = sends(msg, event, column);
    const { router, sink } = this.opts;
    const via = fresh ? this.via(event.position) : 'skip';
    const keep = fresh && keeps(this.hub);
    const timeMs = pgTimeToMs(tx.commitTime);
    let part = 0;
    for (const [channel, e] of out) {
      if (channel === undefined) {
        this.tables.warnOnce(
          `nochan:${event.table}`,
          { table: event.table, column },
          'row without a usable channel value was not routed',
        );
        continue;
      }
      const live = fresh && router.hasSubscribers(channel);
      if (!live && !keep && !sink) continue;
      e.channel = channel;
      const frame = eventFrame(e, this.opts.maxEventBytes, () => fresh && this.tooLarge(e));
      // [sinks] every routed event, in stream order.
      sink?.event({ commitLsn: tx.finalLsn, index, part: part++, commitTimeMs: timeMs, xid: tx.xid, event: e, frame });
      if (via !== 'skip')
        deliver(this.hub, { channel, table: e.table, position: e.position, xid: tx.xid, timeMs, frame, body: e, via });
    }
  }

  /**
   * TRUNCATE of one or more tables: one event per registered table (each its
   * own change index, so its own position), to every subscription whose
   * filter admits the table, whatever its channel; kept in the window.
   */
  private truncate(relations: Relation[]): void {
    const tx = this.tx;
    if (!tx) return;
    for (const relation of relations) {
      const { index, fresh } = this.next(tx);
      if (!this.wanted(tx, index, fresh) || this.tables.route(relation).kind !== 'table') continue;
      const table = relation.shortName;
      const event: TruncateMessage = {
        type: 'event',
        channel: '',
        table,
        op: 'truncate',
        position: formatPosition(tx.finalLsn, index, this.epoch),
        commit_time: (tx.commitTimeIso ??= pgTimeToIso(tx.commitTime)),
      };
      const frame = JSON.stringify(event);
      const commitTimeMs = pgTimeToMs(tx.commitTime);
      // [sinks] table-wide: no channel (the subject's channel token is `%`).
      this.opts.sink?.event({ commitLsn: tx.finalLsn, index, part: 0, commitTimeMs, xid: tx.xid, event, frame });
      const via = fresh ? this.via(event.position) : 'skip';
      if (via !== 'skip')
        deliverTruncate(this.hub, { table, position: event.position, xid: tx.xid, timeMs: commitTimeMs, frame, via });
    }
  }

  /**
   * A logical message that messageRoute places (an MQTT message, a Supabase
   * broadcast or presence diff): a position of its own like a row change,
   * handed to the JetStream sink (edges route it from the stream, and a
   * rewinding sink asks for it again like a row), and routed on its channel
   * to the subscriptions that take messages (deliver.ts deliverMessage).
   */
  private logicalMessage(prefix: string, content: Buffer, tx: Transaction): void {
    const to = this.opts.messageRoute!(prefix, content);
    if (!to) return;
    const { index, fresh } = this.next(tx);
    if (!this.wanted(tx, index, fresh)) return;
    const position = formatPosition(tx.finalLsn, index, this.epoch);
    const timeMs = pgTimeToMs(tx.commitTime);
    this.opts.sink?.message?.({
      commitLsn: tx.finalLsn,
      index,
      commitTimeMs: timeMs,
      xid: tx.xid,
      prefix,
      channel: to.channel,
      table: to.table,
      position,
      commit_time: (tx.commitTimeIso ??= pgTimeToIso(tx.commitTime)),
      content,
    });
    const via = fresh ? this.via(position) : 'skip';
    if (via === 'skip') return;
    deliverMessage(this.hub, { channel: to.channel, table: to.table, position, xid: tx.xid, timeMs, content, via });
  }

  /** Who gets the fresh event at `position` while a restart's hand-over runs (handover.ts). */
  private via(position: string): Via | 'skip' {
    return this.opts.handover?.via(position);
  }

  private tooLarge(event: EventMessage): void {
    this.counters.tooLarge++;
    this.opts.logger.warn(
      { table: event.table, channel: event.channel, position: event.position, maxEventBytes: this.opts.maxEventBytes },
      'an event over WALCAST_MAX_EVENT_BYTES was replaced by an event_too_large notice',
    );
  }
}
