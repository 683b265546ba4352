// The slot watchdog against a server with a tiny max_slot_wal_keep_size: once
// the slot retains more WAL than that, wal_status turns 'unreserved'; the
// relay recreates the slot with a new epoch, clients are closed with 4010,
// and streaming goes on in the new epoch. Its own PostgreSQL: the setting is
// server-wide and would disturb the other test files.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../relay/db/embedded.ts';
import { startTestRelay, TestClient, waitFor } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';
import { parsePosition } from '../../relay/replication/position.ts';
import { CLOSE } from '../../client/protocol.ts';

let server: EmbeddedPostgresHandle;
let dataDir: string;
let pool: pg.Pool;
let relay: Relay | undefined;
const clients: TestClient[] = [];

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'walcast-keep-'));
  server = await startEmbeddedPostgres({
    dataDir,
    port: 0,
    persistent: false,
    settings: { fsync: 'off', max_slot_wal_keep_size: '1MB' },
  });
  pool = new pg.Pool({ connectionString: server.url, max: 2 });
});
after(async () => {
  for (const c of clients) c.close();
  await relay?.stop();
  await pool?.end();
  await server?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

async function subscribed(r: Relay, channel: string): Promise<{ client: TestClient; epoch: string }> {
  const client = await TestClient.connect(r.wsUrl);
  clients.push(client);
  const reply = await client.subscribe(channel);
  assert.equal(reply.type, 'subscribed');
  return { client, epoch: parsePosition(reply.type === 'subscribed' ? reply.position : '')!.epoch };
}

test("wal_status 'unreserved' makes the relay recreate the slot: new epoch, clients closed with 4010, streaming goes on", async () => {
  // The recovery window holds confirmation back, so the slot keeps its WAL.
  relay = await startTestRelay(server.url, { watchdogMs: 100 });
  const first = await subscribed(relay, 'keep');
  await pool.query(`insert into chat_messages (channel_id, sender, body) values ('keep', 'a', 'before')`);
  await first.client.waitForEvents(1);

  // Move the WAL into a later segment than the slot's restart_lsn: with a
  // 1 MB max_slot_wal_keep_size the slot is then over its limit.
  await pool.query(`select pg_switch_wal()`);
  await pool.query(`insert into chat_messages (channel_id, sender, body) values ('other', 'a', 'filler')`);
  await pool.query(`select pg_switch_wal()`);

  const closed = await first.client.waitClosed(20_000);
  assert.equal(closed.code, CLOSE.streamReset);
  const r = relay;
  await waitFor(
    () => r.internals.stream.state === 'streaming' && r.internals.watchdog.status?.walStatus === 'reserved',
    20_000,
    'the new slot to stream',
  );
  const metrics = await (await fetch(`${r.url}/metrics`)).text();
  assert.match(metrics, /^walcast_slot_recreated_total 1$/m);

  const second = await subscribed(r, 'keep');
  assert.notEqual(second.epoch, first.epoch, 'a new epoch');
  await pool.query(`insert into chat_messages (channel_id, sender, body) values ('keep', 'a', 'after')`);
  const [event] = await second.client.waitForEvents(1);
  assert.equal(event!.row.body, 'after');
  assert.equal(parsePosition(event!.position)!.epoch, second.epoch);
});
