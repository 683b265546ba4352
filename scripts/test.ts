// `npm test` after the typecheck: runs every test file under test/ with
// node's test runner against a real PostgreSQL. With TEST_DATABASE_URL set
// it uses that server (it needs wal_level=logical and free replication
// slots); otherwise it starts an embedded one in a temporary directory and
// removes it afterwards. Arguments narrow the run to files or folders.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../relay/db/embedded.ts';

async function findTests(path: string): Promise<string[]> {
  const info = await stat(path);
  if (info.isFile()) return [path];
  const out: string[] = [];
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) out.push(...(await findTests(full)));
    else if (entry.name.endsWith('.test.ts')) out.push(full);
  }
  return out.sort();
}

async function main(): Promise<number> {
  const roots = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const files = (await Promise.all((roots.length ? roots : ['test']).map((r) => findTests(resolve(r))))).flat();
  let pg: EmbeddedPostgresHandle | undefined;
  let url = process.env.TEST_DATABASE_URL;
  if (!url) {
    const dataDir = await mkdtemp(join(tmpdir(), 'walcast-test-pg-'));
    pg = await startEmbeddedPostgres({ dataDir, port: 0, persistent: false, settings: { fsync: 'off' } });
    url = pg.url;
    console.log(`# test PostgreSQL (embedded): ${pg.psql}`);
  } else {
    console.log('# test PostgreSQL: TEST_DATABASE_URL');
  }
  const concurrency = process.env.TEST_CONCURRENCY ?? '2';
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
    { stdio: 'inherit', env: { ...process.env, TEST_DATABASE_URL: url } },
  );
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward).on('SIGTERM', forward);
  const code = await new Promise<number>((done) => child.on('exit', (c, s) => done(c ?? (s ? 1 : 0))));
  await pg?.stop();
  return code;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
