// Scenario 1, ingest: a backlog of committed transactions waits in two
// fresh slots; walcast (the relay's stream → decoder → dispatcher path, in
// this process) and pg_recvlogical (pgoutput, same publication, to
// /dev/null) each drain one. The ratio is pg_recvlogical's time over
// walcast's: 1.0 means as fast as PostgreSQL's own client.
import { spawn } from 'node:child_process';
import { startRelay } from '../../relay/relay.ts';
import { silentLogger } from '../../relay/log.ts';
import { relayConfig } from '../../test/helpers/relay.ts';
import { PUBLICATION, currentLsn, dropSlot, pgRecvlogical, type BenchDatabase } from '../lib/env.ts';
import { progress, type Row } from '../lib/report.ts';

export interface IngestCase {
  transactions: number;
  rowsPerTransaction: number;
}

export const INGEST_FULL: IngestCase[] = [
  { transactions: 200_000, rowsPerTransaction: 1 },
  { transactions: 2_000, rowsPerTransaction: 100 },
];
export const INGEST_QUICK: IngestCase[] = [
  { transactions: 10_000, rowsPerTransaction: 1 },
  { transactions: 100, rowsPerTransaction: 100 },
];

const BACKLOG_PROCEDURE = `
CREATE OR REPLACE PROCEDURE bench_backlog(txns int, rows_per int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..txns LOOP
    INSERT INTO chat_messages (channel_id, sender, body)
      SELECT 'ingest-' || (i % 100), 'bench', repeat('x', 64) FROM generate_series(1, rows_per);
    COMMIT;
  END LOOP;
END $$`;

export async function runIngest(db: BenchDatabase, cases: IngestCase[]): Promise<Row[]> {
  await db.pool.query(BACKLOG_PROCEDURE);
  const rows: Row[] = [];
  for (const c of cases) rows.push(await runCase(db, c));
  return rows;
}

async function runCase(db: BenchDatabase, c: IngestCase): Promise<Row> {
  const label = `${c.transactions.toLocaleString('en-US')} × ${c.rowsPerTransaction}-row txns`;
  // Each drains twice, in the order recvlogical, walcast, walcast, recvlogical
  // (a shared machine's noise and any warm-cache advantage fall on both); the
  // best of each pair is reported.
  const order = ['recv', 'walcast', 'walcast', 'recv'] as const;
  const slots = order.map((who, i) => `bench_ingest_${who}_${i}_${process.pid}`);
  for (const s of slots) await db.pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [s]);
  progress(`ingest: writing a backlog of ${label}`);
  await db.pool.query('CALL bench_backlog($1, $2)', [c.transactions, c.rowsPerTransaction]);
  const endLsn = await currentLsn(db.pool);
  const rowsTotal = c.transactions * c.rowsPerTransaction;
  const recvTimes: number[] = [];
  const walcastRuns: { seconds: number; cpu: number }[] = [];
  for (let i = 0; i < order.length; i++) {
    progress(
      `ingest: ${order[i] === 'recv' ? 'pg_recvlogical' : 'walcast'} draining ${label} (${i + 1}/${order.length})`,
    );
    if (order[i] === 'recv') {
      const t = await drainWithRecvlogical(db.url, slots[i]!, endLsn);
      if (t !== undefined) recvTimes.push(t);
    } else {
      walcastRuns.push(await drainWithWalcast(db.url, slots[i]!, c.transactions, rowsTotal));
    }
    await dropSlot(db.pool, slots[i]!);
  }
  await db.pool.query('TRUNCATE chat_messages');
  const walcast = walcastRuns.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  const recv = recvTimes.length ? Math.min(...recvTimes) : undefined;
  return {
    backlog: label,
    'walcast s': walcast.seconds,
    'walcast txn/s': Math.round(c.transactions / walcast.seconds),
    'walcast rows/s': Math.round(rowsTotal / walcast.seconds),
    'walcast CPU s': walcast.cpu,
    'pg_recvlogical s': recv ?? null,
    'pg_recvlogical txn/s': recv ? Math.round(c.transactions / recv) : null,
    'ratio (≥0.8 / ≥0.9)': recv ? Number((recv / walcast.seconds).toFixed(2)) : null,
    'all runs s (w, w / r, r)': `${walcastRuns.map((r) => r.seconds).join(', ')} / ${recvTimes.join(', ')}`,
  };
}

/** Seconds from starting the relay's stream until every backlog commit was dispatched. */
async function drainWithWalcast(
  url: string,
  slot: string,
  transactions: number,
  rows: number,
): Promise<{ seconds: number; cpu: number }> {
  const cpu0 = process.cpuUsage();
  // From before the start, like pg_recvlogical's time (which includes its
  // process start and connection): a small backlog can be drained while
  // startRelay is still returning, and a clock started after it read 0 s.
  const t0 = performance.now();
  const relay = await startRelay(relayConfig(url, { slot, ttlSchedule: '0 0 1 1 *' }), silentLogger);
  const counters = relay.internals.dispatcher.counters;
  while (counters.transactions < transactions) await new Promise((r) => setTimeout(r, 1));
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu0);
  await relay.stop();
  if (counters.rows < rows) throw new Error(`walcast handled ${counters.rows} rows of ${rows}`);
  return { seconds: Number(seconds.toFixed(3)), cpu: Number(((used.user + used.system) / 1e6).toFixed(2)) };
}

async function drainWithRecvlogical(url: string, slot: string, endLsn: string): Promise<number | undefined> {
  const bin = pgRecvlogical();
  if (!bin) {
    progress('ingest: pg_recvlogical not found; skipped');
    return undefined;
  }
  const args = [
    '-d',
    url,
    '-S',
    slot,
    '--start',
    '--no-loop',
    '-E',
    endLsn,
    '-f',
    '/dev/null',
    '-o',
    'proto_version=1',
    '-o',
    `publication_names=${PUBLICATION}`,
  ];
  const t0 = performance.now();
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`pg_recvlogical exited ${code}: ${err}`);
  return Number(seconds.toFixed(3));
}
