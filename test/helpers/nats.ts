// A real nats-server with JetStream for the change-stream tests: Debian's
// binary (`npm test` installs it where missing; NATS_SERVER_PATH overrides),
// on a free port of 127.0.0.1, with its store in a temporary directory. Never
// the machine's own server on 4222.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';

const BINARY = process.env.NATS_SERVER_PATH ?? 'nats-server';

export interface NatsServer {
  url: string;
  port: number;
  /** The running server's process id (benchmarks read its CPU time). */
  readonly pid: number;
  /** Kill the server (SIGKILL: nothing is flushed on the way out) and start it again on the same port and store. */
  restart(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** `args`: more nats-server options (authentication, TLS), after the defaults. */
export async function startNatsServer(opts: { args?: string[] } = {}): Promise<NatsServer> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'walcast-test-nats-'));
  let child: ChildProcess | undefined;
  const start = async () => {
    const proc = spawn(BINARY, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir, ...(opts.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const failed = new Promise<never>((_, reject) => {
      proc.on('error', (err) =>
        reject(
          new Error(
            `cannot run ${BINARY} (${err.message}): install Debian's nats-server (apt-get install nats-server) or set NATS_SERVER_PATH`,
          ),
        ),
      );
      proc.on('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${out.slice(-2000)}`)));
    });
    const ready = (async () => {
      while (!out.includes('Server is ready')) await new Promise((r) => setTimeout(r, 20));
    })();
    await Promise.race([ready, failed]);
  };
  const kill = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid ?? 0;
    },
    start,
    kill,
    restart: async () => {
      await kill();
      await start();
    },
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface StoredEvent {
  seq: number;
  /** When JetStream stored it, ms since 1970. */
  storedMs: number;
  subject: string;
  msgId: string;
  headers: Record<string, string>;
  event: Record<string, unknown> & { position: string; row: Record<string, unknown> };
}

/** Every message of `stream` from the first, in stream order, read by an ordered consumer. */
export async function readStream(
  url: string,
  stream: string,
  filter?: string,
  options: Partial<ConnectionOptions> = {},
): Promise<StoredEvent[]> {
  const nc: NatsConnection = await connect({ servers: url, ...options });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    const out: StoredEvent[] = [];
    if (info.state.messages === 0) return out;
    const consumer = await jetstream(nc).consumers.get(stream, filter ? { filter_subjects: filter } : {});
    const pending = filter ? (await jsm.streams.info(stream, { subjects_filter: filter })).state.subjects : undefined;
    const expected = pending ? Object.values(pending).reduce((a, b) => a + b, 0) : info.state.messages;
    if (expected === 0) return out;
    const messages = await consumer.consume();
    for await (const m of messages) {
      out.push(toStored(m));
      if (out.length >= expected) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

function toStored(m: JsMsg): StoredEvent {
  const headers: Record<string, string> = {};
  for (const k of m.headers?.keys() ?? []) headers[k] = m.headers!.get(k);
  return {
    seq: m.seq,
    storedMs: m.info.timestampNanos / 1e6,
    subject: m.subject,
    msgId: headers['Nats-Msg-Id'] ?? '',
    headers,
    event: m.json(),
  };
}
