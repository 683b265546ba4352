// Reads on an edge whose DATABASE_URL is a read replica. A read (a WebSocket
// snapshot, an MQTT subscription's retained rows) must see every transaction
// the edge has already routed (those at or before the subscription's
// position are not sent again); a replica that has not yet replayed that far
// would miss rows. So, on a server in recovery, a read first waits until
// pg_last_wal_replay_lsn() has passed the commit LSN of the edge's position,
// polling, up to the snapshot timeout (then the read fails: snapshot_failed,
// or an MQTT SUBACK failure). On a primary (a read-only role) it reads at once.
import type pg from 'pg';
import { SnapshotUnavailable } from '../db/snapshot-queue.ts';
import { SnapshotReader, type Snapshot } from '../db/snapshot.ts';
import { formatLsn, parseLsn } from '../replication/lsn.ts';
import { parsePosition } from '../replication/position.ts';

const POLL_MS = 20;

/** Resolves once the database behind `pool` has replayed the edge's current position (at once on a primary). */
export function replicaCaughtUp(pool: pg.Pool, position: () => string, timeoutMs: number): () => Promise<void> {
  let primary = false; // a primary stays one; a replica may be promoted, so it is asked every time
  return async () => {
    const lsn = parsePosition(position())?.commitLsn ?? 0n;
    const deadline = Date.now() + timeoutMs;
    while (!primary) {
      const { rows } = await pool.query<{ replica: boolean; replayed: string | null }>(
        'SELECT pg_is_in_recovery() AS replica, pg_last_wal_replay_lsn()::text AS replayed',
      );
      const { replica, replayed } = rows[0]!;
      primary = !replica;
      if (primary || (replayed !== null && parseLsn(replayed) >= lsn)) return;
      if (Date.now() > deadline)
        throw new SnapshotUnavailable(
          `this edge's read replica has not replayed up to the edge's position (${formatLsn(lsn)}; replayed ${replayed ?? 'nothing'}) within WALCAST_SNAPSHOT_TIMEOUT_MS (${timeoutMs} ms): it lags its primary. Try again; if it keeps happening, check the replica's lag (pg_stat_replication on the primary)`,
        );
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };
}

/** An edge's snapshot reader class: it waits for `caughtUp` (replicaCaughtUp) before each read. */
export function edgeSnapshots(caughtUp: () => Promise<void>): typeof SnapshotReader {
  return class EdgeSnapshots extends SnapshotReader {
    protected override async readNow(
      channel: string,
      tables: ReadonlySet<string> | null,
      limit: number,
    ): Promise<Snapshot> {
      await caughtUp();
      return super.readNow(channel, tables, limit);
    }
  };
}
