// The systems a fan-out or connection run measures, each a child process
// whose CPU and memory are read from /proc: walcast's relay, the plain ws
// baselines, and the reference alternatives.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { dropSlot, type BenchDatabase } from './env.ts';
import { DROP_TRIGGER, INSTALL_TRIGGER } from '../alternatives/notify-relay.ts';

export type SystemName = 'walcast' | 'ws-naive' | 'ws-coalesce' | 'listen-notify' | 'polling';
export const ALL_SYSTEMS: SystemName[] = ['walcast', 'ws-coalesce', 'ws-naive', 'listen-notify', 'polling'];

export interface Target {
  name: SystemName;
  pid: number;
  wsUrl: string;
  /** Baselines make their own frames: the rate goes to them, not to PostgreSQL. */
  setRate?: (rowsPerSecond: number) => void;
  stop(): Promise<void>;
}

const here = (p: string) => new URL(p, import.meta.url).pathname;

export async function startTarget(
  name: SystemName,
  db: BenchDatabase,
  layout: { channels: number; prefix: string },
  env: Record<string, string> = {},
): Promise<Target> {
  const slot = `bench_${name.replace('-', '_')}_${randomBytes(3).toString('hex')}`;
  switch (name) {
    case 'walcast': {
      const relay = await spawnWalcast(db.url, slot, env);
      return {
        name,
        pid: relay.pid,
        wsUrl: relay.url,
        stop: async () => {
          await relay.stop('SIGTERM');
          await dropSlot(db.pool, slot);
        },
      };
    }
    case 'ws-naive':
    case 'ws-coalesce': {
      const mode = name === 'ws-naive' ? 'naive' : 'coalesce';
      const child = await forkChild(here('../baseline/ws-push.ts'), {
        BASELINE_MODE: mode,
        BASELINE_CHANNELS: String(layout.channels),
        BASELINE_PREFIX: layout.prefix,
      });
      return {
        name,
        pid: child.pid,
        wsUrl: child.url,
        setRate: (rate) => child.send({ cmd: 'rate', rate }),
        stop: child.stop,
      };
    }
    case 'listen-notify': {
      await db.pool.query(INSTALL_TRIGGER);
      const child = await forkChild(here('../alternatives/notify-relay.ts'), { DATABASE_URL: db.url });
      return {
        name,
        pid: child.pid,
        wsUrl: child.url,
        stop: async () => {
          await child.stop();
          await db.pool.query(DROP_TRIGGER);
        },
      };
    }
    case 'polling': {
      const child = await forkChild(here('../alternatives/poll-relay.ts'), { DATABASE_URL: db.url, POLL_SLOT: slot });
      return {
        name,
        pid: child.pid,
        wsUrl: child.url,
        stop: async () => {
          await child.stop('SIGTERM');
          await dropSlot(db.pool, slot);
        },
      };
    }
  }
}

interface Forked {
  pid: number;
  url: string;
  send(msg: object): void;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

async function forkChild(file: string, env: Record<string, string>): Promise<Forked> {
  const child = fork(file, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    child.on('message', (m: { type: string; url: string }) => m.type === 'ready' && resolve(m.url));
    child.once('exit', (code) => reject(new Error(`${file} exited (${code}) before it was ready`)));
  });
  return { pid: child.pid!, url, send: (msg) => child.send(msg), stop: stopper(child, exited) };
}

const MAIN = new URL('../../relay/main.ts', import.meta.url).pathname;

/**
 * The relay as a child process (like test/helpers/process.ts, plus node
 * flags: BENCH_RELAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"
 * profiles it; --cpu-prof is not allowed in NODE_OPTIONS).
 */
export async function spawnWalcast(
  databaseUrl: string,
  slot: string,
  env: Record<string, string>,
  /** `start`, or `edge` for an edge relay (scenarios/edges.ts). */
  command = 'start',
): Promise<Forked> {
  const nodeArgs = (process.env.BENCH_RELAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--import', 'tsx', MAIN, command, '--port', '0', '--slot', slot],
    {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        DATABASE_URL: databaseUrl,
        WALCAST_LOG_LEVEL: 'warn',
        // Every bench client connects from 127.0.0.1: the per-address limit
        // (1,000 by default, a defence against one abusive host) would refuse
        // the 5,000- and 10,000-connection cells with HTTP 429.
        WALCAST_MAX_CONNECTIONS_PER_IP: '1000000',
        WALCAST_MAX_CONNECTIONS: '1000000',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-10_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-10_000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 60_000;
  let m: RegExpExecArray | null;
  while (!(m = /WebSocket:\s+(ws:\/\/\S+\/ws)/.exec(out))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`relay did not start: ${out.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid!, url: m[1]!, send: () => {}, stop: stopper(child, exited) };
}

function stopper(child: ChildProcess, exited: Promise<void>): Forked['stop'] {
  return async (signal = 'SIGKILL') => {
    child.kill(signal);
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  };
}
