// The slot and the stream: what is confirmed to PostgreSQL and when, what a
// restart or a lost connection does, and how registrations take effect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueName } from '../helpers/postgres.ts';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { ReplicationStream } from '../../relay/replication/stream.ts';
import type { PgoutputMessage } from '../../relay/replication/decoder.ts';
import { parseLsn } from '../../relay/replication/lsn.ts';
import { silentLogger } from '../../relay/log.ts';
import { migrate, ensurePublication } from '../../relay/db/migrate.ts';
import { ensureSlot } from '../../relay/replication/slot.ts';
import { createPruner } from '../../relay/jobs/ttl.ts';

const fx = relayFixture();
const { relay, client } = fx;

async function confirmedFlush(slot: string): Promise<bigint> {
  const [row] = await fx.db.query<{ lsn: string }>(
    'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
    [slot],
  );
  return parseLsn(row!.lsn);
}

/** The prefix of the test's own logical message (not walcast's: the stream handles those itself). */
const MARKER = 'test.marker';

async function insertReturningLsn(channel: string, body: string): Promise<bigint> {
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 's', $2)`, [channel, body]);
  const [row] = await fx.db.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
  return parseLsn(row!.lsn);
}

test('confirmed_flush_lsn advances only past what was reported delivered', async () => {
  await migrate(fx.db.pool, { example: true });
  await ensurePublication(fx.db.pool, 'realtime_events');
  const slot = uniqueName('ack_slot');
  const info = await ensureSlot(fx.db.pool, slot, silentLogger);
  const commits: bigint[] = [];
  let withRow = false;
  let markers = 0;
  const stream = new ReplicationStream({
    connectionString: fx.db.url,
    slot,
    publication: 'realtime_events',
    logger: silentLogger,
    statusIntervalMs: 50,
    // The test holds delivery back: commits are recorded, not reported.
    // Only those with a row: before PostgreSQL 15, pgoutput also sends empty
    // transactions (autovacuum's, for one).
    onMessage: (msg: PgoutputMessage) => {
      if (msg.tag === 'message' && msg.prefix === MARKER) markers++;
      if (msg.tag === 'insert') withRow = true;
      if (msg.tag === 'commit' && withRow) commits.push(msg.endLsn);
      if (msg.tag === 'commit') withRow = false;
    },
  });
  stream.start(info.confirmedFlushLsn);
  try {
    await waitFor(() => stream.state === 'streaming');
    await insertReturningLsn('ack', 'one');
    await waitFor(() => commits.length === 1);
    // A marker written after the commit: once the stream has read it, it has
    // read everything before it (keepalives included) and had its chance to
    // treat the commit as delivered.
    await fx.db.query(`select pg_logical_emit_message(false, $1, '')`, [MARKER]);
    await waitFor(() => markers === 1, 10_000, 'the marker message');
    assert.ok(stream.deliveredPosition < commits[0]!, 'the undelivered commit is not counted as delivered');
    const held = await confirmedFlush(slot);
    assert.ok(held < commits[0]!, `confirmed ${held} stays below the undelivered commit's end ${commits[0]}`);
    stream.delivered(commits[0]!);
    // At least the commit: WAL that other tests write meanwhile comes as
    // keepalives, which are confirmed too once nothing is pending.
    await waitFor(
      async () => (await confirmedFlush(slot)) >= commits[0]!,
      5000,
      'confirmation of the delivered commit',
    );
  } finally {
    await stream.stop();
  }
});

test('an idle publication does not pin WAL: keepalive positions are confirmed after the recovery window', async () => {
  // No watchdog heartbeat in this test: only keepalives may move the slot.
  const r = await relay({ recoverySeconds: 1, watchdogMs: 3_600_000 });
  const before = await confirmedFlush(r.slot);
  // WAL written outside the publication: only keepalives carry it.
  await fx.db.query('create table not_published (x int)');
  await fx.db.query('insert into not_published select generate_series(1, 1000)');
  const [row] = await fx.db.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
  const target = parseLsn(row!.lsn);
  await fx.db.query('select pg_switch_wal()').catch(() => {}); // nudges a keepalive on idle servers
  await waitFor(async () => (await confirmedFlush(r.slot)) >= target, 30_000, 'keepalive confirmation');
  assert.ok((await confirmedFlush(r.slot)) > before);
});

test('rows committed while the relay is stopped are decoded after it restarts, and resumable', async () => {
  const slot = uniqueName('restart_slot');
  const first = await relay({ slot });
  const c1 = await client(first);
  await c1.subscribe('restart');
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('restart', 's', 'before')`);
  const [seen] = await c1.waitForEvents(1);
  await first.stop();
  const downLsn = await insertReturningLsn('restart', 'while down');
  const second = await relay({ slot });
  await waitFor(() => second.internals.stream.state === 'streaming');
  const c2 = await client(second);
  const reply = await c2.subscribe('restart', { since: seen!.position });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
  const events = await c2.waitForEvents(1);
  assert.deepEqual(
    events.map((e) => e.row.body),
    ['while down'],
  );
  // The confirmed position is held back by the recovery window, not advanced past it.
  assert.ok((await confirmedFlush(slot)) < downLsn);
});

test('a lost replication connection reconnects and loses nothing', async () => {
  const r = await relay();
  const c = await client(r);
  await c.subscribe('flaky');
  const total = 60;
  for (let i = 0; i < total; i++) {
    await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('flaky', 's', $1)`, [`m${i}`]);
    if (i % 20 === 10) {
      await fx.db.query(
        `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active`,
        [r.slot],
      );
    }
  }
  const events = await c.waitForEvents(total, 30_000);
  await new Promise((res) => setTimeout(res, 300));
  assert.deepEqual(
    c.events().map((e) => e.row.body),
    Array.from({ length: total }, (_, i) => `m${i}`),
  );
  assert.equal(events.length, total);
});

test('/healthz is 503 with a generic reason while the stream is down (the cause stays in the relay), 200 once it is back', async () => {
  const role = uniqueName('walcast_role');
  await fx.db.query(`create role ${role} superuser login password 'pw'`);
  const url = new URL(fx.db.url);
  url.username = role;
  url.password = 'pw';
  const r = await relay({}, url.toString());
  try {
    await fx.db.query(`alter role ${role} nologin`);
    await fx.db.query(
      `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active`,
      [r.slot],
    );
    await waitFor(async () => (await fetch(`${r.url}/healthz`)).status === 503, 10_000, 'healthz to turn 503');
    const body = (await (await fetch(`${r.url}/healthz`)).json()) as {
      status: string;
      replication: string;
      reason: string;
    };
    assert.equal(body.status, 'unavailable');
    assert.equal(body.replication, 'reconnecting');
    // The public reason names the state; the server's message stays inside (it is logged).
    assert.equal(body.reason, "replication stream is reconnecting; the relay's log has the cause");
    assert.match(r.internals.stream.lastError?.message ?? '', /not permitted to log in|terminat/);
    await fx.db.query(`alter role ${role} login`);
    await waitFor(async () => (await fetch(`${r.url}/healthz`)).status === 200, 20_000, 'healthz to recover');
  } finally {
    await r.stop();
    await fx.db.query(`alter role ${role} login`);
  }
});

test('tables registered and unregistered at run time take effect without a restart', async () => {
  const r = await relay();
  const c = await client(r);
  await c.subscribe('live');
  await fx.db.query(`create table orders (id serial primary key, shop text not null, total int)`);
  await fx.db.query(`insert into orders (shop, total) values ('live', 1)`); // not published yet
  await fx.db.query(`select walcast.register_table('orders', channel_column => 'shop')`);
  await fx.db.query(`insert into orders (shop, total) values ('live', 2)`);
  const [e] = await c.waitForEvents(1);
  assert.equal(e?.table, 'orders');
  assert.equal(e?.row.total, 2);
  const filtered = await client(r);
  await filtered.subscribe('live', { tables: ['orders'] }); // known to the relay now
  await fx.db.query(`select walcast.unregister_table('orders')`);
  await fx.db.query(`insert into orders (shop, total) values ('live', 3)`);
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('live', 's', 'marker')`);
  await c.waitForEvents(2);
  assert.deepEqual(
    c.events().map((x) => x.table),
    ['orders', 'chat_messages'],
  );
});

test('TTL pruning removes old rows and sends no delete event; application deletes still do', async () => {
  const r = await relay();
  const c = await client(r);
  await c.subscribe('ttl');
  await fx.db.query(`insert into chat_messages (channel_id, sender, body, created_at)
                  select 'ttl', 's', 'old ' || g, now() - interval '8 days' from generate_series(1, 5) g`);
  const [{ id }] = (await fx.db.query<{ id: string }>(
    `insert into chat_messages (channel_id, sender, body) values ('ttl', 's', 'fresh') returning id`,
  )) as [{ id: string }];
  await c.waitForEvents(6);
  const pruner = createPruner({ pool: fx.db.pool, logger: silentLogger, batchSize: 2 });
  const result = await pruner.runOnce();
  await pruner.stop();
  assert.equal(result.find((x) => x.table.endsWith('chat_messages'))?.deleted, 5);
  const [{ n }] = (await fx.db.query<{ n: number }>(
    `select count(*)::int as n from chat_messages where channel_id = 'ttl'`,
  )) as [{ n: number }];
  assert.equal(n, 1);
  await fx.db.query(`delete from chat_messages where id = $1`, [id]);
  await c.waitForEvents(7);
  await new Promise((res) => setTimeout(res, 200));
  const ops = c.events().map((e) => `${e.op}:${e.row.id}`);
  assert.deepEqual(ops.slice(6), [`delete:${id}`]);
  assert.equal(ops.length, 7);
});
