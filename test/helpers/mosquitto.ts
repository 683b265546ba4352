// Debian's mosquitto for the ingest tests and the ingest-mqtt benchmark: on a
// free port of 127.0.0.1, in a temporary directory, never the machine's 1883.
import { execFile, spawn } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface Mosquitto {
  port: number;
  url: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Its log so far ("New client connected from … as <client id>" lines). */
  log(): Promise<string>;
}

export interface MosquittoAuth {
  /** Username → password, written with mosquitto_passwd; anonymous clients are then refused. */
  users: Record<string, string>;
  /**
   * Username → the topic filters it may subscribe to (any other SUBSCRIBE gets SUBACK 0x87 Not
   * authorized); users not named may subscribe to anything. Mosquitto 2.0's acl_file never refuses a
   * SUBSCRIBE (it filters deliveries), so this uses its dynamic security plugin instead of a password file.
   */
  subscribe?: Record<string, string[]>;
}

/**
 * Debian's mosquitto on a free port of 127.0.0.1, in a temporary directory
 * (never the machine's 1883), with the settings docs/ingest.md asks for;
 * `extra` lines are added to its configuration; `auth` makes it require a
 * username and password (and apply an ACL). The caller stops it
 * (fx.cleanup(broker.stop)): node:test's after() called in a before hook
 * would run at the end of that hook.
 */
export async function startMosquitto(extra: string[] = [], auth?: MosquittoAuth): Promise<Mosquitto> {
  if (!existsSync(MOSQUITTO)) {
    throw new Error(
      `${MOSQUITTO} not found: the MQTT ingest tests need Debian's mosquitto (apt-get install -y mosquitto; npm test installs it)`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'walcast-test-mosquitto-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const access: string[] = [];
  if (auth?.subscribe) {
    const file = join(dir, 'dynamic-security.json');
    await writeFile(file, JSON.stringify(dynsecConfig(auth.users, auth.subscribe)));
    await chmod(file, 0o666);
    access.push(`plugin ${DYNSEC}`, `plugin_opt_config_file ${file}`);
  } else if (auth) {
    const passwords = join(dir, 'passwords');
    let create = true;
    for (const [user, password] of Object.entries(auth.users)) {
      await execFileAsync(MOSQUITTO_PASSWD, ['-b', ...(create ? ['-c'] : []), passwords, user, password]);
      create = false;
    }
    // Read by mosquitto after it dropped to the user mosquitto.
    await chmod(passwords, 0o644);
    access.push(`password_file ${passwords}`);
  }
  const lines = [
    `listener ${port} 127.0.0.1`,
    `allow_anonymous ${auth ? 'false' : 'true'}`,
    ...access,
    'persistence false',
    `log_dest file ${join(dir, 'mosquitto.log')}`,
    'log_type notice',
    'connection_messages true',
    'max_inflight_messages 1000',
    'max_queued_messages 100000',
    ...extra,
  ];
  await writeFile(conf, `${lines.join('\n')}\n`);
  // Run as root, mosquitto drops to the user mosquitto: its log file must be writable for it.
  await writeFile(join(dir, 'mosquitto.log'), '');
  await chmod(join(dir, 'mosquitto.log'), 0o666);
  await chmod(dir, 0o711);
  let child = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
  let exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitForPort(port);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    })());
  // Stopped and started again on the same port: without persistence, every session is gone.
  const restart = async () => {
    child.kill('SIGTERM');
    await exited;
    child = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
    exited = new Promise<void>((r) => child.once('exit', () => r()));
    await waitForPort(port);
  };
  const log = () => readFile(join(dir, 'mosquitto.log'), 'utf8').catch(() => '');
  return { port, url: `mqtt://127.0.0.1:${port}`, stop, restart, log };
}

const MOSQUITTO = '/usr/sbin/mosquitto';
const MOSQUITTO_PASSWD = '/usr/bin/mosquitto_passwd';
const DYNSEC = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';
const execFileAsync = promisify(execFile);

/** A dynamic-security.json: every user may publish anywhere; subscribe only where `subscribe` allows. */
function dynsecConfig(users: Record<string, string>, subscribe: Record<string, string[]>): object {
  const acl = (acltype: string, topic: string) => ({ acltype, topic, priority: 0, allow: true });
  return {
    defaultACLAccess: { publishClientSend: false, publishClientReceive: true, subscribe: false, unsubscribe: true },
    clients: Object.entries(users).map(([username, password]) => {
      // The plugin's hash: PBKDF2-HMAC-SHA512, 64 bytes.
      const salt = randomBytes(12);
      const hash = pbkdf2Sync(password, salt, 101, 64, 'sha512');
      return {
        username,
        password: hash.toString('base64'),
        salt: salt.toString('base64'),
        iterations: 101,
        roles: [{ rolename: `role-${username}` }],
      };
    }),
    groups: [],
    roles: Object.keys(users).map((username) => ({
      rolename: `role-${username}`,
      acls: [
        acl('publishClientSend', '#'),
        ...(subscribe[username] ?? ['#']).map((topic) => acl('subscribePattern', topic)),
      ],
    })),
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`mosquitto did not listen on ${port}`);
}
