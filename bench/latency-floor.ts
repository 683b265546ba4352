// `npx tsx bench/latency-floor.ts [rows/s] [seconds]`: the latency floor of
// anything that reads PostgreSQL's changes by logical replication, on this
// machine. A bare pgoutput reader (pg-logical-replication, the library the
// relay uses; no routing, no sockets, no clients) on the run's database,
// rows inserted as the fan-out load does (every 10 ms the rows due, as one
// INSERT), latency from the transaction's now() to the reader's receipt, in
// µs. The fan-out scenario's coalescing baseline makes its own rows without
// a database, so walcast's p99 over the baseline's includes this floor.
import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { openBenchDatabase, PUBLICATION } from './lib/env.ts';

const rate = Number(process.argv[2] ?? 100);
const seconds = Number(process.argv[3] ?? 15);
const WARMUP_MS = 1_500;

const db = await openBenchDatabase();
await db.pool.query(
  `CREATE TABLE latency_floor (id bigserial PRIMARY KEY, t float8 NOT NULL DEFAULT extract(epoch FROM now()), body text)`,
);
await db.pool.query(`ALTER PUBLICATION ${PUBLICATION} ADD TABLE latency_floor`);
await db.pool.query(`SELECT pg_create_logical_replication_slot('latency_floor', 'pgoutput')`);

const latenciesMs: number[] = [];
let measuring = false;
const reader = new LogicalReplicationService(
  { connectionString: db.url },
  { acknowledge: { auto: true, timeoutSeconds: 10 } },
);
reader.on('data', (_lsn: string, m: Pgoutput.Message) => {
  if (!measuring || m.tag !== 'insert' || m.relation.name !== 'latency_floor') return;
  latenciesMs.push(performance.timeOrigin + performance.now() - Number(m.new.t) * 1000);
});
void reader.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [PUBLICATION] }), 'latency_floor');
await new Promise((r) => setTimeout(r, 1_000));

const writer = new pg.Client({ connectionString: db.url });
await writer.connect();
const body = 'x'.repeat(64);
const t0 = performance.now();
let sent = 0;
setTimeout(() => (measuring = true), WARMUP_MS).unref();
while (performance.now() - t0 < WARMUP_MS + seconds * 1000) {
  const due = Math.floor(((performance.now() - t0) / 1000) * rate) - sent;
  if (due > 0) {
    await writer.query(`INSERT INTO latency_floor (body) SELECT $1 FROM generate_series(1, $2)`, [body, due]);
    sent += due;
  }
  await new Promise((r) => setTimeout(r, 10));
}
await new Promise((r) => setTimeout(r, 500));

latenciesMs.sort((a, b) => a - b);
const at = (q: number) => latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(q * latenciesMs.length))]!.toFixed(2);
console.log(
  `pgoutput reader, ${rate} rows/s, ${latenciesMs.length} rows (${db.source}): ` +
    `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, p99.9 ${at(0.999)} ms, max ${at(1)} ms`,
);
await reader.stop();
await writer.end();
await db.close();
