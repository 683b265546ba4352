// Webhooks against a local HTTP receiver that checks every request's
// signature with an independent implementation (the `standardwebhooks`
// package): delivery in batches, filters, 500 with Retry-After, a relay
// restart in the middle of retrying, 410, dead letters, and the SQL interface.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { relayFixture, waitFor } from '../helpers/relay.ts';

const fx = relayFixture();

interface Received {
  id: string;
  events: { channel: string; table: string; position: string; row: Record<string, unknown> }[];
}

/** A receiver: verifies each request, records it, answers what `answer` says. */
class Receiver {
  readonly received: Received[] = [];
  answer: (r: Received, n: number) => { status: number; headers?: Record<string, string>; body?: string } = () => ({
    status: 204,
  });
  readonly secret = `whsec_${randomBytes(32).toString('base64')}`;
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    const verifier = new Webhook(this.secret);
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        // Throws (500, recorded nowhere) when the signature is wrong.
        const payload = verifier.verify(body, req.headers as Record<string, string>) as { events: Received['events'] };
        const r: Received = { id: req.headers['webhook-id'] as string, events: payload.events };
        this.received.push(r);
        const a = this.answer(r, this.received.length);
        res.writeHead(a.status, a.headers).end(a.body ?? '');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}/hook`;
  }

  bodies(): string[] {
    return this.received.flatMap((r) => r.events.map((e) => String(e.row.body)));
  }

  /** Bodies of the requests answered 2xx, in order. */
  delivered(ok: (r: Received) => boolean): string[] {
    return this.received.filter(ok).flatMap((r) => r.events.map((e) => String(e.row.body)));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }
}

const receivers: Receiver[] = [];
async function receiver(): Promise<Receiver> {
  const r = new Receiver();
  await r.start();
  receivers.push(r);
  return r;
}
after(async () => {
  for (const r of receivers) await r.stop();
});

const fast = { webhookRetryMs: 20 };
async function insert(channel: string, ...bodies: string[]): Promise<void> {
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) select $1, 'x', unnest($2::text[])`, [
    channel,
    bodies,
  ]);
}
async function addWebhook(name: string, r: Receiver, channels = '*', tables: string[] | null = null): Promise<void> {
  await fx.db.query('select walcast.add_webhook($1, $2, $3, $4, $5)', [name, r.url, r.secret, channels, tables]);
}

test('events reach the receiver in commit order, in batches signed per Standard Webhooks; channel and table filters apply; the cursor is stored', async () => {
  const relay = await fx.relay(fast);
  const all = await receiver();
  const rooms = await receiver();
  await addWebhook('all', all);
  await addWebhook('rooms', rooms, 'room-*', ['chat_messages']);
  await relay.internals.sinks.webhooks.load();
  await insert('room-1', 'a', 'b');
  await insert('lobby', 'c');
  await fx.db.query(`insert into presence (channel_id, user_id) values ('room-1', 'u1')`);
  await insert('room-2', 'd');
  await waitFor(() => all.received.flatMap((r) => r.events).length >= 5, 10_000, 'five events at the first receiver');
  await waitFor(() => rooms.bodies().includes('d'), 10_000, 'the last room event');
  assert.deepEqual(
    all.received.flatMap((r) => r.events).map((e) => `${e.table}/${e.channel}`),
    ['chat_messages/room-1', 'chat_messages/room-1', 'chat_messages/lobby', 'presence/room-1', 'chat_messages/room-2'],
  );
  assert.deepEqual(rooms.bodies(), ['a', 'b', 'd'], 'only chat_messages on room-*');
  assert.equal(all.received[0]!.events.length, 2, 'one transaction, one batch');
  assert.equal(all.received[0]!.id, all.received[0]!.events[0]!.position, "webhook-id is the first event's position");
  const last = all.received.at(-1)!.events.at(-1)!.position;
  await waitFor(
    async () =>
      (await fx.db.query<{ cursor: string }>(`select cursor from walcast.webhooks where name = 'all'`))[0]!.cursor ===
      last,
    5000,
    'the cursor',
  );
  const metrics = await (await fetch(`${relay.url}/metrics`)).text();
  assert.match(metrics, /walcast_webhook_delivered_total\{webhook="all"\} 5/);
  await fx.db.query(`select walcast.remove_webhook('all'), walcast.remove_webhook('rooms')`);
  await relay.stop();
});

test('500 with Retry-After: the same batch (same webhook-id) is retried until it is accepted; nothing is lost or repeated', async () => {
  const relay = await fx.relay(fast);
  const r = await receiver();
  r.answer = (_, n) => (n <= 2 ? { status: 500, headers: { 'retry-after': '1' }, body: 'busy' } : { status: 200 });
  await addWebhook('retry', r);
  await relay.internals.sinks.webhooks.load();
  await insert('r', 'one', 'two');
  await waitFor(() => r.received.length >= 3, 15_000, 'two failures and a success');
  assert.deepEqual(
    r.received.slice(0, 3).map((x) => x.id),
    Array(3).fill(r.received[0]!.id),
  );
  await insert('r', 'marker');
  await waitFor(() => r.bodies().includes('marker'), 10_000, 'the marker');
  assert.deepEqual(
    r.delivered((x) => r.received.indexOf(x) >= 2),
    ['one', 'two', 'marker'],
  );
  const metrics = await (await fetch(`${relay.url}/metrics`)).text();
  assert.match(metrics, /walcast_webhook_failed_total\{webhook="retry"\} 2/);
  await fx.db.query(`select walcast.remove_webhook('retry')`);
  await relay.stop();
});

test('a relay restarted in the middle of retrying sends the same batch again, with the same webhook-id, and nothing twice', async () => {
  const slot = `hook_restart_${Date.now()}`;
  // No recovery window: only the gate keeps the unacknowledged batch in the slot.
  const first = await fx.relay({ ...fast, slot, recoveryEvents: 0 });
  const r = await receiver();
  r.answer = () => ({ status: 503 });
  await addWebhook('restart', r);
  await first.internals.sinks.webhooks.load();
  await insert('r', 'before-1', 'before-2');
  await waitFor(() => r.received.length >= 2, 10_000, 'retries');
  await first.stop();
  const failedId = r.received[0]!.id;
  r.answer = () => ({ status: 200 });
  const okFrom = r.received.length;
  const second = await fx.relay({ ...fast, slot, recoveryEvents: 0 });
  await insert('r', 'marker');
  await waitFor(
    () => r.received.slice(okFrom).some((x) => x.events.some((e) => e.row.body === 'marker')),
    10_000,
    'the marker',
  );
  const after = r.received.slice(okFrom);
  assert.equal(after[0]!.id, failedId, 'the batch keeps its webhook-id across the restart');
  assert.deepEqual(
    after.flatMap((x) => x.events.map((e) => e.row.body)),
    ['before-1', 'before-2', 'marker'],
  );
  await fx.db.query(`select walcast.remove_webhook('restart')`);
  await second.stop();
});

test('410 Gone disables the webhook (enabled false, with the reason) and nothing more is sent to it', async () => {
  const relay = await fx.relay(fast);
  const gone = await receiver();
  const witness = await receiver();
  gone.answer = () => ({ status: 410 });
  await addWebhook('gone', gone);
  await addWebhook('witness', witness);
  await relay.internals.sinks.webhooks.load();
  await insert('g', 'one');
  await waitFor(
    async () => (await fx.db.query(`select 1 from walcast.webhooks where name = 'gone' and not enabled`)).length === 1,
    10_000,
    'the webhook disabled',
  );
  const [row] = await fx.db.query<{ disabled_reason: string }>(
    `select disabled_reason from walcast.webhooks where name = 'gone'`,
  );
  assert.match(row!.disabled_reason, /410/);
  await insert('g', 'marker');
  await waitFor(() => witness.bodies().includes('marker'), 10_000, 'the marker at the other webhook');
  assert.equal(gone.received.length, 1, 'one request, answered 410; nothing after');
  await fx.db.query(`select walcast.remove_webhook('gone'), walcast.remove_webhook('witness')`);
  await relay.stop();
});

test('after the last attempt the batch goes to walcast.webhook_dead_letters with its status and body, and delivery goes on', async () => {
  const relay = await fx.relay({ ...fast, webhookMaxAttempts: 3 });
  const r = await receiver();
  r.answer = (x) =>
    x.events.some((e) => e.row.body === 'poison') ? { status: 422, body: 'cannot take poison' } : { status: 200 };
  await addWebhook('dead', r);
  await relay.internals.sinks.webhooks.load();
  await insert('d', 'poison');
  await insert('d', 'after');
  await waitFor(() => r.bodies().includes('after'), 10_000, 'the next batch');
  await waitFor(
    async () => (await fx.db.query(`select 1 from walcast.webhook_dead_letters where webhook = 'dead'`)).length > 0,
    10_000,
    'the dead letter',
  );
  const rows = await fx.db.query<{
    message_id: string;
    attempts: number;
    last_status: number;
    last_body: string;
    events: { row: { body: string } }[];
  }>(
    `select message_id, attempts, last_status, last_body, events from walcast.webhook_dead_letters where webhook = 'dead'`,
  );
  assert.equal(rows.length, 1);
  assert.deepEqual(
    [rows[0]!.attempts, rows[0]!.last_status, rows[0]!.last_body, rows[0]!.events.map((e) => e.row.body)],
    [3, 422, 'cannot take poison', ['poison']],
  );
  assert.equal(rows[0]!.message_id, r.received[0]!.id);
  assert.equal(r.received.filter((x) => x.events.some((e) => e.row.body === 'poison')).length, 3);
  await fx.db.query(`select walcast.remove_webhook('dead')`);
  await relay.stop();
});

test('the SQL interface: add_webhook is idempotent (a second call updates), bad input is refused with SQLSTATE 22023, unknown names with 42704', async () => {
  await fx.relay(fast);
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  await fx.db.query(`select walcast.add_webhook('sql', 'http://127.0.0.1:9/a', $1)`, [secret]);
  await fx.db.query(`select walcast.add_webhook('sql', 'http://127.0.0.1:9/b', $1, 'room-*', array['chat_messages'])`, [
    secret,
  ]);
  const rows = await fx.db.query(`select url, channels, tables, enabled from walcast.webhooks where name = 'sql'`);
  assert.deepEqual(rows, [
    { url: 'http://127.0.0.1:9/b', channels: 'room-*', tables: ['chat_messages'], enabled: true },
  ]);
  await fx.db.query(`select walcast.disable_webhook('sql')`);
  assert.deepEqual(await fx.db.query(`select enabled from walcast.webhooks where name = 'sql'`), [{ enabled: false }]);
  await fx.db.query(`select walcast.enable_webhook('sql')`);
  assert.deepEqual(await fx.db.query(`select enabled from walcast.webhooks where name = 'sql'`), [{ enabled: true }]);
  await assert.rejects(fx.db.query(`select walcast.add_webhook('x', 'http://127.0.0.1:9/', 'not-a-secret')`), {
    code: '22023',
  });
  await assert.rejects(fx.db.query(`select walcast.add_webhook('x', 'ftp://host/', $1)`, [secret]), { code: '22023' });
  await assert.rejects(fx.db.query(`select walcast.remove_webhook('nope')`), { code: '42704' });
  await fx.db.query(`select walcast.remove_webhook('sql')`);
  assert.deepEqual(await fx.db.query(`select 1 from walcast.webhooks where name = 'sql'`), []);
});
