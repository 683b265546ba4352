// The relay as a real process, for tests that kill it or measure it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MAIN = new URL('../../relay/main.ts', import.meta.url).pathname;

export interface RelayProcess {
  child: ChildProcess;
  wsUrl: string;
  url: string;
  output(): string;
  exited: Promise<number | null>;
  /** Resident memory of the relay process, bytes (from /proc). */
  rss(): number;
}

/**
 * `command`: node's arguments up to the subcommand; by default the sources
 * through tsx (test/integration/compiled.test.ts runs the compiled package).
 */
export async function spawnRelay(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
  command: string[] = ['--import', 'tsx', MAIN],
  /** `start`, or `edge` for an edge relay (test/helpers/edge.ts). */
  subcommand = 'start',
): Promise<RelayProcess> {
  const child = spawn(process.execPath, [...command, subcommand, '--port', '0', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', WALCAST_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + timeoutMs;
  let m: RegExpExecArray | null = null;
  while (!(m = /WebSocket:\s+(ws:\/\/(\S+)\/ws)/.exec(out))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`relay did not start (exit ${child.exitCode}): ${out.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    wsUrl: m[1]!,
    url: `http://${m[2]}`,
    output: () => out,
    exited,
    rss: () => {
      // The tsx loader runs the relay in this process (no second node).
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    },
  };
}
