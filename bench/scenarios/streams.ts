// Scenario "streams": the JetStream sink and webhooks.
//  - walcast drains a backlog (a fresh slot, as in ingest) into JetStream,
//    against (a) a plain async JetStream publisher of the same number of
//    pre-built messages, the ceiling of this NATS server here (target ≥ 0.8×);
//  - live: while a procedure inserts as fast as it can, walcast's sink vs (b)
//    postgres.js sql.subscribe → publish (target ≥ 1×; it has no exactly-once);
//  - latency from commit to stored in the stream (JetStream's own timestamp)
//    at a moderate rate, p50/p99;
//  - webhooks: a backlog drained to a local receiver, events/s.
import { createServer } from 'node:http';
import { connect, headers } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { PubAcks } from '../../relay/sinks/pub-acks.ts';
import { startRelay, type Relay } from '../../relay/relay.ts';
import { Writable } from 'node:stream';
import { createLogger, silentLogger, type Logger } from '../../relay/log.ts';
import { relayConfig } from '../../test/helpers/relay.ts';
import { readStream, startNatsServer, type NatsServer } from '../../test/helpers/nats.ts';
import { PUBLICATION, dropSlot, type BenchDatabase } from '../lib/env.ts';
import { progress, type Row } from '../lib/report.ts';
import { startPgjsPipeline } from '../alternatives/pgjs-jetstream.ts';

export interface StreamsPlan {
  cases: { transactions: number; rowsPerTransaction: number }[];
  latencyRows: number;
  webhookRows: number;
}
export const STREAMS_FULL: StreamsPlan = {
  cases: [
    { transactions: 50_000, rowsPerTransaction: 1 },
    { transactions: 500, rowsPerTransaction: 100 },
  ],
  latencyRows: 5000,
  webhookRows: 50_000,
};
export const STREAMS_QUICK: StreamsPlan = {
  cases: [
    { transactions: 2000, rowsPerTransaction: 1 },
    { transactions: 20, rowsPerTransaction: 100 },
  ],
  latencyRows: 500,
  webhookRows: 2000,
};

const BACKLOG = `
CREATE OR REPLACE PROCEDURE bench_stream_backlog(txns int, rows_per int, pause float8) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..txns LOOP
    INSERT INTO chat_messages (channel_id, sender, body)
      SELECT 'stream-' || (i % 100), 'bench', repeat('x', 64) FROM generate_series(1, rows_per);
    COMMIT;
    IF pause > 0 THEN PERFORM pg_sleep(pause); END IF;
  END LOOP;
END $$`;

export async function runStreams(db: BenchDatabase, plan: StreamsPlan): Promise<{ rows: Row[]; notes: string[] }> {
  await db.pool.query(BACKLOG);
  const nats = await startNatsServer();
  try {
    const rows: Row[] = [];
    for (const c of plan.cases) rows.push(await runCase(db, nats, c));
    const latency = await measureLatency(db, nats, plan.latencyRows);
    const hooks = await webhookThroughput(db, plan.webhookRows);
    return {
      rows,
      notes: [
        `Latency, commit → stored in the stream (JetStream's timestamp), ${plan.latencyRows.toLocaleString('en-US')} single-row transactions at about 400/s (2 ms apart): p50 ${latency.p50} ms, p99 ${latency.p99} ms.`,
        `Webhooks: a backlog of ${plan.webhookRows.toLocaleString('en-US')} single-row transactions to a local receiver, batches of up to 100 events: ${hooks.toLocaleString('en-US')} events/s (target ≥ 10,000).`,
      ],
    };
  } finally {
    await nats.stop();
  }
}

async function runCase(db: BenchDatabase, nats: NatsServer, c: StreamsPlan['cases'][number]): Promise<Row> {
  const total = c.transactions * c.rowsPerTransaction;
  const label = `${c.transactions.toLocaleString('en-US')} × ${c.rowsPerTransaction}-row txns`;
  progress(`streams: walcast draining a backlog of ${label} into JetStream`);
  const slot = `bench_streams_${process.pid}`;
  await db.pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  await db.pool.query('CALL bench_stream_backlog($1, $2, 0)', [c.transactions, c.rowsPerTransaction]);
  const clock = streamingClock();
  const drain = await timed(
    nats,
    () => relayWithSink(db, nats, slot, clock.logger),
    async () => {},
    (r) => r.internals.sinks.jetstream!.counters.published >= total,
    (r) => r.stop(),
    clock.at,
  );
  await dropSlot(db.pool, slot);
  // The same backlog without the sink: how fast this machine's replication read itself is.
  progress('streams: the same backlog drained with no sink');
  const bare = await rereadBacklog(db, nats, c.transactions, c.rowsPerTransaction);
  progress('streams: plain async JetStream publisher of the same messages');
  const raw = await rawPublisher(nats, total);
  progress('streams: live, walcast while a procedure inserts');
  const insert = async () =>
    void db.pool.query('CALL bench_stream_backlog($1, $2, 0)', [c.transactions, c.rowsPerTransaction]);
  const live = await timed(
    nats,
    async () => {
      const r = await relayWithSink(db, nats, `bench_streams_live_${process.pid}`);
      await waitUntil(() => r.internals.stream.state === 'streaming');
      return r;
    },
    insert,
    (r) => r.internals.sinks.jetstream!.counters.published >= total,
    async (r) => {
      await r.stop();
      await dropSlot(db.pool, `bench_streams_live_${process.pid}`);
    },
  );
  progress('streams: live, postgres.js sql.subscribe → JetStream');
  const pgjs = await timed(
    nats,
    () => startPgjsPipeline(db.url, nats.url, PUBLICATION),
    insert,
    (p) => p.acked() >= total,
    (p) => p.stop(),
  );
  await db.pool.query('TRUNCATE chat_messages');
  return {
    backlog: label,
    'drain, no sink rows/s': rate(total, bare),
    'walcast drain rows/s': rate(total, drain),
    'raw publisher rows/s': rate(total, raw),
    'ratio (≥0.8)': Number((raw / drain).toFixed(2)),
    'walcast live rows/s': rate(total, live),
    'postgres.js live rows/s': rate(total, pgjs),
    'ratio (≥1)': Number((pgjs / live).toFixed(2)),
  };
}

/** Seconds for a relay with no sink to dispatch the same backlog again (a slot created at its start, the rows inserted again). */
async function rereadBacklog(
  db: BenchDatabase,
  nats: NatsServer,
  transactions: number,
  rowsPer: number,
): Promise<number> {
  const slot = `bench_streams_bare_${process.pid}`;
  await db.pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  await db.pool.query('CALL bench_stream_backlog($1, $2, 0)', [transactions, rowsPer]);
  const clock = streamingClock();
  const seconds = await timed(
    nats,
    () => startRelay(relayConfig(db.url, { slot, ttlSchedule: '0 0 1 1 *' }), clock.logger),
    async () => {},
    (r) => r.internals.dispatcher.counters.transactions >= transactions,
    (r) => r.stop(),
    clock.at,
  );
  await dropSlot(db.pool, slot);
  return seconds;
}

function rate(n: number, seconds: number): number {
  return Math.round(n / seconds);
}

/**
 * Seconds from go() (after start(): set-up is not timed) until done(), with a
 * fresh `walcast` stream; or from `from()` when given: a relay draining a
 * backlog starts reading it inside start(), so its clock starts there.
 */
async function timed<T>(
  nats: NatsServer,
  start: () => Promise<T>,
  go: () => Promise<void>,
  done: (t: T) => boolean,
  stop: (t: T) => Promise<void>,
  from?: () => number | undefined,
): Promise<number> {
  await resetStream(nats);
  const it = await start();
  const started = performance.now();
  await go();
  await waitUntil(() => done(it));
  const seconds = (performance.now() - (from?.() ?? started)) / 1000;
  await stop(it);
  return Number(seconds.toFixed(3));
}

async function waitUntil(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 2));
}

async function relayWithSink(db: BenchDatabase, nats: NatsServer, slot: string, logger = silentLogger): Promise<Relay> {
  return startRelay(relayConfig(db.url, { slot, ttlSchedule: '0 0 1 1 *', natsUrl: nats.url }), logger);
}

/**
 * A relay logger that notes when its replication stream started (the log line
 * "replication streaming"): the start of a backlog drain. Sinks are ready by
 * then (relay.ts starts them first), and the rest of the relay's set-up is not
 * timed; until this clock, the drain was timed from startRelay's return, by
 * which a small backlog was already partly or wholly drained.
 */
function streamingClock(): { logger: Logger; at: () => number | undefined } {
  let at: number | undefined;
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (at === undefined && chunk.includes('"msg":"replication streaming"')) at = performance.now();
      done();
    },
  });
  return { logger: createLogger('info', out), at: () => at };
}

async function resetStream(nats: NatsServer): Promise<void> {
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete('walcast').catch(() => {});
  await jsm.streams.add({ name: 'walcast', subjects: ['walcast.>'], duplicate_window: 120e9 });
  await nc.close();
}

/**
 * Publishes `n` pre-built walcast-like messages with the sink's window (2,048
 * in flight), acknowledgements matched on one inbox as the sink does
 * (relay/sinks/pub-acks.ts): the ceiling of this NATS server from Node.
 */
async function rawPublisher(nats: NatsServer, n: number): Promise<number> {
  const payload = Buffer.from(
    JSON.stringify({
      type: 'event',
      channel: 'stream-1',
      table: 'chat_messages',
      op: 'insert',
      position: '0000000001801F28-00000001-3f9c2a1b',
      commit_time: new Date().toISOString(),
      row: {
        id: '1',
        channel_id: 'stream-1',
        sender: 'bench',
        body: 'x'.repeat(64),
        created_at: new Date().toISOString(),
      },
    }),
  );
  const messages = Array.from({ length: n }, (_, i) => {
    const h = headers();
    h.set('Nats-Msg-Id', `raw-${i}`);
    return { subject: `walcast.chat_messages.stream-${i % 100}`, headers: h };
  });
  await resetStream(nats);
  const nc = await connect({ servers: nats.url });
  let next = 0;
  let done = 0;
  let finish: (err?: Error) => void = () => {};
  const finished = new Promise<void>((resolve, reject) => (finish = (err) => (err ? reject(err) : resolve())));
  const acks: PubAcks<number> = new PubAcks<number>(nc, 5000, {
    acked: () => (++done === n ? finish() : pump()),
    failed: (err) => finish(err),
  });
  const pump = () => {
    while (next < n && acks.size < 2048) {
      const m = messages[next]!;
      acks.publish(m.subject, payload, m.headers, next++);
    }
  };
  const t0 = performance.now();
  pump();
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  acks.close();
  await nc.close();
  return Number(seconds.toFixed(3));
}

async function measureLatency(
  db: BenchDatabase,
  nats: NatsServer,
  rows: number,
): Promise<{ p50: number; p99: number }> {
  progress(`streams: latency at a moderate rate (${rows} rows)`);
  await resetStream(nats);
  const slot = `bench_streams_lat_${process.pid}`;
  const relay = await relayWithSink(db, nats, slot);
  await waitUntil(() => relay.internals.stream.state === 'streaming');
  await db.pool.query('CALL bench_stream_backlog($1, 1, 0.002)', [rows]);
  await waitUntil(() => relay.internals.sinks.jetstream!.counters.published >= rows);
  await relay.stop();
  await dropSlot(db.pool, slot);
  await db.pool.query('TRUNCATE chat_messages');
  const stored = await readStream(nats.url, 'walcast');
  const ms = stored.map((m) => m.storedMs - Date.parse(String(m.event.commit_time))).sort((a, b) => a - b);
  const pick = (q: number) => Number(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!.toFixed(1));
  return { p50: pick(0.5), p99: pick(0.99) };
}

async function webhookThroughput(db: BenchDatabase, rows: number): Promise<number> {
  progress(`streams: webhooks, a backlog of ${rows} rows to a local receiver`);
  let events = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      events += (JSON.parse(body) as { events: unknown[] }).events.length;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  const slot = `bench_hooks_${process.pid}`;
  await db.pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  // The webhook's cursor: the slot's start, so the whole backlog is its.
  const {
    rows: [start],
  } = await db.pool.query<{ lsn: string }>(
    `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const [hi, lo] = start!.lsn.split('/').map((h) => parseInt(h, 16).toString(16).toUpperCase().padStart(8, '0'));
  await db.pool.query(`select walcast.add_webhook('bench', $1, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')`, [url]);
  await db.pool.query(`update walcast.webhooks set cursor = $1 where name = 'bench'`, [`${hi}${lo}-00000000-0`]);
  await db.pool.query('CALL bench_stream_backlog($1, 1, 0)', [rows]);
  const relay = await startRelay(relayConfig(db.url, { slot, ttlSchedule: '0 0 1 1 *' }), silentLogger);
  const t0 = performance.now();
  await waitUntil(() => events >= rows);
  const seconds = (performance.now() - t0) / 1000;
  await relay.stop();
  await db.pool.query(`select walcast.remove_webhook('bench')`);
  await dropSlot(db.pool, slot);
  await db.pool.query('TRUNCATE chat_messages');
  server.close();
  return Math.round(rows / seconds);
}
