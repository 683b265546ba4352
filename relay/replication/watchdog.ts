// The slot watchdog: watches the slot, not only the socket. Every interval it
//   - emits a heartbeat (a non-transactional logical message, prefix
//     HEARTBEAT_PREFIX, messages.ts) so the slot's position moves on even when the
//     published tables are idle; the stream confirms the heartbeat's LSN once
//     nothing is pending (stream.ts);
//   - reads the slot (pg_replication_slots) and the server's WAL position,
//     and computes the replication lag: WAL written that walcast has not yet
//     dispatched, in bytes and in seconds;
//   - logs when the lag crosses the warning thresholds (readiness follows);
//   - asks for the slot to be recreated when wal_status turns 'unreserved'
//     (PostgreSQL will remove WAL the slot still needs) or 'lost'.
//
// Lag is computed by lag.ts from the samples each round takes.
import type pg from 'pg';
import type { Logger } from '../log.ts';
import { formatLsn, parseLsn, type Lsn } from './lsn.ts';
import { LagTracker } from './lag.ts';
import { HEARTBEAT_PREFIX } from './messages.ts';

export type WalStatus = 'reserved' | 'extended' | 'unreserved' | 'lost' | 'missing' | 'unknown';
export const WAL_STATUSES: readonly WalStatus[] = ['reserved', 'extended', 'unreserved', 'lost', 'missing', 'unknown'];

export interface SlotStatus {
  walStatus: WalStatus;
  active: boolean;
  currentLsn: Lsn;
  confirmedLsn: Lsn;
  restartLsn: Lsn;
  /** current WAL − what walcast dispatched */
  lagBytes: number;
  lagSeconds: number;
  /** current WAL − the slot's confirmed_flush_lsn (includes the recovery window's hold) */
  unconfirmedBytes: number;
  /** current WAL − the slot's restart_lsn: WAL the server keeps for the slot */
  retainedBytes: number;
  /** pg_replication_slots.safe_wal_size: bytes that can still be written before the slot is in danger; null: unlimited */
  safeWalSize: number | null;
}

export interface WatchdogOptions {
  pool: pg.Pool;
  slot: string;
  logger: Logger;
  intervalMs: number;
  lagWarnSeconds: number;
  lagWarnBytes: number;
  /** Highest LSN whose events were handed to the sockets. */
  delivered: () => Lsn;
  streaming: () => boolean;
  /** wal_status turned unreserved or lost: recreate the slot (the stream does, with a new epoch). */
  onSlotInvalid: (reason: string) => void;
}

interface SlotQueryRow {
  current: string;
  wal_status: string | null;
  active: boolean | null;
  confirmed: string | null;
  restart: string | null;
  safe_wal_size: string | null;
}

export class SlotWatchdog {
  status: SlotStatus | undefined;
  heartbeats = 0;
  lastHeartbeatLsn: Lsn = 0n;
  checkErrors = 0;
  /** Lag above a threshold: the reason, else undefined. */
  lagging: string | undefined;
  private readonly lag = new LagTracker();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private invalidReported = false;

  constructor(private readonly opts: WatchdogOptions) {}

  start(): void {
    this.timer ??= setInterval(() => void this.check(), this.opts.intervalMs);
    this.timer.unref();
    void this.check();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One round: heartbeat, read the slot, update lag and warnings. Never throws. */
  check(): Promise<void> {
    this.running ??= this.round()
      .catch((err: unknown) => {
        this.checkErrors++;
        this.opts.logger.warn(
          { err, slot: this.opts.slot },
          'slot watchdog check failed; retrying at the next interval',
        );
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async round(): Promise<void> {
    const { pool, slot } = this.opts;
    if (this.opts.streaming()) {
      const { rows } = await pool.query<{ lsn: string }>(
        'SELECT pg_logical_emit_message(false, $1::text, $2::text)::text AS lsn',
        [HEARTBEAT_PREFIX, ''],
      );
      this.lastHeartbeatLsn = parseLsn(rows[0]!.lsn);
      this.heartbeats++;
    }
    const { rows } = await pool.query<SlotQueryRow>(
      `SELECT pg_current_wal_lsn()::text AS current, s.wal_status, s.active,
              s.confirmed_flush_lsn::text AS confirmed, s.restart_lsn::text AS restart, s.safe_wal_size::text AS safe_wal_size
         FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`,
      [slot],
    );
    this.update(rows[0]!, Date.now());
  }

  private update(row: SlotQueryRow, now: number): void {
    const current = parseLsn(row.current);
    const lag = this.lag.observe(now, current, this.opts.delivered());
    const confirmed = row.confirmed ? parseLsn(row.confirmed) : 0n;
    const restart = row.restart ? parseLsn(row.restart) : 0n;
    const walStatus = row.wal_status === null && row.active === null ? 'missing' : toWalStatus(row.wal_status);
    this.status = {
      walStatus,
      active: row.active ?? false,
      currentLsn: current,
      confirmedLsn: confirmed,
      restartLsn: restart,
      lagBytes: lag.bytes,
      lagSeconds: lag.seconds,
      unconfirmedBytes: confirmed && current > confirmed ? Number(current - confirmed) : 0,
      retainedBytes: restart && current > restart ? Number(current - restart) : 0,
      safeWalSize: row.safe_wal_size === null ? null : Number(row.safe_wal_size),
    };
    this.checkLag(this.status);
    this.checkWalStatus(this.status);
  }

  private checkLag(s: SlotStatus): void {
    const { lagWarnBytes, lagWarnSeconds, logger, slot } = this.opts;
    const reason =
      s.lagBytes > lagWarnBytes
        ? `replication lag ${s.lagBytes} bytes is above WALCAST_LAG_WARN_BYTES (${lagWarnBytes})`
        : s.lagSeconds > lagWarnSeconds
          ? `replication lag ${s.lagSeconds.toFixed(1)} s is above WALCAST_LAG_WARN_SECONDS (${lagWarnSeconds})`
          : undefined;
    if (reason && !this.lagging) {
      logger.warn({ slot, lagBytes: s.lagBytes, lagSeconds: s.lagSeconds, lsn: formatLsn(s.currentLsn) }, reason);
    } else if (!reason && this.lagging) {
      logger.info(
        { slot, lagBytes: s.lagBytes, lagSeconds: s.lagSeconds },
        'replication lag back under the thresholds',
      );
    }
    this.lagging = reason;
  }

  private checkWalStatus(s: SlotStatus): void {
    if (s.walStatus !== 'unreserved' && s.walStatus !== 'lost') {
      this.invalidReported = false;
      return;
    }
    if (this.invalidReported) return;
    this.invalidReported = true;
    const reason = `wal_status of slot ${this.opts.slot} is '${s.walStatus}' (it retains ${s.retainedBytes} bytes of WAL, over max_slot_wal_keep_size)`;
    this.opts.logger.error(
      { slot: this.opts.slot, walStatus: s.walStatus, retainedBytes: s.retainedBytes },
      `${reason}: recreating the slot`,
    );
    this.opts.onSlotInvalid(reason);
  }
}

function toWalStatus(v: string | null): WalStatus {
  return (WAL_STATUSES as readonly string[]).includes(v ?? '') ? (v as WalStatus) : 'unknown';
}
