// Starts the real relay on port 0 against a test database, and real
// WebSocket clients that collect what the relay sends.
import { after, before } from 'node:test';
import { WebSocket, type ClientOptions } from 'ws';
import { startRelay, type Relay, type RelayConfig } from '../../relay/relay.ts';
import { createLogger, silentLogger, type Logger } from '../../relay/log.ts';
import type { ServerMessage } from '../../client/protocol.ts';
import { createTestDatabase, uniqueName, type TestDatabase } from './postgres.ts';

export function relayConfig(databaseUrl: string, overrides: Partial<RelayConfig> = {}): RelayConfig {
  return {
    databaseUrl,
    host: '127.0.0.1',
    port: 0,
    slot: uniqueName('walcast_slot'),
    publication: 'realtime_events',
    logLevel: 'silent',
    example: true,
    maxSubscriptions: 100,
    maxFrameBytes: 65_536,
    sendQueueBytes: 1_048_576,
    slowConsumerMs: 2000,
    heartbeatMs: 15_000,
    ttlSchedule: '0 0 1 1 *', // the tests run the pruner themselves
    recoverySeconds: 300,
    recoveryEvents: 10_000,
    recoveryMaxBytes: 64 * 1024 * 1024,
    shutdownSeconds: 10,
    watchdogMs: 10_000,
    lagWarnSeconds: 30,
    lagWarnBytes: 1024 ** 3,
    standbyPollMs: 500,
    mqttPort: 0, // never the machine's 1883 (a Mosquitto may listen there)
    ...overrides,
  };
}

export async function startTestRelay(databaseUrl: string, overrides: Partial<RelayConfig> = {}, log?: Logger): Promise<Relay> {
  const logger = log ?? (process.env.WALCAST_TEST_LOG ? createLogger('debug', process.stderr) : silentLogger);
  const relay = await startRelay(relayConfig(databaseUrl, overrides), logger);
  await waitFor(() => relay.stream.state === 'streaming', 10_000, 'replication stream to start');
  return relay;
}

/**
 * The usual set-up of a test file: a fresh database, relays on it and
 * clients of them, all closed, stopped and dropped after the file's tests.
 * Call at the top level of the file (it registers before/after hooks).
 */
export function relayFixture(): {
  readonly db: TestDatabase;
  relay(overrides?: Partial<RelayConfig>, url?: string): Promise<Relay>;
  client(relay: Relay): Promise<TestClient>;
} {
  let db: TestDatabase | undefined;
  const relays: Relay[] = [];
  const clients: TestClient[] = [];
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const r of relays) await r.stop(); // stop() is idempotent: tests may have stopped some
    await db?.drop();
  });
  const fixture = {
    get db(): TestDatabase {
      if (!db) throw new Error('relayFixture: the database exists once the before hook ran');
      return db;
    },
    async relay(overrides: Partial<RelayConfig> = {}, url?: string): Promise<Relay> {
      const r = await startTestRelay(url ?? fixture.db.url, overrides);
      relays.push(r);
      return r;
    },
    async client(relay: Relay): Promise<TestClient> {
      const c = await TestClient.connect(relay.wsUrl);
      clients.push(c);
      return c;
    },
  };
  return fixture;
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
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

  events(): Extract<ServerMessage, { type: 'event' }>[] {
    return this.messages.filter((m): m is Extract<ServerMessage, { type: 'event' }> => m.type === 'event');
  }

  /** Wait until `pick` finds something among the messages received so far. */
  async waitFor<T>(pick: (msgs: ServerMessage[]) => T | undefined, timeoutMs = 10_000, what = 'a message'): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = pick(this.messages);
      if (found !== undefined && found !== false) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages).slice(0, 2000)}`);
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

  async waitForEvents(n: number, timeoutMs = 10_000): Promise<Extract<ServerMessage, { type: 'event' }>[]> {
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
