// The parent's handle on a fleet process (fleet-child.ts).
import { fork, type ChildProcess } from 'node:child_process';
import type { FleetConfig, FleetReport } from './fleet-child.ts';

const CHILD = new URL('./fleet-child.ts', import.meta.url).pathname;

export interface Fleet {
  pid: number;
  reset(): Promise<void>;
  report(): Promise<FleetReport>;
  /** Frames received since the last reset. */
  count(): Promise<number>;
  stop(): Promise<void>;
}

/** `child`: another fleet program with the same IPC (mqtt-fleet-child.ts). */
export async function startFleet(config: FleetConfig | object, timeoutMs = 120_000, child_ = CHILD): Promise<Fleet> {
  const child = fork(child_, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, FLEET_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitMessage(child, 'ready', timeoutMs);
  const ask = async <T>(cmd: string, type: string): Promise<T> => {
    child.send({ cmd });
    return (await waitMessage(child, type, 30_000)) as T;
  };
  return {
    pid: child.pid!,
    reset: async () => void (await ask('reset', 'reset')),
    report: async () => (await ask<{ report: FleetReport }>('report', 'report')).report,
    count: async () => (await ask<{ received: number }>('count', 'count')).received,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

function waitMessage(child: ChildProcess, type: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`fleet: no '${type}' within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (msg: Record<string, unknown>) => {
      if (msg.type !== type) return;
      cleanup();
      resolve(msg);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`fleet exited (${code}) while waiting for '${type}'`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}
