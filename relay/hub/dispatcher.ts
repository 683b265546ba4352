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
import type { Logger } from '../log.ts';
import type { PgoutputMessage, Relation, Tuple } from '../replication/decoder.ts';
import { pgTimeToIso, pgTimeToMs } from '../replication/decoder.ts';
import { formatPosition, maxPosition, streamPoint } from '../replication/position.ts';
import type { Lsn } from '../replication/lsn.ts';
import { registrationFromRow, type Registration } from '../db/registry.ts';
import { PRUNE_MESSAGE_PREFIX } from '../jobs/ttl.ts';
import { MQTT_MESSAGE_PREFIX, decodeMessage } from '../mqtt/messages.ts';
import { channelOfTopic } from '../mqtt/topics.ts';
import type { Router } from './router.ts';
import type { RecoveryBuffer } from './recovery.ts';
import type { EventMessage, Op } from '../../client/protocol.ts';
import { MAX_CHANNEL_LENGTH } from '../../client/protocol.ts';

interface Transaction {
  finalLsn: Lsn;
  xid: number;
  commitTime: bigint;
  commitTimeIso: string | undefined;
  index: number;
  /** Carries the TTL job's message: its deletes are not events. */
  prune: boolean;
}

type Route = { kind: 'table'; channelColumn: string } | { kind: 'registry' } | { kind: 'none' };

export interface DispatcherCounters {
  rows: number;
  events: number;
  deliveries: number;
  unrouted: number;
  transactions: number;
}

export interface DispatcherOptions {
  router: Router;
  logger: Logger;
  /** Every event at or before this LSN has been handed to the sockets (and buffered). */
  onDelivered: (lsn: Lsn, commitTimeMs: number) => void;
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
}

export class Dispatcher {
  readonly counters: DispatcherCounters = { rows: 0, events: 0, deliveries: 0, unrouted: 0, transactions: 0 };
  private tx: Transaction | undefined;
  private lastLsn: Lsn;
  private lastIndex = 0;
  private epoch: string;
  private liveFrom: string;
  private readonly registrations = new Map<string, Registration>();
  private readonly routes = new Map<number, Route>();
  private readonly warned = new Set<string>();

  constructor(private readonly opts: DispatcherOptions) {
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
    this.registrations.clear();
    for (const r of regs) this.registrations.set(`${r.schema}.${r.table}`, r);
    this.routes.clear();
  }

  registrationList(): Registration[] {
    return [...this.registrations.values()];
  }

  /** Is `name` ("chat_messages" or "schema.table") a registered table? */
  hasTable(name: string): boolean {
    return this.registrations.has(name.includes('.') ? name : `public.${name}`);
  }

  /** Where a new subscription starts: every later event reaches it. */
  position(): string {
    const last = this.lastIndex === 0 ? streamPoint(this.lastLsn, this.epoch) : formatPosition(this.lastLsn, this.lastIndex, this.epoch);
    return maxPosition(last, this.liveFrom);
  }

  handle(msg: PgoutputMessage): void {
    switch (msg.tag) {
      case 'begin':
        this.tx = { finalLsn: msg.finalLsn, xid: msg.xid, commitTime: msg.commitTime, commitTimeIso: undefined, index: 0, prune: false };
        return;
      case 'commit':
        this.tx = undefined;
        this.counters.transactions++;
        this.opts.recovery.evict(Date.now());
        this.opts.onDelivered(msg.endLsn, pgTimeToMs(msg.commitTime));
        return;
      case 'relation':
        this.routes.delete(msg.relation.oid);
        return;
      case 'message':
        if (msg.transactional && msg.prefix === PRUNE_MESSAGE_PREFIX && this.tx) this.tx.prune = true;
        if (msg.transactional && msg.prefix === MQTT_MESSAGE_PREFIX && this.tx) this.mqttMessage(msg.content, this.tx);
        return;
      case 'insert':
      case 'update':
      case 'delete':
        this.change(msg);
        return;
      default:
        // type, origin, truncate: nothing to route (TRUNCATE has no rows).
        return;
    }
  }

  private change(msg: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>): void {
    const tx = this.tx;
    if (!tx) return;
    const index = ++tx.index;
    if (tx.finalLsn < this.lastLsn || (tx.finalLsn === this.lastLsn && index <= this.lastIndex)) return;
    this.lastLsn = tx.finalLsn;
    this.lastIndex = index;
    this.counters.rows++;
    const route = this.route(msg.relation);
    if (route.kind === 'registry') return this.registryChange(msg);
    if (route.kind === 'none') {
      this.counters.unrouted++;
      return;
    }
    if (msg.tag === 'delete' && tx.prune) return;
    this.emit(msg, tx, index, route.channelColumn);
  }

  private emit(msg: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>, tx: Transaction, index: number, column: string): void {
    const event: EventMessage = {
      type: 'event',
      channel: '',
      table: msg.relation.qualifiedName,
      op: msg.tag as Op,
      position: formatPosition(tx.finalLsn, index, this.epoch),
      commit_time: (tx.commitTimeIso ??= pgTimeToIso(tx.commitTime)),
      row: {},
    };
    let channels: (string | undefined)[];
    if (msg.tag === 'insert') {
      event.row = msg.new.values;
      if (msg.new.unchanged) event.unchanged = msg.new.unchanged;
      channels = [channelOf(msg.new.values, column)];
    } else if (msg.tag === 'update') {
      const prior = msg.old ?? msg.key;
      fillUnchanged(event, msg.new, msg.old);
      if (prior) event.old = prior.values;
      const to = channelOf(msg.new.values, column);
      const from = prior ? channelOf(prior.values, column) : undefined;
      channels = from !== undefined && from !== to ? [to, from] : [to];
    } else {
      const prior = msg.old ?? msg.key;
      event.row = prior?.values ?? {};
      channels = [prior ? channelOf(prior.values, column) : undefined];
    }
    const { router, recovery } = this.opts;
    const keep = recovery.limits.maxPerChannel > 0;
    const timeMs = pgTimeToMs(tx.commitTime);
    for (const channel of channels) {
      if (channel === undefined) {
        this.warnOnce(`nochan:${event.table}`, { table: event.table, column }, 'row without a usable channel value was not routed');
        continue;
      }
      const live = router.hasSubscribers(channel);
      if (!live && !keep) continue;
      event.channel = channel;
      const frame = JSON.stringify(event);
      this.counters.events++;
      if (keep) recovery.add({ channel, table: event.table, position: event.position, timeMs, frame }, Date.now());
      // Encoded to UTF-8 once here: a string would be encoded again by every
      // socket it is written to (ws and net each measure or convert it).
      if (live) this.counters.deliveries += router.dispatch(channel, { table: event.table, position: event.position, xid: tx.xid, frame: Buffer.from(frame) });
    }
  }

  /**
   * An MQTT message (relay/mqtt/messages.ts): routed on its topic's channel
   * to the subscriptions that take messages, with a position of its own like
   * a row change. Not kept in the recovery window.
   */
  private mqttMessage(content: Buffer, tx: Transaction): void {
    const index = ++tx.index;
    if (tx.finalLsn < this.lastLsn || (tx.finalLsn === this.lastLsn && index <= this.lastIndex)) return;
    this.lastLsn = tx.finalLsn;
    this.lastIndex = index;
    const message = decodeMessage(content);
    if (!message) return;
    const channel = channelOfTopic(message.topic);
    const table = message.topic.split('/', 1)[0]!;
    const position = formatPosition(tx.finalLsn, index, this.epoch);
    this.counters.deliveries += this.opts.router.dispatch(channel, { table, position, xid: tx.xid, frame: content, message: true });
  }

  private route(relation: Relation): Route {
    let route = this.routes.get(relation.oid);
    if (route) return route;
    if (relation.schema === 'walcast' && relation.name === 'tables') route = { kind: 'registry' };
    else {
      const reg = this.registrations.get(`${relation.schema}.${relation.name}`);
      if (reg && relation.columns.some((c) => c.name === reg.channelColumn)) {
        route = { kind: 'table', channelColumn: reg.channelColumn };
      } else {
        route = { kind: 'none' };
        this.warnOnce(`unreg:${relation.qualifiedName}`, { table: relation.qualifiedName },
          reg
            ? `table ${relation.qualifiedName} has no column ${reg.channelColumn}; its rows are not routed. Run select walcast.register_table('${relation.qualifiedName}', channel_column => '<column>')`
            : `table ${relation.qualifiedName} is in the publication but not registered; its rows are not routed. Run select walcast.register_table('${relation.qualifiedName}', channel_column => '<column>')`);
      }
    }
    this.routes.set(relation.oid, route);
    return route;
  }

  /** walcast.tables changed: registrations take effect in stream order, without a restart. */
  private registryChange(msg: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>): void {
    const prior = msg.tag === 'insert' ? undefined : (msg.old ?? msg.key);
    if (prior) this.registrations.delete(`${prior.values.schema_name}.${prior.values.table_name}`);
    if (msg.tag !== 'delete') {
      const reg = registrationFromRow(msg.new.values);
      if (reg) this.registrations.set(`${reg.schema}.${reg.table}`, reg);
    }
    this.routes.clear();
    this.warned.clear();
    this.opts.logger.info({ op: msg.tag }, 'table registrations changed');
  }

  private warnOnce(key: string, fields: object, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.opts.logger.warn(fields, message);
  }
}

function channelOf(values: Record<string, unknown>, column: string): string | undefined {
  const v = values[column];
  if (typeof v === 'string') return v.length > 0 && v.length <= MAX_CHANNEL_LENGTH ? v : undefined;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/** Unchanged TOASTed columns are taken from the old row when REPLICA IDENTITY FULL sent it; the rest are listed. */
function fillUnchanged(event: EventMessage, next: Tuple, old: Tuple | undefined): void {
  event.row = next.values;
  if (!next.unchanged) return;
  const missing: string[] = [];
  for (const name of next.unchanged) {
    if (old && name in old.values) next.values[name] = old.values[name];
    else missing.push(name);
  }
  if (missing.length) event.unchanged = missing;
}
