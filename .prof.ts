import { openBenchDatabase } from './bench/lib/env.ts';
import { startNatsServer } from './test/helpers/nats.ts';
import { startRelay } from './relay/relay.ts';
import { silentLogger } from './relay/log.ts';
import { relayConfig } from './test/helpers/relay.ts';
const db = await openBenchDatabase();
const nats = await startNatsServer();
await db.pool.query(`CREATE OR REPLACE PROCEDURE bl(txns int) LANGUAGE plpgsql AS $$ BEGIN FOR i IN 1..txns LOOP INSERT INTO chat_messages (channel_id, sender, body) VALUES ('s-' || (i % 100), 'b', repeat('x', 64)); COMMIT; END LOOP; END $$`);
const N = 10000;
for (const withSink of [false, true]) {
  const slot = `p_${withSink}_${Date.now()}`;
  await db.pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  await db.pool.query('CALL bl($1)', [N]);
  const relay = await startRelay(relayConfig(db.url, { slot, ttlSchedule: '0 0 1 1 *', natsUrl: withSink ? nats.url : undefined }), silentLogger);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  while (relay.dispatcher.counters.transactions < N) await new Promise((r) => setTimeout(r, 1));
  const t1 = performance.now();
  while (withSink && relay.sinks.jetstream!.counters.published < N) await new Promise((r) => setTimeout(r, 1));
  const t2 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({ withSink, dispatchMs: Math.round(t1 - t0), publishedMs: Math.round(t2 - t0), cpuMs: Math.round((cpu.user + cpu.system) / 1000) }));
  await relay.stop();
  await db.pool.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
}
await nats.stop(); await db.close(); process.exit(0);
