// What a subscribe does, in its three forms:
//   live:      register with the router; every later event reaches it.
//   resume:    `since` → the events after it from the recovery window, then
//              live, in one tick (no gap, no duplicate); or recovered:false.
//   snapshot:  hold the channel's live events, read the current rows in a
//              REPEATABLE READ transaction, send them, then the held events
//              the read did not already include, then live.
// An edge relay (relay/edge/) also reads older events from its stream when
// `since` is before its own window (`history`): live events are held while
// the stream is read up to where they begin, so the seam has no gap and no
// duplicate.
import { withId, type SubscribeMessage, type SubscribedMessage } from '../../client/protocol.ts';
import type { RecoveryBuffer, Replay } from '../hub/recovery.ts';
import type { Frame, Router, TableFilter } from '../hub/router.ts';
import { DEFAULT_SNAPSHOT_LIMIT, type Snapshot, type SnapshotReader } from '../db/snapshot.ts';
import { SnapshotBusy, SnapshotDropped, SnapshotUnavailable } from '../db/snapshot-queue.ts';
import { snapshotPosition } from '../replication/position.ts';
import type { Logger } from '../log.ts';

export interface SubscribeDeps {
  router: Router;
  recovery: RecoveryBuffer;
  snapshots: SnapshotReader;
  position: () => string;
  logger: Logger;
  /** [edge] Events older than the recovery window, from a change stream. */
  history?: History | undefined;
}

/** Where an edge reads the events a resume missed (relay/edge/history.ts). */
export interface History {
  /** A mark of what has been routed so far: read() returns the events up to it. */
  mark(): number;
  /** The events of `channel` after `since`, up to `upTo` (a mark), or why they cannot be had. */
  read(channel: string, since: string, upTo: number): Promise<Replay>;
}

/** The parts of a connection a subscribe needs. */
export interface Subscriber {
  readonly subscriptions: Set<string>;
  readonly open: boolean;
  send(frame: Frame): void;
  reply(msg: SubscribedMessage): void;
  error(code: 'snapshot_failed' | 'snapshot_busy', message: string, id?: string): void;
  overflow(): void;
}

/**
 * Snapshots being read, per connection and channel. A later subscribe to the
 * channel (after an unsubscribe) replaces the entry, so the earlier read,
 * when it completes, knows it is stale and leaves the new subscription alone.
 * Holds at most one entry per subscription of the connection.
 */
const pending = new WeakMap<Subscriber, Map<string, object>>();

/** `subject`: the token's sub, for the per-subject snapshot limit. */
export function subscribe(
  deps: SubscribeDeps,
  conn: Subscriber,
  msg: SubscribeMessage,
  tables: TableFilter,
  subject: string | null = null,
): void | Promise<void> {
  const { router, recovery } = deps;
  const channel = msg.channel;
  pending.get(conn)?.delete(channel);
  const reply = (position: string, recovered?: boolean): SubscribedMessage => {
    const m = withId<SubscribedMessage>({ type: 'subscribed', channel, position }, msg.id);
    if (recovered !== undefined) m.recovered = recovered;
    return m;
  };
  conn.subscriptions.add(channel);
  if (msg.since !== undefined) {
    const replay = recovery.replay(channel, msg.since);
    if (replay.recovered) {
      router.subscribe(channel, conn, { tables, after: msg.since });
      conn.reply(reply(deps.position(), true));
      for (const e of replay.events) if (tables === null || tables.has(e.table)) conn.send(e.frame);
      return;
    }
    if (deps.history) return fromHistory(deps, deps.history, conn, msg, tables, subject, reply);
    if (!msg.snapshot) {
      const position = deps.position();
      router.subscribe(channel, conn, { tables, after: position });
      conn.reply(reply(position, false));
      return;
    }
  }
  if (msg.snapshot)
    return withSnapshot(deps, conn, msg, tables, subject, (p) => reply(p, msg.since === undefined ? undefined : false));
  // Registration and the reply happen in the same tick as dispatch, so every
  // event after `position` reaches this subscription. (`after` matters while
  // a restarted relay re-reads its window: those events are not news.)
  const position = deps.position();
  router.subscribe(channel, conn, { tables, after: position });
  conn.reply(reply(position));
}

/** One read (history or snapshot) in flight per connection and channel: a later subscribe makes it stale. */
function ticketFor(conn: Subscriber, channel: string): () => boolean {
  const ticket = {};
  const reads = pending.get(conn) ?? new Map<string, object>();
  pending.set(conn, reads);
  reads.set(channel, ticket);
  return () => reads.get(channel) === ticket && conn.subscriptions.has(channel);
}

/**
 * [edge] Resume from the stream: hold live events from now, read the missed
 * ones up to the mark taken now, send them, then the held ones after the
 * last position sent (a guard: the mark already splits them).
 */
async function fromHistory(
  deps: SubscribeDeps,
  history: History,
  conn: Subscriber,
  msg: SubscribeMessage,
  tables: TableFilter,
  subject: string | null,
  reply: (position: string, recovered?: boolean) => SubscribedMessage,
): Promise<void> {
  const { router } = deps;
  const channel = msg.channel;
  const since = msg.since!;
  router.subscribe(channel, conn, { tables, hold: true, after: since });
  const current = ticketFor(conn, channel);
  let replay: Replay;
  try {
    replay = await history.read(channel, since, history.mark());
  } catch (err) {
    deps.logger.warn({ err, channel }, 'reading missed events from the stream failed');
    replay = { recovered: false, reason: 'reading the stream failed' };
  }
  if (!conn.open || !current()) return;
  pending.get(conn)?.delete(channel);
  const held = router.release(channel, conn);
  if (held === 'overflow') return conn.overflow();
  if (!replay.recovered) {
    if (msg.snapshot) {
      router.unsubscribe(channel, conn);
      return withSnapshot(deps, conn, msg, tables, subject, (p) => reply(p, false));
    }
    // Every held event is at or before the position now: none is news after it.
    return conn.reply(reply(deps.position(), false));
  }
  conn.reply(reply(deps.position(), true));
  let last = since;
  for (const e of replay.events) {
    if (tables !== null && !tables.has(e.table)) continue;
    conn.send(e.frame);
    last = e.position;
  }
  for (const e of held ?? []) if (e.position > last) conn.send(e.frame);
}

async function withSnapshot(
  deps: SubscribeDeps,
  conn: Subscriber,
  msg: SubscribeMessage,
  tables: TableFilter,
  subject: string | null,
  reply: (position: string) => SubscribedMessage,
): Promise<void> {
  const channel = msg.channel;
  const base = deps.position();
  deps.router.subscribe(channel, conn, { tables, hold: true, after: base });
  // The client may unsubscribe (and subscribe again) while the rows are read.
  const current = ticketFor(conn, channel);
  let snapshot: Snapshot;
  try {
    const ticket = { owner: conn, subject, alive: () => conn.open && current() };
    snapshot = await deps.snapshots.read(channel, tables, msg.limit ?? DEFAULT_SNAPSHOT_LIMIT, ticket);
  } catch (err) {
    if (current()) {
      pending.get(conn)?.delete(channel);
      deps.router.unsubscribe(channel, conn);
      conn.subscriptions.delete(channel);
    }
    if (err instanceof SnapshotDropped) return; // nobody left to answer
    if (err instanceof SnapshotBusy) return conn.error('snapshot_busy', err.message, msg.id);
    if (err instanceof SnapshotUnavailable) return conn.error('snapshot_failed', err.message, msg.id);
    deps.logger.error({ err, channel }, 'snapshot read failed');
    conn.error('snapshot_failed', `reading the current rows of ${channel} failed; try again`, msg.id);
    return;
  }
  if (!conn.open) return;
  // A stale read still answers its subscribe (found by test/integration/fuzz.test.ts).
  if (!current())
    return conn.error('snapshot_failed', `unsubscribed from ${channel} before its snapshot was read`, msg.id);
  pending.get(conn)?.delete(channel);
  const held = deps.router.release(channel, conn, snapshot.visible);
  if (held === 'overflow') return conn.overflow();
  conn.reply({ ...reply(base), snapshot: snapshot.rows.length });
  snapshot.rows.forEach(({ table, row, omitted }, i) => {
    conn.send(
      JSON.stringify({
        type: 'event',
        channel,
        table,
        op: 'snapshot',
        position: snapshotPosition(base, i + 1),
        commit_time: snapshot.readAtIso,
        row,
        omitted,
      }),
    );
  });
  for (const e of held ?? []) if (!snapshot.visible(e.xid)) conn.send(e.frame);
}
