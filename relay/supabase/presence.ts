// Presence across every relay on the database (docs/supabase.md#presence).
// A tracked presence is a row of walcast.supabase_presence, written in the
// same statement as a pg_logical_emit_message carrying its presence_diff:
// every relay reads the diffs from the slot in commit order (as broadcasts,
// broadcast.ts), and a joining channel reads presence_state from the table.
// realtime-js applies diffs by phx_ref (a join it already has, a leave of
// what it never had, change nothing), so diffs committed around the state's
// read converge on the same state.
//
// The relay holding the socket renews its rows' lease every lease/3; every
// relay deletes rows past their lease and emits their leaves, so a killed
// relay's presences leave within 4/3 of the lease. A graceful close deletes
// this relay's rows at once.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { SUPABASE_MESSAGE_PREFIX } from './broadcast.ts';

export type Metas = Record<string, { metas: Record<string, unknown>[] }>;

export interface Diff {
  joins: Metas;
  leaves: Metas;
}

/** A presence diff as carried on the stream: the topic without `realtime:`. */
export interface PresenceMessage {
  topic: string;
  presence: Diff;
}

/** One presence this relay tracks. */
export interface Tracked {
  topic: string;
  key: string;
  /** The payload with its phx_ref, as presence_state and presence_diff send it. */
  meta: Record<string, unknown>;
}

/** Most tracked presences per topic, over every relay: past it, track is refused (and says so). */
export const MAX_PRESENCES_PER_TOPIC = 10_000;
/** Largest tracked payload (JSON bytes). */
export const MAX_PRESENCE_BYTES = 16 * 1024;
/** Default lease of a relay's presences (WALCAST_PRESENCE_LEASE_MS). */
export const DEFAULT_PRESENCE_LEASE_MS = 30_000;
/** How long a closing relay waits to remove its presences. */
const CLOSE_MS = 2000;
/** Expired rows deleted per statement: bounds one sweep's transaction and its messages. */
const SWEEP_BATCH = 1000;

export function encodePresence(m: PresenceMessage): string {
  return JSON.stringify(m);
}

export function decodePresence(content: Buffer): PresenceMessage | null {
  try {
    const m = JSON.parse(content.toString('utf8')) as PresenceMessage;
    const p = m?.presence;
    if (typeof m.topic !== 'string' || typeof p?.joins !== 'object' || typeof p.leaves !== 'object') return null;
    return m;
  } catch {
    return null;
  }
}

/** The diff of a (re-)track: the new meta joins, the one it replaces leaves (with phx_ref_prev, as upstream). */
export function trackDiff(next: Tracked, before: Tracked | null): Diff {
  const meta = before ? { ...next.meta, phx_ref_prev: before.meta.phx_ref } : next.meta;
  const diff: Diff = { joins: { [next.key]: { metas: [meta] } }, leaves: {} };
  if (before) diff.leaves[before.key] = { metas: [before.meta] };
  return diff;
}

export function leaveDiff(t: Tracked): Diff {
  return { joins: {}, leaves: { [t.key]: { metas: [t.meta] } } };
}

/** Does a payload fit? Returns the error text, or null. */
export function presenceTooLarge(payload: Record<string, unknown>): string | null {
  return Buffer.byteLength(JSON.stringify(payload)) > MAX_PRESENCE_BYTES
    ? `a presence payload is at most ${MAX_PRESENCE_BYTES} bytes of JSON`
    : null;
}

// Each expired (or this node's) row leaves: deleted and its leave emitted in one statement.
const EXPIRE_SQL = (where: string) => `
WITH gone AS (
  DELETE FROM walcast.supabase_presence p
  WHERE (p.topic, p.presence_ref) IN (
    SELECT topic, presence_ref FROM walcast.supabase_presence WHERE ${where}
    LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)
  RETURNING p.topic, p.key, p.meta)
SELECT count(pg_logical_emit_message(true, $1, json_build_object('topic', topic, 'presence',
  json_build_object('joins', '{}'::json, 'leaves',
    json_build_object(key, json_build_object('metas', json_build_array(meta)))))::text))::int AS n
FROM gone`;

export class PresenceStore {
  /** This relay process: its rows carry it, renewed while it lives. */
  readonly node = randomUUID();
  /** This relay's presences by phx_ref: bounded by its sockets × their channels. */
  private readonly mine = new Map<string, Tracked>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private timer?: NodeJS.Timeout;
  private closing = false;
  /** Has this relay ever written a row? If not, closing has nothing to remove. */
  private wrote = false;

  /** Where rows are written (and presence_state read, so that it is current); null: track is refused with `readOnly`. */
  private readonly pool: pg.Pool | null;

  constructor(
    private readonly db: { read: pg.Pool; write: pg.Pool | null; readOnly: string },
    readonly leaseMs: number,
    private readonly onError: (err: unknown, what: string) => void,
  ) {
    this.pool = db.write;
  }

  /** Renew this relay's lease and sweep expired rows every lease/3 (a relay that cannot write leaves that to the others). */
  start(): void {
    if (!this.pool) return;
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  /** The topic's presences as presence_state sends them (those past their lease are leaving). */
  async state(topic: string): Promise<Metas> {
    const { rows } = await (this.pool ?? this.db.read).query<{ key: string; meta: Record<string, unknown> }>(
      `SELECT key, meta FROM walcast.supabase_presence WHERE topic = $1 AND expires_at > now()
       ORDER BY presence_ref LIMIT ${MAX_PRESENCES_PER_TOPIC}`,
      [topic],
    );
    const out: Metas = {};
    for (const r of rows) (out[r.key] ??= { metas: [] }).metas.push(r.meta);
    return out;
  }

  /** Track (or re-track, replacing `before`); resolves once committed, or with why it was refused. */
  track(
    topic: string,
    key: string,
    payload: Record<string, unknown>,
    before: Tracked | null,
  ): Promise<Tracked | string> {
    const pool = this.pool;
    if (!pool) return Promise.resolve(this.db.readOnly);
    return this.run(async () => {
      if (this.closing) return 'the relay is shutting down: track again after reconnecting';
      if (!before) {
        const { rows } = await pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM walcast.supabase_presence WHERE topic = $1',
          [topic],
        );
        if (rows[0]!.n >= MAX_PRESENCES_PER_TOPIC)
          return `topic ${topic} has ${MAX_PRESENCES_PER_TOPIC} presences, the most walcast keeps per topic`;
      }
      this.wrote = true;
      const ref = randomUUID();
      const next: Tracked = { topic, key, meta: { ...payload, phx_ref: ref } };
      const message = encodePresence({ topic, presence: trackDiff(next, before) });
      await pool.query(
        `WITH gone AS (DELETE FROM walcast.supabase_presence WHERE topic = $1 AND presence_ref = $2),
         added AS (INSERT INTO walcast.supabase_presence (topic, key, presence_ref, meta, node, expires_at)
                   VALUES ($1, $3, $4, $5, $6, now() + $7 * interval '1 millisecond'))
         SELECT pg_logical_emit_message(true, $8, $9)`,
        [
          topic,
          before?.meta.phx_ref ?? null,
          key,
          ref,
          next.meta,
          this.node,
          this.leaseMs,
          SUPABASE_MESSAGE_PREFIX,
          message,
        ],
      );
      if (before) this.mine.delete(String(before.meta.phx_ref));
      this.mine.set(ref, next);
      return next;
    });
  }

  /** Untrack; its leave is emitted only if the row was still there (a sweep may have emitted it). */
  untrack(t: Tracked): Promise<void> {
    const ref = String(t.meta.phx_ref);
    this.mine.delete(ref);
    const pool = this.pool;
    if (this.closing || !pool) return Promise.resolve(); // close() deletes every row of this node
    return this.run(async () => {
      await pool.query(
        `WITH gone AS (DELETE FROM walcast.supabase_presence WHERE topic = $1 AND presence_ref = $2 RETURNING 1)
         SELECT pg_logical_emit_message(true, $3, $4) FROM gone`,
        [t.topic, ref, SUPABASE_MESSAGE_PREFIX, encodePresence({ topic: t.topic, presence: leaveDiff(t) })],
      );
    });
  }

  /**
   * At shutdown: wait for writes under way, then delete this relay's rows,
   * their leaves emitted. At most CLOSE_MS: with the database unreachable
   * the rows leave when their lease runs out instead.
   */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.timer);
    this.mine.clear();
    if (!this.wrote) return;
    const removed = Promise.allSettled([...this.inFlight]).then(() =>
      this.expire('node = $2', [this.node]).catch((err: unknown) => this.onError(err, 'remove presences')),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([removed, new Promise((r) => (timer = setTimeout(r, CLOSE_MS)))]);
    clearTimeout(timer);
  }

  private async tick(): Promise<void> {
    try {
      if (this.mine.size > 0)
        await this.pool!.query(
          `UPDATE walcast.supabase_presence SET expires_at = now() + $2 * interval '1 millisecond'
           WHERE node = $1 AND presence_ref = ANY($3)`,
          [this.node, this.leaseMs, [...this.mine.keys()]],
        );
      await this.expire('expires_at < now()', []);
    } catch (err) {
      this.onError(err, 'renew or expire presences');
    }
  }

  private async expire(where: string, params: unknown[]): Promise<void> {
    for (;;) {
      const { rows } = await this.pool!.query<{ n: number }>(EXPIRE_SQL(where), [SUPABASE_MESSAGE_PREFIX, ...params]);
      if (rows[0]!.n < SWEEP_BATCH) return;
    }
  }

  private run<T>(fn: () => Promise<T>): Promise<T> {
    const p = fn();
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }
}
