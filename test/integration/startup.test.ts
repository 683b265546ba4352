// `walcast start` as a person runs it: a real process, embedded PostgreSQL
// included, and the start-up checks that stop it with one clear line.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../relay/db/embedded.ts';
import { createTestDatabase, uniqueName, type TestDatabase } from '../helpers/postgres.ts';
import { TestClient } from '../helpers/relay.ts';

const MAIN = new URL('../../relay/main.ts', import.meta.url).pathname;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => {});
});

interface Run {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

function walcast(args: string[], env: Record<string, string>): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: Run = { child, stdout: '', stderr: '', exited: new Promise((r) => child.on('exit', (code) => r(code))) };
  child.stdout!.on('data', (d: Buffer) => (run.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (run.stderr += d.toString()));
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return run;
}

async function until(run: Run, re: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(run.stderr) ?? re.exec(run.stdout);
    if (m) return m;
    if (run.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`no ${re} (exit ${run.child.exitCode}); stderr: ${run.stderr.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('walcast start with no DATABASE_URL: embedded PostgreSQL, the example, a working relay, then a clean stop', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'walcast-start-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const run = walcast(['start'], {
    WALCAST_DATA_DIR: dataDir,
    WALCAST_EMBEDDED_PORT: String(await freePort()),
    PORT: String(await freePort()),
    WALCAST_LOG_LEVEL: 'warn',
  });
  const [, wsUrl] = (await until(run, /WebSocket:\s+(ws:\/\/\S+)/)) as unknown as [string, string];
  const [, psqlUrl] = (await until(run, /PostgreSQL:\s+psql "([^"]+)"/)) as unknown as [string, string];
  assert.match(run.stderr, /insert into chat_messages/);
  const c = await TestClient.connect(wsUrl);
  await c.subscribe('room-1');
  const db = new pg.Client({ connectionString: psqlUrl });
  await db.connect();
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('room-1', 'ada', 'hello')`);
  await db.end();
  const [e] = await c.waitForEvents(1);
  assert.equal(e?.row.body, 'hello');
  const closed = c.waitClosed();
  run.child.kill('SIGTERM');
  assert.equal((await closed).code, 1001);
  assert.equal(await run.exited, 0);
  // The relay stops before its embedded PostgreSQL does, never the reverse.
  assert.doesNotMatch(run.stdout + run.stderr, /terminating connection|idle database connection failed/);
});

test('invalid configuration stops start-up with one line naming the variable', async () => {
  const run = walcast(['start'], { PORT: 'eighty', DATABASE_URL: 'postgres://127.0.0.1:1/x' });
  assert.equal(await run.exited, 1);
  assert.equal(run.stderr.trim(), 'walcast: PORT (--port) must be an integer from 0 to 65535; got "eighty"');
});

test('an unreachable database is named without its password', async () => {
  const run = walcast(['start', '--database-url', `postgres://u:secret@127.0.0.1:${await freePort()}/app`], {});
  assert.equal(await run.exited, 1);
  assert.match(run.stderr, /^walcast: cannot connect to PostgreSQL at 127\.0\.0\.1:\d+\/app: .*Check DATABASE_URL/);
  assert.doesNotMatch(run.stderr, /secret/);
});

test('a role without REPLICATION is told the ALTER ROLE that fixes it', async () => {
  const db: TestDatabase = await createTestDatabase();
  cleanups.push(() => db.drop());
  const role = uniqueName('norepl');
  await db.query(`create role ${role} login password 'pw' noreplication nosuperuser`);
  await db.query(`grant all on database ${db.name} to ${role}`);
  cleanups.push(async () => void (await db.query(`drop owned by ${role}; drop role ${role}`).catch(() => {})));
  const url = new URL(db.url);
  url.username = role;
  url.password = 'pw';
  const run = walcast(['start', '--database-url', url.toString(), '--port', '0'], { WALCAST_LOG_LEVEL: 'silent' });
  assert.equal(await run.exited, 1);
  assert.equal(
    run.stderr.trim(),
    `walcast: role ${role} may not use replication; run ALTER ROLE ${role} WITH REPLICATION (or connect as a role that has it)`,
  );
});

async function ownServer(settings: Record<string, string>): Promise<EmbeddedPostgresHandle> {
  const dataDir = await mkdtemp(join(tmpdir(), 'walcast-pg-'));
  const server = await startEmbeddedPostgres({ dataDir, port: 0, persistent: false, settings });
  cleanups.push(() => server.stop());
  return server;
}

test('wal_level replica, no free replication slot, and no free WAL sender each stop start-up with the fix', async () => {
  const replica = await ownServer({ wal_level: 'replica' });
  const r1 = walcast(['start', '--database-url', replica.url, '--port', '0'], { WALCAST_LOG_LEVEL: 'silent' });
  assert.equal(await r1.exited, 1);
  assert.equal(
    r1.stderr.trim(),
    "walcast: wal_level is 'replica'; run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL",
  );

  const full = await ownServer({ max_replication_slots: '1' });
  const admin = new pg.Client({ connectionString: full.url });
  await admin.connect();
  await admin.query(`select pg_create_logical_replication_slot('someone_else', 'pgoutput')`);
  await admin.end();
  const r2 = walcast(['start', '--database-url', full.url, '--port', '0'], { WALCAST_LOG_LEVEL: 'silent' });
  assert.equal(await r2.exited, 1);
  assert.match(
    r2.stderr,
    /^walcast: all 1 replication slots are in use and slot walcast does not exist yet; drop an unused slot .* or raise max_replication_slots/,
  );

  // One WAL sender, taken by a first relay: a second one (another slot) is told why it cannot stream.
  const one = await ownServer({ max_wal_senders: '1' });
  const first = walcast(['start', '--database-url', one.url, '--port', '0', '--slot', 'first'], {
    WALCAST_LOG_LEVEL: 'silent',
  });
  await until(first, /WebSocket:\s+(ws:\/\/\S+)/);
  const second = walcast(['start', '--database-url', one.url, '--port', '0', '--slot', 'second'], {
    WALCAST_LOG_LEVEL: 'silent',
  });
  assert.equal(await second.exited, 1);
  assert.equal(
    second.stderr.trim(),
    'walcast: all 1 WAL senders are busy; raise max_wal_senders and restart PostgreSQL, or stop an idle replication client',
  );
  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0);
});
