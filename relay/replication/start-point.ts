// Where a starting relay begins reading its slot, and how it knows when it
// has caught up with live rows: the slot's confirmed position is held back
// by the recovery window, so a restarted relay first re-reads the window
// (history) before live rows flow. /readyz reports that re-read.
import type pg from 'pg';
import type { Logger } from '../log.ts';
import { formatLsn, parseLsn, type Lsn } from './lsn.ts';
import { HEARTBEAT_PREFIX } from './messages.ts';

/**
 * Where the stream starts: the slot's confirmed position, which the window's
 * hold keeps at the window's start, so that the window is rebuilt; but at
 * most `maxBytes` of WAL before the live mark. Re-reading the window holds
 * live rows back (a busy window is millions of rows: tens of seconds), and
 * the clients that come back after a restart resume from its newest part.
 * PostgreSQL skips, without sending them, the transactions that committed
 * before the requested start.
 */
export function rebuildFrom(confirmed: Lsn, liveFrom: Lsn, maxBytes: number, logger: Logger): Lsn {
  const bound = liveFrom - BigInt(maxBytes);
  if (confirmed >= bound) return confirmed;
  logger.warn(
    { confirmed: formatLsn(confirmed), from: formatLsn(bound), skippedBytes: Number(bound - confirmed), maxBytes },
    'the recovery window holds more WAL than WALCAST_RECOVERY_REBUILD_BYTES: re-reading only its newest part; older positions get recovered:false',
  );
  return bound;
}

/**
 * Emit a heartbeat message and return its LSN: past the server's WAL
 * position at start, and sure to reach the stream (the stream delivers a
 * heartbeat's LSN once what precedes it is delivered), so the relay can
 * tell when it has re-read its window.
 */
export async function liveMark(pool: pg.Pool): Promise<Lsn> {
  const { rows } = await pool.query<{ lsn: string }>(
    'SELECT pg_logical_emit_message(false, $1::text, $2::text)::text AS lsn',
    [HEARTBEAT_PREFIX, ''],
  );
  return parseLsn(rows[0]!.lsn);
}
