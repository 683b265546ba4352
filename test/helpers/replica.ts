// A PostgreSQL primary with a streaming read replica, for the tests of an
// edge whose DATABASE_URL is a replica (docs/scaling.md). The embedded
// PostgreSQL has no pg_basebackup, so both servers run Debian's binaries
// (package `postgresql`; `npm test` installs it where missing;
// PG_BIN_DIR overrides), on free ports of 127.0.0.1, in a temporary
// directory. Never the machine's own server on 5432.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../relay/db/embedded.ts';

export interface PrimaryWithReplica {
  primaryUrl: string;
  replicaUrl: string;
  /** Stop replaying WAL on the replica (it still receives it): reads there fall behind the primary. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  stop(): Promise<void>;
}

function binDir(): string {
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'pg_basebackup')))
    : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest)
    throw new Error(
      "no PostgreSQL server binaries with pg_basebackup: install Debian's postgresql (apt-get install postgresql) or set PG_BIN_DIR",
    );
  return join(root, newest, 'bin');
}

// PostgreSQL refuses to run as root: as root, run its programs as the
// `postgres` system user that Debian's package creates.
function run(dir: string, program: string, args: string[]): void {
  const bin = join(binDir(), program);
  const asRoot = process.getuid?.() === 0;
  const out = asRoot
    ? spawnSync('runuser', ['-u', 'postgres', '--', bin, ...args], { cwd: dir, encoding: 'utf8' })
    : spawnSync(bin, args, { cwd: dir, encoding: 'utf8' });
  if (out.status !== 0)
    throw new Error(`${program} ${args.join(' ')} failed: ${out.stderr || out.stdout || out.error}`);
}

async function query(url: string, text: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

export async function startPrimaryWithReplica(): Promise<PrimaryWithReplica> {
  const dir = await mkdtemp(join(tmpdir(), 'walcast-test-replica-'));
  chmodSync(dir, 0o777); // the postgres user writes its data directories here
  if (process.getuid?.() === 0) spawnSync('chown', ['postgres', dir]);
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const primary = join(dir, 'primary');
  const replica = join(dir, 'replica');
  const settings = (port: number) =>
    [
      `-p ${port}`,
      '-c listen_addresses=127.0.0.1',
      `-c unix_socket_directories=${dir}`,
      '-c wal_level=logical',
      '-c max_replication_slots=10',
      '-c max_wal_senders=10',
      '-c hot_standby=on',
      '-c fsync=off',
    ].join(' ');
  const start = (data: string, port: number) =>
    run(dir, 'pg_ctl', ['-D', data, '-o', settings(port), '-l', `${data}.log`, '-w', '-t', '60', 'start']);
  const stop = (data: string) => {
    if (existsSync(join(data, 'postmaster.pid'))) run(dir, 'pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
  };
  try {
    run(dir, 'initdb', ['-D', primary, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C']);
    start(primary, primaryPort);
    run(dir, 'pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primaryPort),
      '-U',
      'postgres',
      '-D',
      replica,
      '-R',
      '-X',
      'stream',
    ]);
    start(replica, replicaPort);
  } catch (err) {
    stop(replica);
    stop(primary);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const replicaUrl = `postgres://postgres@127.0.0.1:${replicaPort}/postgres`;
  return {
    primaryUrl: `postgres://postgres@127.0.0.1:${primaryPort}/postgres`,
    replicaUrl,
    pauseReplay: () => query(replicaUrl, 'SELECT pg_wal_replay_pause()'),
    resumeReplay: () => query(replicaUrl, 'SELECT pg_wal_replay_resume()'),
    async stop() {
      stop(replica);
      stop(primary);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
