// Debian's mosquitto for the ingest tests and the ingest-mqtt benchmark: on a
// free port of 127.0.0.1, in a temporary directory, never the machine's 1883.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Mosquitto {
  port: number;
  url: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Its log so far ("New client connected from … as <client id>" lines). */
  log(): Promise<string>;
}

/**
 * Debian's mosquitto on a free port of 127.0.0.1, in a temporary directory
 * (never the machine's 1883), with the settings docs/ingest.md asks for;
 * `extra` lines are added to its configuration. The caller stops it
 * (fx.cleanup(broker.stop)): node:test's after() called in a before hook
 * would run at the end of that hook.
 */
export async function startMosquitto(extra: string[] = []): Promise<Mosquitto> {
  if (!existsSync(MOSQUITTO)) {
    throw new Error(
      `${MOSQUITTO} not found: the MQTT ingest tests need Debian's mosquitto (apt-get install -y mosquitto; npm test installs it)`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'walcast-test-mosquitto-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
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
