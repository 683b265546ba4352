// Graceful shutdown of a real relay process: SIGTERM closes clients with
// 1001 and a reason, confirms what was delivered and exits 0; a shutdown
// stuck past WALCAST_SHUTDOWN_SECONDS exits 1; a second signal exits at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { uniqueName } from '../helpers/postgres.ts';
import type { RelayProcess } from '../helpers/process.ts';
import { TestClient, relayFixture, waitFor } from '../helpers/relay.ts';
import { SHUTDOWN_REASON } from '../../relay/relay.ts';
import { parseLsn } from '../../relay/replication/lsn.ts';
import { parsePosition } from '../../relay/replication/position.ts';

const fx = relayFixture();
const { db } = fx;

async function start(extra: string[] = []): Promise<{ proc: RelayProcess; slot: string }> {
  const slot = uniqueName('stop_slot');
  const proc = await fx.spawn(['--database-url', db.url, '--slot', slot, '--example', 'true', ...extra], {
    WALCAST_LOG_LEVEL: 'info',
  });
  return { proc, slot };
}

/** Holds an ACCESS EXCLUSIVE lock on chat_messages until released, so the TTL job's delete waits. */
async function lockChat(): Promise<{ release(): Promise<void> }> {
  const conn: pg.PoolClient = await db.pool.connect();
  await conn.query('begin');
  await conn.query('lock table chat_messages in access exclusive mode');
  return {
    async release() {
      await conn.query('rollback');
      conn.release();
    },
  };
}

async function pruneBlocked(): Promise<boolean> {
  const rows = await db.query(
    `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query ilike 'delete from "public"."chat_messages"%'`,
  );
  return rows.length > 0;
}

test('SIGTERM: clients closed with 1001 and a reason, the delivered position confirmed, replication ended, exit 0', async () => {
  const { proc, slot } = await start(['--recovery-events', '0']);
  const c = await TestClient.connect(proc.wsUrl);
  await c.subscribe('bye');
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('bye', 'a', 'last')`);
  const [event] = await c.waitForEvents(1);
  proc.child.kill('SIGTERM');
  const closed = await c.waitClosed();
  assert.equal(closed.code, 1001);
  assert.equal(closed.reason, SHUTDOWN_REASON);
  assert.equal(await proc.exited, 0, proc.output().slice(-2000));
  const [row] = await db.query<{ lsn: string; active: boolean }>(
    'select confirmed_flush_lsn::text as lsn, active from pg_replication_slots where slot_name = $1',
    [slot],
  );
  assert.equal(row!.active, false, 'replication ended');
  assert.ok(
    parseLsn(row!.lsn) >= parsePosition(event!.position)!.commitLsn,
    'the last dispatched transaction is confirmed',
  );
  const lines = proc
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; confirmed?: string });
  const stopped = lines.find((l) => l.msg.startsWith('relay stopped'));
  assert.ok(stopped?.confirmed, 'one log line says what was confirmed');
  assert.ok(lines.some((l) => l.msg === 'shutdown complete'));
});

test('a shutdown stuck past WALCAST_SHUTDOWN_SECONDS exits with status 1; clients were closed first', async () => {
  const { proc } = await start(['--shutdown-seconds', '1', '--ttl-schedule', '* * * * * *']);
  const c = await TestClient.connect(proc.wsUrl);
  await c.subscribe('stuck');
  const lock = await lockChat();
  try {
    await waitFor(pruneBlocked, 15_000, 'the TTL job to wait on the lock');
    proc.child.kill('SIGTERM');
    assert.equal((await c.waitClosed()).code, 1001);
    assert.equal(await proc.exited, 1);
    assert.match(proc.output(), /shutdown deadline passed/);
  } finally {
    await lock.release();
  }
});

test('a second signal exits at once', async () => {
  const { proc } = await start(['--ttl-schedule', '* * * * * *']);
  const lock = await lockChat();
  try {
    await waitFor(pruneBlocked, 15_000, 'the TTL job to wait on the lock');
    proc.child.kill('SIGTERM');
    await waitFor(() => /"msg":"shutting down"/.test(proc.output()), 10_000, 'the shutdown to begin');
    proc.child.kill('SIGINT');
    assert.equal(await proc.exited, 1);
    assert.match(proc.output(), /second signal: exiting at once/);
    assert.doesNotMatch(proc.output(), /shutdown deadline passed/);
  } finally {
    await lock.release();
  }
});
