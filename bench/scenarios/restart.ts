// Scenario 4, restart: a relay restarted during a busy period. Rows are
// inserted at a steady rate (full: 5,000 rows/s for 60 s, about 200 MB of
// WAL, all inside the 300 s recovery window) through a relay; it stops
// gracefully (SIGTERM), the load going on, and a new relay process starts on
// the same slot while, besides, a row is inserted every 50 ms on a live
// channel. Measured from the new process's spawn: when it listens,
// when /readyz first says ready, when the first live row reaches a client
// subscribed as soon as it listens, how long that row waited, and whether a
// client that resumes from its last position before the restart recovered.
//
// Three settings, run one after the other in the same run (so on the same
// machine load): without the temporary slot (WALCAST_LIVE_SLOT_BYTES=0: the
// whole window re-read before live rows flow, as before issue 11 item 6),
// with it and the re-read flat out (WALCAST_REBUILD_PERCENT=100), and with
// it and the re-read paced (the default: live rows from a temporary slot
// while the window is re-read beside it, then a hand-over). Also measured:
// when /readyz stops showing the re-read (the window rebuilt, and with the
// temporary slot, handed over), and every live row's wait while the window
// was re-read and for 3 s after. The machine is shared: compare the rows of
// one run.
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { progress, type Row } from '../lib/report.ts';
import { spawnWalcast } from '../lib/targets.ts';
import type { BenchDatabase } from '../lib/env.ts';

export interface RestartPlan {
  /** Steady load before (and during) the restart. */
  rowsPerSecond: number;
  seconds: number;
  /** Settings compared: label → the relay's environment. */
  variants: { label: string; env: Record<string, string> }[];
}

const OFF = { label: 'no temporary slot (before: window re-read first)', env: { WALCAST_LIVE_SLOT_BYTES: '0' } };
const FLAT_OUT = { WALCAST_REBUILD_PERCENT: '100' };
export const RESTART_FULL: RestartPlan = {
  rowsPerSecond: 5000,
  seconds: 60,
  variants: [
    OFF,
    { label: 'temporary slot, re-read not paced', env: FLAT_OUT },
    { label: 'temporary slot, re-read paced (the default)', env: {} },
  ],
};
// The quick plan's window is a few MB, below the default threshold: 1 MiB.
export const RESTART_QUICK: RestartPlan = {
  rowsPerSecond: 2000,
  seconds: 5,
  variants: [
    OFF,
    {
      label: 'temporary slot (1 MiB threshold), not paced',
      env: { WALCAST_LIVE_SLOT_BYTES: String(1024 ** 2), ...FLAT_OUT },
    },
    { label: 'temporary slot (1 MiB threshold), paced', env: { WALCAST_LIVE_SLOT_BYTES: String(1024 ** 2) } },
  ],
};

/** The load: every 100 ms the rows due, as one INSERT, on 100 channels. */
function startLoad(db: BenchDatabase, rowsPerSecond: number): { rows: () => number; stop: () => Promise<void> } {
  let running = true;
  let rows = 0;
  const started = Date.now();
  const done = (async () => {
    while (running) {
      const due = Math.floor(((Date.now() - started) / 1000) * rowsPerSecond) - rows;
      if (due > 0) {
        await db.pool.query(
          `insert into chat_messages (channel_id, sender, body) select 'burst-' || (g % 100), 'bench', repeat('x', 200) from generate_series($1::int, $2::int) g`,
          [rows, rows + due - 1],
        );
        rows += due;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    rows: () => rows,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

export async function runRestart(db: BenchDatabase, plan: RestartPlan): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  for (const v of plan.variants) rows.push(await oneRestart(db, plan, v));
  const before = rows[0];
  const after = rows.at(-1);
  const notes = [
    'Times in ms from the new relay process\'s spawn. "first live row" is when the first row inserted after the spawn ' +
      'reached a client subscribed as soon as the relay listened; "its wait" is that row\'s insert-to-receipt latency. ' +
      'The machine is shared with other work: compare the rows of one run.',
  ];
  if (
    before &&
    after &&
    typeof before['first live row ms'] === 'number' &&
    typeof after['first live row ms'] === 'number'
  ) {
    notes.push(
      `first live row, before ÷ after: ${(before['first live row ms'] / after['first live row ms']).toFixed(1)}×`,
    );
  }
  return { rows, notes };
}

async function oneRestart(db: BenchDatabase, plan: RestartPlan, v: RestartPlan['variants'][number]): Promise<Row> {
  const slot = `bench_restart_${randomBytes(3).toString('hex')}`;
  const env = v.env;
  const first = await spawnWalcast(db.url, slot, env);
  let second: Awaited<ReturnType<typeof spawnWalcast>> | undefined;
  let inserting = false;
  let inserter: Promise<void> | undefined;
  const load = startLoad(db, plan.rowsPerSecond);
  try {
    // A client on one of the load's channels: its last position is where it resumes after the restart.
    const before = await Client.open(first.url);
    await before.subscribe('burst-7');
    progress(`restart (${v.label}): ${plan.rowsPerSecond} rows/s for ${plan.seconds} s through the first relay`);
    await new Promise((r) => setTimeout(r, plan.seconds * 1000));
    const since = before.lastPosition('burst-7');
    const rowsBefore = load.rows();
    before.close();
    await first.stop('SIGTERM');
    const { rows: wal } = await db.pool.query<{ held: string; decode: string }>(
      `select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text as held,
              pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text as decode
         from pg_replication_slots where slot_name = $1`,
      [slot],
    );

    const t0 = performance.now();
    inserting = true;
    const inserted = new Map<string, number>();
    inserter = (async () => {
      for (let n = 0; inserting; n++) {
        inserted.set(String(n), performance.now());
        await db.pool.query(`insert into chat_messages (channel_id, sender, body) values ('live', 'bench', $1)`, [
          String(n),
        ]);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    second = await spawnWalcast(db.url, slot, env);
    const listening = performance.now() - t0;
    const httpUrl = second.url.replace(/^ws/, 'http').replace(/\/ws$/, '');
    let ready: number | undefined;
    let rebuilt: number | undefined;
    const readiness = (async () => {
      while (rebuilt === undefined && performance.now() - t0 < 600_000) {
        const body = await fetch(`${httpUrl}/readyz`).then(
          async (r) => (r.status === 200 ? ((await r.json()) as { rebuilding?: unknown }) : undefined),
          () => undefined,
        );
        if (body) ready ??= performance.now() - t0;
        if (body && body.rebuilding === undefined) rebuilt = performance.now() - t0;
        else await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const live = await Client.open(second.url);
    const resumer = await Client.open(second.url);
    const [, resumed] = await Promise.all([live.subscribe('live'), resumer.subscribe('burst-7', since)]);
    const firstLive = await live.waitFor((m) => m.type === 'event' && m.channel === 'live', 600_000);
    const firstAt = performance.now() - t0;
    const waited = performance.now() - (inserted.get(String(firstLive.row.body)) ?? t0);
    await readiness;
    // A few more seconds of live rows after the window is rebuilt: the same rows' waits without a re-read beside them.
    await new Promise((r) => setTimeout(r, 3000));
    inserting = false;
    await inserter;
    const waits = liveWaits(live, inserted, t0, rebuilt);
    live.close();
    resumer.close();
    const row: Row = {
      setting: v.label,
      'rows before the restart': rowsBefore,
      'WAL held MB': Math.round(Number(wal[0]?.held ?? 0) / 1e6),
      'WAL to decode MB': Math.round(Number(wal[0]?.decode ?? 0) / 1e6),
      'listening ms': Math.round(listening),
      'ready ms': ready === undefined ? null : Math.round(ready),
      'first live row ms': Math.round(firstAt),
      'its wait ms': Math.round(waited),
      'window rebuilt ms': rebuilt === undefined ? null : Math.round(rebuilt),
      'live rows during the re-read': waits.during.length,
      'their p50 / p99 / max wait ms': spread(waits.during),
      'after it: p50 / p99 / max ms': spread(waits.after),
      'resume from before the restart': resumed.recovered === true ? 'recovered' : 'recovered:false',
    };
    progress(`restart (${v.label}): ${JSON.stringify(row)}`);
    return row;
  } finally {
    inserting = false;
    await inserter;
    await load.stop();
    await second?.stop('SIGTERM');
    await db.pool
      .query('select pg_drop_replication_slot($1) from pg_replication_slots where slot_name = $1', [slot])
      .catch(() => {});
  }
}

/**
 * Each live row's insert-to-receipt wait (ms), split by whether it was
 * received while the window was still being re-read (before `rebuilt`, ms
 * from t0) or after: what a re-read beside live rows costs them.
 */
function liveWaits(
  client: Client,
  inserted: Map<string, number>,
  t0: number,
  rebuilt: number | undefined,
): { during: number[]; after: number[] } {
  const during: number[] = [];
  const after: number[] = [];
  for (const { msg, at } of client.received()) {
    if (msg.type !== 'event' || msg.channel !== 'live') continue;
    const sent = inserted.get(String(msg.row.body));
    if (sent === undefined) continue;
    (rebuilt === undefined || at - t0 < rebuilt ? during : after).push(at - sent);
  }
  return { during, after };
}

/** "p50 / p99 / max" of `ms`, or null when empty. */
function spread(ms: number[]): string | null {
  if (ms.length === 0) return null;
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return [at(0.5), at(0.99), sorted.at(-1)!].map((v) => Math.round(v)).join(' / ');
}

interface Msg {
  type: string;
  id?: string;
  channel?: string;
  position?: string;
  recovered?: boolean;
  row: Record<string, unknown>;
}

/** A raw WebSocket client that keeps what it received. */
class Client {
  private readonly got: Msg[] = [];
  private readonly times: number[] = [];
  private wake: () => void = () => {};

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.times.push(performance.now());
      this.got.push(JSON.parse(d.toString()) as Msg);
      this.wake();
    });
  }

  /** Every message with its receipt time (performance.now()). */
  received(): { msg: Msg; at: number }[] {
    return this.got.map((msg, i) => ({ msg, at: this.times[i]! }));
  }

  static async open(url: string): Promise<Client> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return new Client(ws);
  }

  async subscribe(channel: string, since?: string): Promise<Msg> {
    const id = `${channel}-${this.got.length}`;
    this.ws.send(
      JSON.stringify(since ? { type: 'subscribe', id, channel, since } : { type: 'subscribe', id, channel }),
    );
    return this.waitFor((m) => m.id === id, 600_000);
  }

  lastPosition(channel: string): string | undefined {
    return this.got.filter((m) => m.type === 'event' && m.channel === channel).at(-1)?.position;
  }

  async waitFor(pick: (m: Msg) => boolean, timeoutMs: number): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.got.find(pick);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`restart: timed out after ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 100);
      });
    }
  }

  close(): void {
    this.ws.close();
  }
}
