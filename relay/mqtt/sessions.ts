// Persistent MQTT sessions (clean session 0, or MQTT 5 Session Expiry
// Interval > 0) in walcast.mqtt_sessions (sql/005_mqtt.sql): the
// filters and the position up to which QoS 1 deliveries were acknowledged.
// A reconnecting client gets its filters back and, from the recovery window,
// every event after that position; a channel whose events are no longer in
// the window (or a wildcard channel) gets its current rows as retained
// messages instead. Kept in the database, so a standby that takes over after
// a crash resumes the session too. Positions are written at most once per
// FLUSH_MS per session (a crash replays at most that much again: QoS 1 is
// at least once) and at disconnect.
import type pg from 'pg';
import type { Logger } from '../log.ts';

/** How often acknowledged positions of connected persistent sessions are written. */
export const FLUSH_MS = 1000;
/** Longest session expiry honoured (MQTT 5 clients may ask for "never"). */
export const MAX_EXPIRY_SECONDS = 7 * 86_400;

export interface StoredSession {
  filters: Record<string, 0 | 1>;
  resumeAfter: string | null;
}

export interface Persistent {
  readonly key: string;
  expirySeconds: number;
  /** The position to resume after; changes as QoS 1 messages are acknowledged. */
  resumeAfter(): string | null;
  filters(): Record<string, 0 | 1>;
}

export class SessionStore {
  private readonly dirty = new Set<Persistent>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** The stored session for `key` if it has not expired (an expired one is deleted). */
  async take(key: string): Promise<StoredSession | null> {
    const { rows } = await this.pool.query<{
      filters: Record<string, 0 | 1>;
      resume_after: string | null;
      expired: boolean;
    }>(
      `SELECT filters, resume_after, updated_at + make_interval(secs => expiry_seconds) < now() AS expired
         FROM walcast.mqtt_sessions WHERE session_key = $1`,
      [key],
    );
    const row = rows[0];
    if (!row) return null;
    if (row.expired) {
      await this.discard(key);
      return null;
    }
    return { filters: row.filters, resumeAfter: row.resume_after };
  }

  discard(key: string): Promise<unknown> {
    return this.pool.query('DELETE FROM walcast.mqtt_sessions WHERE session_key = $1', [key]);
  }

  /** Write the session now (CONNECT, SUBSCRIBE, UNSUBSCRIBE, disconnect). */
  async save(s: Persistent): Promise<void> {
    this.dirty.delete(s);
    await this.pool.query(
      `INSERT INTO walcast.mqtt_sessions (session_key, filters, resume_after, expiry_seconds, updated_at)
       VALUES ($1, $2, $3, $4, now())
       ON CONFLICT (session_key) DO UPDATE SET filters = EXCLUDED.filters, resume_after = EXCLUDED.resume_after,
         expiry_seconds = EXCLUDED.expiry_seconds, updated_at = now()`,
      [s.key, JSON.stringify(s.filters()), s.resumeAfter(), s.expirySeconds],
    );
  }

  /** The session's acknowledged position moved: written with the next flush. */
  touch(s: Persistent): void {
    this.dirty.add(s);
  }

  forget(s: Persistent): void {
    this.dirty.delete(s);
  }

  private async flush(): Promise<void> {
    const sessions = [...this.dirty];
    this.dirty.clear();
    if (sessions.length === 0) return;
    try {
      await this.pool.query(
        `UPDATE walcast.mqtt_sessions m SET resume_after = v.resume_after, updated_at = now()
           FROM unnest($1::text[], $2::text[]) AS v(session_key, resume_after) WHERE m.session_key = v.session_key`,
        [sessions.map((s) => s.key), sessions.map((s) => s.resumeAfter())],
      );
      await this.pool.query(
        'DELETE FROM walcast.mqtt_sessions WHERE updated_at + make_interval(secs => expiry_seconds) < now()',
      );
    } catch (err) {
      this.logger.warn({ err }, 'MQTT: writing the positions of persistent sessions failed; retried on the next flush');
      for (const s of sessions) this.dirty.add(s);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
