// `npm test` after the typecheck: runs every test file under test/ with
// node's test runner against a real PostgreSQL. With TEST_DATABASE_URL set
// it uses that server (it needs wal_level=logical and free replication
// slots); otherwise it starts an embedded one in a temporary directory and
// removes it afterwards. Arguments narrow the run to files or folders.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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

// The browser tests drive Debian's Chromium (playwright's downloads are not
// reachable here), the change-stream tests Debian's nats-server (with
// JetStream), the MQTT tests Debian's mosquitto_sub / mosquitto_pub (and the
// MQTT benchmark its mosquitto broker, on a free port in a temporary
// directory, never the machine's 1883). On a fresh Debian machine each is
// installed once, so that `npm test` needs no other set-up; elsewhere the
// test says what to do.
function ensureDebianPackages(packages: string[], present: boolean, neededBy: RegExp, files: string[]): void {
  if (present || !files.some((f) => neededBy.test(f))) return;
  if (!existsSync('/usr/bin/apt-get')) return;
  const root = process.getuid?.() === 0;
  if (!root && spawnSync('sudo', ['-n', 'true']).status !== 0) return;
  const run = (args: string[]) =>
    spawnSync(root ? args[0]! : 'sudo', root ? args.slice(1) : args, { stdio: 'inherit' }).status === 0;
  const list = packages.join(' ');
  console.log(`# installing Debian's ${list} for the tests that need it: apt-get install -y ${list}`);
  if (!run(['apt-get', 'update', '-qq']) || !run(['apt-get', 'install', '-y', '-qq', ...packages])) {
    console.log(`# ${list} could not be installed; the tests that need it will say how to provide it`);
  }
}

function onPath(binary: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${binary}`]).status === 0;
}

async function main(): Promise<number> {
  const roots = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const files = (await Promise.all((roots.length ? roots : ['test']).map((r) => findTests(resolve(r))))).flat();
  ensureDebianPackages(
    ['chromium'],
    Boolean(process.env.CHROMIUM_PATH) || existsSync('/usr/bin/chromium'),
    /test\/browser/,
    files,
  );
  ensureDebianPackages(
    ['nats-server'],
    Boolean(process.env.NATS_SERVER_PATH) || onPath('nats-server'),
    /streams|webhooks|edge/,
    files,
  );
  ensureDebianPackages(
    ['mosquitto-clients', 'mosquitto'],
    onPath('mosquitto_sub') && existsSync('/usr/sbin/mosquitto'),
    /mqtt/,
    files,
  );
  // An edge on a read replica needs pg_basebackup, which the embedded server lacks.
  ensureDebianPackages(['postgresql'], existsSync('/usr/lib/postgresql'), /replica/, files);
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
    // A hung test fails after 3 minutes instead of hanging CI (a test may set its own, longer timeout).
    [
      '--import',
      'tsx',
      '--test',
      `--test-concurrency=${concurrency}`,
      '--test-timeout=180000',
      '--test-reporter=spec',
      ...files,
    ],
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
