// Starts the real relay on port 0 against a test database, and real
// WebSocket clients that collect what the relay sends.
import { after, before } from 'node:test';
import { WebSocket, type ClientOptions } from 'ws';
import { startRelay, type Relay, type RelayConfig } from '../../relay/relay.ts';
import { createLogger, silentLogger, type Logger } from '../../relay/log.ts';
import { loadConfig } from '../../relay/config.ts';
import type { EventMessage, ServerMessage, TruncateMessage } from '../../client/protocol.ts';
import { createTestDatabase, uniqueName, type TestDatabase } from './postgres.ts';
import { spawnRelay, type RelayProcess } from './process.ts';

/**
 * What a user gets with nothing set (loadConfig's defaults), then what a test
 * needs to differ: its database, any free port, its own slot, no logs, and
 * no TTL schedule (the tests run the pruner themselves).
 */
export function relayConfig(databaseUrl: string, overrides: Partial<RelayConfig> = {}): RelayConfig {
  const {
    dataDir: _dataDir,
    embeddedPort: _embeddedPort,
    databaseUrl: _unset,
    example: _example,
    ...defaults
  } = loadConfig([], {});
  return {
    ...defaults,
    databaseUrl,
    example: true,
    port: 0,
    slot: uniqueName('walcast_slot'),
    logLevel: 'silent',
    ttlSchedule: '0 0 1 1 *',
    mqttPort: 0, // never the machine's 1883 (a Mosquitto may listen there)
    ...overrides,
  };
}

export async function startTestRelay(
  databaseUrl: string,
  overrides: Partial<RelayConfig> = {},
  log?: Logger,
): Promise<Relay> {
  const logger = log ?? (process.env.WALCAST_TEST_LOG ? createLogger('debug', process.stderr) : silentLogger);
  const relay = await startRelay(relayConfig(databaseUrl, overrides), logger);
  await waitFor(() => relay.internals.stream.state === 'streaming', 10_000, 'replication stream to start');
  return relay;
}

/**
 * The usual set-up of a test file: a fresh database, relays on it (in this
 * process, or spawned as processes) and clients of them, all closed, stopped
 * and dropped after the file's tests. Call at the top level of the file (it
 * registers before/after hooks). `db` may be taken at once (`const { db } =
 * fx`): it forwards to the database the before hook creates.
 */
export function relayFixture(): {
  readonly db: TestDatabase;
  relay(overrides?: Partial<RelayConfig>, url?: string, log?: Logger): Promise<Relay>;
  client(relay: { wsUrl: string }, protocols?: string[], options?: ClientOptions): Promise<TestClient>;
  spawn(args: string[], env?: Record<string, string>, timeoutMs?: number, command?: string[]): Promise<RelayProcess>;
  /**
   * The database, once created. node:test runs a file's top-level before
   * hooks concurrently, so a before hook that reads db.pool, db.url or
   * db.name (not db.query or relay(), which wait) awaits this first.
   */
  ready(): Promise<TestDatabase>;
  /** Run `fn` first when the file's tests are done (before relays stop and the database is dropped). */
  cleanup(fn: () => unknown): void;
} {
  let created: TestDatabase | undefined;
  let creating: Promise<TestDatabase> | undefined;
  // Created on first need: node:test runs a file's top-level before hooks
  // concurrently with the fixture's, so whatever needs the database waits for it.
  const ready = () => (creating ??= createTestDatabase().then((d) => (created = d)));
  const relays: Relay[] = [];
  const clients: TestClient[] = [];
  const procs: RelayProcess[] = [];
  const cleanups: (() => unknown)[] = [];
  before(async () => {
    await ready();
  });
  after(async () => {
    for (const fn of cleanups) await fn();
    for (const c of clients) c.close();
    for (const r of relays) await r.stop(); // stop() is idempotent: tests may have stopped some
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await (await creating?.catch(() => undefined))?.drop();
  });
  const real = (): TestDatabase => {
    if (!created)
      throw new Error('relayFixture: the database is not created yet (await fx.db.query(...) or fx.relay() first)');
    return created;
  };
  const db: TestDatabase = {
    get url() {
      return real().url;
    },
    get name() {
      return real().name;
    },
    get pool() {
      return real().pool;
    },
    query: async (text, values) => (await ready()).query(text, values),
    drop: async () => (await ready()).drop(),
  };
  return {
    db,
    async relay(overrides = {}, url, log) {
      const r = await startTestRelay(url ?? (await ready()).url, overrides, log);
      relays.push(r);
      return r;
    },
    async client(relay, protocols, options) {
      const c = await TestClient.connect(relay.wsUrl, protocols, options);
      clients.push(c);
      return c;
    },
    ready,
    cleanup(fn) {
      cleanups.push(fn);
    },
    async spawn(args, env, timeoutMs, command) {
      const p = await spawnRelay(args, env, timeoutMs, command);
      procs.push(p);
      return p;
    },
  };
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export class TestClient {
  readonly messages: ServerMessage[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(data.toString()) as ServerMessage);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  static async connect(url: string, protocols?: string[], options?: ClientOptions): Promise<TestClient> {
    const ws = new WebSocket(url, protocols, options);
    const client = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** Row events (insert, update, delete, snapshot) received so far. */
  events(): EventMessage[] {
    return this.messages.filter((m): m is EventMessage => m.type === 'event' && m.op !== 'truncate');
  }

  /** Truncate events received so far. */
  truncates(): TruncateMessage[] {
    return this.messages.filter((m): m is TruncateMessage => m.type === 'event' && m.op === 'truncate');
  }

  /** Wait until `pick` finds something among the messages received so far. */
  async waitFor<T>(pick: (msgs: ServerMessage[]) => T | undefined, timeoutMs = 10_000, what = 'a message'): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = pick(this.messages);
      if (found !== undefined && found !== false) return found;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for ${what}; got ${this.messages.length} messages` +
            (this.closed ? `, closed with ${this.closed.code} ${this.closed.reason}` : ', still open') +
            `; first: ${JSON.stringify(this.messages).slice(0, 1000)}; last: ${JSON.stringify(this.messages.at(-1)).slice(0, 600)}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Send a request with an id and wait for the reply carrying that id. */
  async request(msg: Record<string, unknown> & { id: string }): Promise<ServerMessage> {
    this.send(msg);
    return this.waitFor((msgs) => msgs.find((m) => 'id' in m && m.id === msg.id), 10_000, `reply to ${msg.id}`);
  }

  async subscribe(channel: string, extra: Record<string, unknown> = {}): Promise<ServerMessage> {
    const id = `sub-${channel}-${Math.random().toString(36).slice(2)}`;
    const reply = await this.request({ type: 'subscribe', id, channel, ...extra });
    if (reply.type !== 'subscribed') throw new Error(`subscribe ${channel} failed: ${JSON.stringify(reply)}`);
    return reply;
  }

  async waitForEvents(n: number, timeoutMs = 10_000): Promise<EventMessage[]> {
    await this.waitFor(() => (this.events().length >= n ? true : undefined), timeoutMs, `${n} events`);
    return this.events();
  }

  async waitClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    return this.waitFor(() => this.closed, timeoutMs, 'the connection to close');
  }

  close(): void {
    this.ws.close();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
