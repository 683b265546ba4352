// A relay restarted after a busy period serves live rows at once from a
// temporary slot while the permanent slot re-reads the recovery window
// beside it, then hands over (relay/live-first.ts, replication/handover.ts).
// What a user sees: a client that subscribes right after the restart gets
// rows inserted after it while the window is still being re-read (/readyz
// 200, saying so); every subscriber gets every row once, in order, across
// the hand-over; a client resuming from before the restart gets what it
// missed, then live; the temporary slot is gone afterwards. Without a free
// slot the relay warns with the fix and works as before.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MqttTestClient } from '../helpers/mqtt.ts';
import { phoenix } from '../helpers/supabase.ts';
import { relayFixture, startTestRelay, waitFor, type TestClient } from '../helpers/relay.ts';
import { startEmbeddedPostgres } from '../../relay/db/embedded.ts';
import { createLogger } from '../../relay/log.ts';
import type { Relay } from '../../relay/relay.ts';
import { parseLsn } from '../../relay/replication/lsn.ts';
import type { EventMessage } from '../../client/protocol.ts';

const fx = relayFixture();
const MiB = 1024 * 1024;
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => {});
});

async function insertSeq(db: { query(t: string, v?: unknown[]): Promise<unknown> }, body: string): Promise<void> {
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('seq', 'w', $1)`, [body]);
}

/** A busy period: `rows` rows of about 300 bytes in transactions of 10,000, all dispatched by `relay`. */
async function busy(relay: Relay, rows: number): Promise<void> {
  for (let done = 0; done < rows; done += 10_000) {
    await fx.db.query(
      `insert into chat_messages (channel_id, sender, body) select 'burst-' || (g % 50), 'load', repeat('x', 300) from generate_series(1, 10000) g`,
    );
  }
  const wal = (await fx.db.query('select pg_current_wal_lsn()::text as lsn')) as { lsn: string }[];
  const lsn = parseLsn(wal[0]!.lsn);
  await waitFor(() => relay.internals.stream.dispatchedPosition >= lsn, 120_000, 'the busy period');
}

const bodies = (c: TestClient, channel = 'seq') =>
  c
    .events()
    .filter((e) => e.channel === channel)
    .map((e) => String(e.row.body));

/** A logger at warn level whose lines the test reads. */
function warnings(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const out = new Writable({
    write(chunk, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, logger: createLogger('warn', out) };
}

async function readyz(relay: Relay): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${relay.url}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('after a busy period live rows flow at once from a temporary slot, and the hand-over loses and repeats nothing', async (t) => {
  // A window large enough for the whole busy period (about 150 MB of frames): resume from before it stays possible.
  const windowed = { recoveryMaxBytes: 512 * MiB };
  const a = await fx.relay(windowed);
  const old = await fx.client(a);
  await old.subscribe('seq');
  for (const n of ['1', '2', '3']) await insertSeq(fx.db, n);
  const seen = await old.waitForEvents(3, 10_000);
  const since = seen.at(-1)!.position;
  await busy(a, 250_000);
  await a.stop();
  for (const n of ['4', '5']) await insertSeq(fx.db, n); // missed while no relay ran

  const started = Date.now();
  const b = await fx.relay({ ...windowed, slot: a.slot, liveSlotBytes: MiB });
  const { liveFirst, stream } = b.internals;
  const liveFrom = (b.internals as unknown as { liveFrom: bigint }).liveFrom;
  assert.equal(liveFirst.status.serving, true, 'the temporary slot serves live rows');
  const temp = liveFirst.status.slot!;
  const slots = await fx.db.query('select temporary from pg_replication_slots where slot_name = $1', [temp]);
  assert.deepEqual(slots, [{ temporary: true }], 'a temporary slot, dropped with its session');

  // What the relay was doing when each row reached the client (same process: read at arrival).
  const live = await fx.client(b);
  const arrivals: { body: string; serving: boolean; rebuilding: bigint }[] = [];
  live.ws.on('message', (data) => {
    const m = JSON.parse(data.toString()) as EventMessage;
    if (m.type !== 'event') return;
    arrivals.push({
      body: String(m.row.body),
      serving: liveFirst.status.serving,
      rebuilding: liveFrom - stream.dispatchedPosition,
    });
  });
  const ready = await readyz(b);
  assert.equal(ready.status, 200, `ready while live rows flow: ${JSON.stringify(ready.body)}`);
  assert.equal((ready.body.rebuilding as { live_rows: string }).live_rows, 'temporary slot');
  await live.subscribe('seq');
  let n = 6;
  await insertSeq(fx.db, String(n++));
  await live.waitFor(() => (arrivals.length > 0 ? true : undefined), 10_000, 'the first live row');
  assert.ok(
    arrivals[0]!.serving && arrivals[0]!.rebuilding > 0n,
    `it arrived while the window was still being re-read: ${JSON.stringify(arrivals[0], (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`,
  );
  // The Supabase door too; a resume there from before the restart is refused while the temporary slot serves.
  const seqInserts = { event: 'INSERT', table: 'chat_messages', filter: 'channel_id=eq.seq' };
  const sup = await phoenix(b.url, 'apikey=anon&vsn=1.0.0', seqInserts);
  cleanups.push(async () => sup.ws.close());
  sup.join({});
  await sup.frames.until((i) => i.some((f) => f.event === 'phx_reply'), 'the join reply');
  const supFrom = n;
  const supResume = await phoenix(b.url, 'apikey=anon&vsn=1.0.0', seqInserts);
  cleanups.push(async () => supResume.ws.close());
  supResume.join({ since });
  const [refusal] = await supResume.frames.until(
    (i) => i.some((f) => f.event === 'system' && JSON.stringify(f.payload).includes('re-reading')),
    'the refusal',
  );
  assert.ok(refusal, 'told to rejoin once /readyz no longer shows rebuilding');
  assert.ok(liveFirst.status.serving, 'the refusal came while the temporary slot served');
  // The MQTT door shares the router: a subscriber there is served from the temporary slot too.
  const mqtt = await MqttTestClient.connect(b, 'ws', 5);
  cleanups.push(() => mqtt.end());
  await mqtt.client.subscribeAsync('chat_messages/seq/#', { qos: 0 });
  const mqttFrom = n;
  const mqttBodies = () =>
    mqtt.received.filter((m) => !m.retain).map((m) => String((JSON.parse(m.payload) as { body: string }).body));
  const resumed = await fx.client(b);
  const reply = await resumed.subscribe('seq', { since });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true, 'resume from before the restart');

  // Rows keep coming through the hand-over; one client reconnects mid-way from its last position.
  const mid = await fx.client(b);
  await mid.subscribe('seq');
  await insertSeq(fx.db, String(n++));
  await mid.waitForEvents(1, 10_000);
  mid.close();
  const midSince = mid.events().at(-1)!.position;
  const again = await fx.client(b);
  await again.subscribe('seq', { since: midSince });
  while (liveFirst.status.serving) {
    await insertSeq(fx.db, String(n++));
    await new Promise((r) => setTimeout(r, 20));
  }
  t.diagnostic(`handed over ${Date.now() - started} ms after the relay started, after row ${n - 1}`);
  for (let i = 0; i < 3; i++) await insertSeq(fx.db, String(n++));
  await insertSeq(fx.db, 'end');
  const all = [...Array.from({ length: n - 6 }, (_, i) => String(i + 6)), 'end'];
  for (const c of [live, resumed, again])
    await c.waitFor(() => (bodies(c).includes('end') ? true : undefined), 120_000, 'end');
  assert.deepEqual(bodies(live), all, 'live: every row after its subscribe once, in order');
  await waitFor(() => mqttBodies().includes('end'), 30_000, 'end over MQTT');
  assert.deepEqual(mqttBodies(), all.slice(mqttFrom - 6), 'MQTT: every row after its subscribe once, in order');
  const supBodies = () => sup.changes().map((c) => String(c.data.record.body));
  await sup.frames.until(() => supBodies().includes('end'), 'end over the Supabase door', 30_000);
  assert.deepEqual(supBodies(), all.slice(supFrom - 6), 'Supabase: every row after its join once, in order');
  assert.deepEqual(
    supResume.changes().map((c) => String(c.data.record.body)),
    all.slice(supFrom - 6),
    'the refused resume replayed nothing (no 4, 5) and went on live',
  );
  assert.deepEqual(bodies(resumed), ['4', '5', ...all], 'resumed from before the restart: the missed rows, then live');
  assert.deepEqual(bodies(again), all.slice(all.indexOf(bodies(mid).at(-1)!) + 1), 'reconnected mid-way: the rest');
  const early = arrivals.filter((x) => x.serving).length;
  assert.ok(
    early > 0 && early < arrivals.length,
    `rows from both slots: ${early} of ${arrivals.length} before the hand-over`,
  );
  await waitFor(
    async () => (await fx.db.query('select 1 from pg_replication_slots where slot_name = $1', [temp])).length === 0,
    10_000,
    'the temporary slot to be dropped',
  );
  assert.equal((await readyz(b)).status, 200);
});

test('without a free slot for the temporary one: a warning with the fix, and live rows after the re-read as before', async () => {
  const server = await startEmbeddedPostgres({
    dataDir: await mkdtemp(join(tmpdir(), 'walcast-pg-')),
    port: 0,
    persistent: false,
    settings: { max_replication_slots: '1' },
  });
  cleanups.push(() => server.stop());
  const { lines, logger } = warnings();
  const a = await startTestRelay(server.url, {});
  cleanups.push(() => a.stop());
  const c = await fx.client(a);
  await c.subscribe('seq');
  const db = new pg.Pool({ connectionString: server.url, max: 2 });
  cleanups.push(() => db.end());
  await insertSeq(db, '1');
  const since = (await c.waitForEvents(1)).at(-1)!.position;
  await a.stop();
  await insertSeq(db, '2');
  const b = await startTestRelay(server.url, { slot: a.slot, liveSlotBytes: 1 }, logger);
  cleanups.push(() => b.stop());
  assert.deepEqual(b.internals.liveFirst.status, { serving: false, slot: undefined });
  const warning = lines.find((l) => l.includes('no temporary replication slot'));
  assert.ok(warning, `warned: ${lines.join('')}`);
  assert.match(warning, /SQLSTATE 53400/);
  assert.match(warning, /Raise max_replication_slots and max_wal_senders by one each/);
  const again = await fx.client(b);
  const reply = await again.subscribe('seq', { since });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
  await insertSeq(db, '3');
  await again.waitFor(() => (bodies(again).length === 2 ? true : undefined), 10_000, 'rows 2 and 3');
  assert.deepEqual(bodies(again), ['2', '3']);
});

test('the temporary slot does not outlive its relay: gone after a SIGKILL and after a graceful stop', async () => {
  const a = await fx.relay();
  await busy(a, 100_000);
  await a.stop();
  const temporary = async () =>
    (await fx.db.query(
      `select slot_name from pg_replication_slots where temporary and slot_name like $1 || '_live_%'`,
      [a.slot],
    )) as { slot_name: string }[];
  const args = ['--database-url', fx.db.url, '--slot', a.slot, '--example', 'true'];
  const env = { WALCAST_LIVE_SLOT_BYTES: String(MiB) };
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    const relay = await fx.spawn(args, env);
    // Created before the relay listens; the permanent slot is still re-reading (it holds the window's start).
    assert.equal((await temporary()).length, 1, `a temporary slot while the window is re-read (${signal})`);
    relay.child.kill(signal);
    await relay.exited;
    await waitFor(async () => (await temporary()).length === 0, 10_000, `the temporary slot gone after ${signal}`);
  }
});

test('the temporary slot failing mid-way: a warning, and live subscribers still get every row once, in order, from the permanent slot', async () => {
  const a = await fx.relay();
  await busy(a, 150_000);
  await a.stop();
  const { lines, logger } = warnings();
  const b = await fx.relay({ slot: a.slot, liveSlotBytes: MiB }, undefined, logger);
  const { liveFirst } = b.internals;
  const temp = liveFirst.status.slot!;
  const live = await fx.client(b);
  await live.subscribe('cut');
  const insert = (body: string) =>
    fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('cut', 'w', $1)`, [body]);
  await insert('1');
  await live.waitForEvents(1, 10_000);
  assert.ok(liveFirst.status.serving, 'row 1 came from the temporary slot');
  // Its walsender ends, as when PostgreSQL kills it or the connection breaks.
  await fx.db.query('select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1', [temp]);
  await waitFor(() => !liveFirst.status.serving, 10_000, 'the relay to notice');
  for (const body of ['2', '3', 'end']) await insert(body);
  await live.waitFor(() => (bodies(live, 'cut').includes('end') ? true : undefined), 120_000, 'end');
  assert.deepEqual(bodies(live, 'cut'), ['1', '2', '3', 'end']);
  assert.ok(
    lines.some((l) => l.includes('the temporary slot failed')),
    `warned: ${lines.join('').slice(0, 2000)}`,
  );
  await waitFor(
    async () => (await fx.db.query('select 1 from pg_replication_slots where slot_name = $1', [temp])).length === 0,
    10_000,
    'the temporary slot to be dropped',
  );
});
