// The `walcast` command as the package installs it (bin/walcast.js): --help
// on every subcommand, migrate, register, doctor (findings, fixes, exit
// status, unused slots reported and kept), tail and replay against a relay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { uniqueName } from '../helpers/postgres.ts';
import { TestClient, waitFor, relayFixture } from '../helpers/relay.ts';
import { TEST_SECRET, token } from '../helpers/tokens.ts';
import type { Finding } from '../../relay/db/doctor.ts';

const BIN = new URL('../../bin/walcast.js', import.meta.url).pathname;
const SUBCOMMANDS = ['start', 'migrate', 'register', 'doctor', 'tail', 'replay', 'flows'];

const fx = relayFixture();
const { db } = fx;
const children: ChildProcess[] = [];
fx.cleanup(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

interface Run {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

function walcast(args: string[], env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: db.url, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const run: Run = { child, stdout: '', stderr: '', exited: new Promise((r) => child.on('exit', (code) => r(code))) };
  child.stdout!.on('data', (d: Buffer) => (run.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (run.stderr += d.toString()));
  return run;
}

async function complete(
  args: string[],
  env?: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = walcast(args, env);
  const code = await run.exited;
  return { code, stdout: run.stdout, stderr: run.stderr };
}

async function doctor(): Promise<{ code: number | null; findings: Finding[] }> {
  const { code, stdout, stderr } = await complete(['doctor', '--json']);
  assert.ok(stdout.startsWith('['), stderr);
  return { code, findings: JSON.parse(stdout) as Finding[] };
}

test('package.json names bin/walcast.js as the walcast command, and npm start runs it', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    bin: Record<string, string>;
    scripts: Record<string, string>;
  };
  assert.equal(pkg.bin.walcast, 'bin/walcast.js');
  assert.match(pkg.scripts.start!, /bin\/walcast\.js start/);
});

test('--help works on every subcommand and lists them all', async () => {
  const top = await complete(['--help']);
  assert.equal(top.code, 0);
  for (const sub of SUBCOMMANDS) {
    assert.match(top.stdout, new RegExp(`^  ${sub} `, 'm'));
    const r = await complete([sub, '--help']);
    assert.equal(r.code, 0, `${sub} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`walcast ${sub}`));
  }
  const bad = await complete(['frobnicate']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown command "frobnicate"/);
});

test('migrate --example installs the schema and the example tables, once', async () => {
  const first = await complete(['migrate', '--example']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /applied: 001_walcast\.sql.*example\/001_example\.sql/);
  const [t] = await db.query(`select to_regclass('public.chat_messages') is not null as ok`);
  assert.equal(t!.ok, true);
  const again = await complete(['migrate', '--example']);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /up to date/);
});

test('register adds a table; a bad column fails with register_failed and the reason', async () => {
  await db.query(
    `create table notes (id serial primary key, room text not null, body text, created_at timestamptz not null default now())`,
  );
  const ok = await complete([
    'register',
    'notes',
    '--channel',
    'room',
    '--ttl',
    '1 day',
    '--time-column',
    'created_at',
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  const [reg] = await db.query(`select channel_column, ttl::text from walcast.tables where table_name = 'notes'`);
  assert.deepEqual(reg, { channel_column: 'room', ttl: '1 day' });
  const [pub] = await db.query(
    `select count(*)::int as n from pg_publication_tables where pubname = 'realtime_events' and tablename = 'notes'`,
  );
  assert.equal(pub!.n, 1);
  const bad = await complete(['register', 'notes', '--channel', 'nope']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /registering notes failed: .*nope/);
  const missing = await complete(['register', 'notes']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /needs one table and --channel/);
});

test('doctor: findings with fixes, exit 1 on errors, unused walcast slots reported and never dropped', async () => {
  // notes (registered above) has no index on room: a warning only.
  const healthy = await doctor();
  assert.equal(healthy.code, 0, JSON.stringify(healthy.findings.filter((f) => f.level === 'error')));
  assert.ok(healthy.findings.some((f) => f.check === 'wal_level' && f.level === 'ok'));
  const index = healthy.findings.find((f) => f.check === 'index' && f.message.includes('public.notes'));
  assert.equal(index?.level, 'warning');
  assert.match(index!.fix!, /CREATE INDEX CONCURRENTLY ON public\.notes \(room\)/);

  // An unused walcast slot, a registered table out of the publication, an
  // unregistered table in it, and a registered table whose deletes lose the channel.
  const idle = uniqueName('idle_slot');
  await db.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [idle]);
  await db.query(`insert into walcast.slots (slot_name, epoch) values ($1, 'abcd')`, [idle]);
  await db.query(`alter publication realtime_events drop table notes`);
  await db.query(
    `create table strays (id int primary key, room text); alter publication realtime_events add table strays`,
  );
  await db.query(`create table moves (id int primary key, room text)`);
  await db.query(`select walcast.register_table('moves', 'room')`);
  await db.query(`alter table moves replica identity default`);

  const { code, findings } = await doctor();
  assert.equal(code, 1);
  const find = (check: string, text: string) => findings.find((f) => f.check === check && f.message.includes(text));
  const slot = find('slot', idle);
  assert.equal(slot?.level, 'warning');
  assert.match(slot!.message, /not used by any relay \(inactive\)/);
  assert.match(slot!.fix!, /pg_drop_replication_slot/);
  assert.equal(find('publication', 'public.notes is registered but not in publication')?.level, 'error');
  assert.match(find('publication', 'public.notes')!.fix!, /walcast register public\.notes --channel room/);
  assert.equal(find('publication', 'public.strays is in publication')?.level, 'warning');
  const identity = find('replica identity', 'public.moves');
  assert.ok(identity && identity.level !== 'ok');
  assert.match(identity.fix!, /REPLICA IDENTITY FULL/);
  const [kept] = await db.query(`select count(*)::int as n from pg_replication_slots where slot_name = $1`, [idle]);
  assert.equal(kept!.n, 1, 'the doctor never drops a slot');

  const text = await complete(['doctor']);
  assert.equal(text.code, 1);
  assert.match(text.stdout, /^error +publication: public\.notes/m);
  assert.match(text.stdout, /^ +fix: /m);
  assert.match(text.stdout, /\d+ errors?, \d+ warnings?/);
  await db.query(`select pg_drop_replication_slot($1)`, [idle]);
  await db.query(`drop table strays, moves; select walcast.unregister_table('moves')`).catch(() => {});
});

test('tail prints live events as JSON lines; replay prints the events after a position', async () => {
  const relay = await fx.relay();
  const tail = walcast(['tail', 'cli-room', '--url', relay.url]);
  await waitFor(() => /# subscribed to cli-room/.test(tail.stderr), 20_000, 'tail to subscribe');
  const probe = await TestClient.connect(relay.wsUrl);
  const sub = await probe.subscribe('cli-room');
  const since = sub.type === 'subscribed' ? sub.position : '';
  await db.query(
    `insert into chat_messages (channel_id, sender, body) values ('cli-room', 'a', 'one'), ('cli-room', 'b', 'two')`,
  );
  await waitFor(() => tail.stdout.split('\n').filter(Boolean).length >= 2, 10_000, 'two lines from tail');
  const lines = tail.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; row: { body: string } });
  assert.deepEqual(
    lines.map((l) => [l.type, l.row.body]),
    [
      ['event', 'one'],
      ['event', 'two'],
    ],
  );
  tail.child.kill('SIGINT');
  probe.close();

  const replay = await complete(['replay', 'cli-room', '--since', since, '--url', relay.url]);
  assert.equal(replay.code, 0, replay.stderr);
  assert.deepEqual(
    replay.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { row: { body: string } }).row.body),
    ['one', 'two'],
  );
  const gone = await complete(['replay', 'cli-room', '--since', '0000000000000001-00000001-zzzz', '--url', relay.url]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /cannot replay cli-room/);
  const down = await complete(['replay', 'cli-room', '--since', since, '--url', 'http://127.0.0.1:1']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot reach the relay/);
});

test('tail and replay authenticate with --token (or WALCAST_TOKEN) where the relay requires one', async () => {
  const relay = await fx.relay({ jwtSecret: TEST_SECRET });
  const jwt = await token({ sub: 'ops', channels: ['cli-auth'] });
  const tail = walcast(['tail', 'cli-auth', '--url', relay.url, '--token', jwt]);
  await waitFor(() => /# subscribed to cli-auth/.test(tail.stderr), 20_000, 'tail to subscribe with its token');
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('cli-auth', 'a', 'secret')`);
  await waitFor(() => tail.stdout.includes('"secret"'), 10_000, 'the event');
  tail.child.kill('SIGINT');

  const since = `0000000000000000-00000000-${relay.internals.dispatcher.currentEpoch}`;
  const denied = await complete(['replay', 'cli-auth', '--since', since, '--url', relay.url]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /401/);
  assert.match(denied.stderr, /refused the replay of cli-auth: HTTP 401.*Check the token/);
  const refused = await complete(['tail', 'cli-other', '--url', relay.url, '--token', jwt]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refused the subscription to cli-other: forbidden: .*Check the token/);
  const allowed = await complete(
    ['replay', 'cli-auth', '--since', relay.internals.dispatcher.position(), '--url', relay.url],
    { WALCAST_TOKEN: jwt },
  );
  assert.equal(allowed.code, 0, allowed.stderr);
});
