// Exactly once into JetStream under faults: the relay process SIGKILLed
// under steady inserts (a new process takes over the slot), and nats-server
// SIGKILLed and restarted under load. In both the stream ends with every row
// of the table once, in commit order, and the stream's sequence of walcast
// message ids has no duplicate.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDatabase, uniqueName, type TestDatabase } from '../helpers/postgres.ts';
import { spawnRelay, type RelayProcess } from '../helpers/process.ts';
import { startTestRelay, waitFor } from '../helpers/relay.ts';
import { readStream, startNatsServer, type NatsServer } from '../helpers/nats.ts';
import type { Relay } from '../../relay/relay.ts';

const dbs: TestDatabase[] = [];
const servers: NatsServer[] = [];
const procs: RelayProcess[] = [];
const relays: Relay[] = [];
after(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  for (const r of relays) await r.stop();
  for (const s of servers) await s.stop();
  for (const d of dbs) await d.drop();
});

/** Insert one row every few ms into `channel` until stop() is called. */
function steadyInserts(db: TestDatabase, channel: string): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'load', $2)`, [
        channel,
        String(i),
      ]);
      await new Promise((r) => setTimeout(r, 3));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** Wait for a marker row in the stream, then compare the stream with the table. */
async function assertExactlyOnce(db: TestDatabase, nats: NatsServer, stream: string, channel: string): Promise<number> {
  await db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'load', 'marker')`, [channel]);
  const committed = (
    await db.query<{ body: string }>(`select body from chat_messages where channel_id = $1 order by id`, [channel])
  ).map((r) => r.body);
  let stored: Awaited<ReturnType<typeof readStream>> = [];
  await waitFor(
    async () => {
      stored = await readStream(nats.url, stream);
      return stored.some((m) => m.event.row.body === 'marker');
    },
    60_000,
    'the marker row in the stream',
  );
  assert.deepEqual(
    stored.map((m) => m.event.row.body),
    committed,
    'every row exactly once, in commit order',
  );
  const ids = stored.map((m) => m.msgId);
  assert.equal(new Set(ids).size, ids.length, 'no message id twice');
  assert.deepEqual([...ids].sort(), ids, 'ids (positions) in commit order');
  return committed.length;
}

test('relay SIGKILL under steady inserts, while NATS is away: the stream holds every row once, in order, after a new relay takes over', async () => {
  const db = await createTestDatabase();
  dbs.push(db);
  const nats = await startNatsServer();
  servers.push(nats);
  // No recovery window: the slot is confirmed as soon as the gate allows, so
  // nothing but the gate keeps an unacknowledged row in the slot.
  const args = [
    '--database-url',
    db.url,
    '--slot',
    uniqueName('js_kill'),
    '--example',
    'true',
    '--recovery-events',
    '0',
  ];
  const env = { WALCAST_NATS_URL: nats.url };
  const first = await spawnRelay(args, env);
  procs.push(first);
  const load = steadyInserts(db, 'steady');
  await waitFor(async () => (await readStream(nats.url, 'walcast')).length >= 150, 30_000, '150 rows in the stream');
  // NATS goes away; rows keep coming and reach the relay (and its WebSocket
  // clients) for longer than the stream's status interval, then the relay dies.
  await nats.kill();
  await new Promise((r) => setTimeout(r, 2000));
  first.child.kill('SIGKILL');
  await first.exited;
  await nats.start();
  await new Promise((r) => setTimeout(r, 300)); // rows keep coming while no relay runs
  const second = await spawnRelay(args, env);
  procs.push(second);
  await new Promise((r) => setTimeout(r, 500));
  await load.stop();
  const n = await assertExactlyOnce(db, nats, 'walcast', 'steady');
  assert.ok(n > 150);
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);
});

test('nats-server SIGKILL and restart under load: the stream holds every row once, in order', async () => {
  const db = await createTestDatabase();
  dbs.push(db);
  const nats = await startNatsServer();
  servers.push(nats);
  const relay = await startTestRelay(db.url, { natsUrl: nats.url, recoveryEvents: 0 });
  relays.push(relay);
  const load = steadyInserts(db, 'restart');
  await waitFor(async () => relay.internals.sinks.jetstream!.counters.published >= 100, 30_000, '100 rows published');
  await nats.restart();
  await waitFor(
    async () => relay.internals.sinks.jetstream!.counters.resyncs >= 2,
    30_000,
    'the sink to resync after the restart',
  );
  await waitFor(async () => relay.internals.sinks.jetstream!.state === 'publishing', 30_000, 'publishing again');
  const before = relay.internals.sinks.jetstream!.counters.published;
  await waitFor(
    async () => relay.internals.sinks.jetstream!.counters.published >= before + 100,
    30_000,
    '100 more rows published',
  );
  await load.stop();
  await assertExactlyOnce(db, nats, 'walcast', 'restart');
});
