// An edge relay in this process, beside a slot relay with the JetStream
// sink, on a real nats-server: clients of the edge get what clients of the
// slot relay get (same frames, same positions), resume on the edge from
// before it started (read from the stream), take snapshots, and are refused
// publishing without WALCAST_PUBLISH_DATABASE_URL.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import type { NatsServer } from '../helpers/nats.ts';
import { edgeFixture, startTestEdge } from '../helpers/edge.ts';
import type { EdgeRelay } from '../../relay/edge/edge.ts';
import type { Relay, RelayConfig } from '../../relay/relay.ts';
import { PUBLISH_REFUSAL } from '../../relay/edge/edge.ts';

const fx = relayFixture();
const { db } = fx;
const deployment = edgeFixture(fx);
const { edges } = deployment;
let nats: NatsServer;
let relay: Relay;
before(async () => {
  await deployment.ready();
  ({ nats, relay } = deployment);
});
const edge = (overrides: Partial<RelayConfig> = {}): Promise<EdgeRelay> => deployment.edge(overrides);

async function insert(channel: string, body: string): Promise<void> {
  await db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'test', $2)`, [channel, body]);
}

test('clients of an edge get the same frames, with the same positions, as clients of the slot relay', async () => {
  const e = await edge();
  const onEdge = await fx.client(e);
  const onSlot = await fx.client(relay);
  await onEdge.subscribe('same');
  await onSlot.subscribe('same');
  for (let i = 0; i < 20; i++) await insert('same', `m${i}`);
  await db.query(`update chat_messages set body = body || '!' where channel_id = 'same' and body = 'm3'`);
  const fromSlot = await onSlot.waitForEvents(21);
  const fromEdge = await onEdge.waitForEvents(21);
  assert.deepEqual(fromEdge, fromSlot);
  assert.deepEqual(
    fromEdge.map((m) => m.row.body),
    [...Array.from({ length: 20 }, (_, i) => `m${i}`), 'm3!'],
  );
});

test('a position from the slot relay resumes on an edge started after it: the missed events come from the stream', async () => {
  const onSlot = await fx.client(relay);
  const sub = await onSlot.subscribe('late');
  assert.equal(sub.type, 'subscribed');
  await insert('late', 'a');
  const [first] = await onSlot.waitForEvents(1);
  await insert('late', 'b');
  await insert('other', 'x');
  await insert('late', 'c');
  await onSlot.waitForEvents(3);
  // The edge starts after all of it: its own window is empty.
  const e = await edge();
  const c = await fx.client(e);
  const reply = await c.subscribe('late', { since: first!.position });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
  await insert('late', 'd');
  await c.waitForEvents(3);
  await insert('late', 'marker');
  await c.waitFor((m) => m.some((x) => x.type === 'event' && 'row' in x && x.row?.body === 'marker'));
  assert.deepEqual(
    c.events().map((m) => m.row.body),
    ['b', 'c', 'd', 'marker'],
  );
  assert.deepEqual(c.events().slice(0, 2), onSlot.events().slice(1, 3), 'the same frames as the slot relay sent');
});

test('a position of another epoch, or one the stream no longer covers, resumes with recovered:false', async () => {
  const e = await edge();
  const c = await fx.client(e);
  const reply = await c.subscribe('gone', { since: '0000000000000001-00000001-zz' });
  assert.equal(reply.type === 'subscribed' && reply.recovered, false);
});

test('snapshot on an edge: every row once, no gap between the rows and live events', async () => {
  const e = await edge();
  for (let i = 0; i < 5; i++) await insert('snap', `s${i}`);
  const c = await fx.client(e);
  // Rows keep coming while the snapshot is read.
  let stop = false;
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      await insert('snap', `live${i}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await new Promise((r) => setTimeout(r, 30));
  const reply = await c.subscribe('snap', { snapshot: true, limit: 1000 });
  assert.equal(reply.type, 'subscribed');
  await new Promise((r) => setTimeout(r, 100));
  stop = true;
  await writer;
  await insert('snap', 'marker');
  await c.waitFor((m) => m.some((x) => x.type === 'event' && 'row' in x && x.row?.body === 'marker'), 10_000);
  const rows = (
    await db.query<{ body: string }>(`select body from chat_messages where channel_id = 'snap' order by id`)
  ).map((r) => r.body);
  assert.deepEqual(
    c.events().map((m) => m.row.body),
    rows,
    'snapshot rows then live events: each row exactly once, in order',
  );
});

test('an edge behind its stream: rows the snapshot already has are not sent again when the stream brings them', async () => {
  const e = await edge();
  const early = await fx.client(e);
  await early.subscribe('behind');
  await insert('behind', 'old');
  await early.waitForEvents(1);
  // The edge stops routing: these rows are committed (the snapshot sees them) but not yet routed.
  e.internals.source.pause();
  for (let i = 0; i < 5; i++) await insert('behind', `r${i}`);
  const late = await fx.client(e);
  const reply = await late.subscribe('behind', { snapshot: true });
  assert.equal(reply.type === 'subscribed' && reply.snapshot, 6);
  e.internals.source.resume();
  await insert('behind', 'marker');
  await late.waitFor((m) => m.some((x) => x.type === 'event' && 'row' in x && x.row?.body === 'marker'));
  assert.deepEqual(
    late.events().map((m) => [m.row.body, m.op]),
    [...['old', 'r0', 'r1', 'r2', 'r3', 'r4'].map((b) => [b, 'snapshot']), ['marker', 'insert']],
  );
  await early.waitFor((m) => m.some((x) => x.type === 'event' && 'row' in x && x.row?.body === 'marker'));
  assert.deepEqual(
    early.events().map((m) => m.row.body),
    ['old', 'r0', 'r1', 'r2', 'r3', 'r4', 'marker'],
  );
});

test('publishing on an edge without WALCAST_PUBLISH_DATABASE_URL is refused with publishing_disabled', async () => {
  const e = await edge();
  const c = await fx.client(e);
  const reply = await c.request({
    type: 'publish',
    id: 'p1',
    table: 'chat_messages',
    row: { channel_id: 'x', sender: 'a', body: 'b' },
  });
  assert.equal(reply.type, 'error');
  assert.equal(reply.type === 'error' && reply.code, 'publishing_disabled');
  assert.equal(reply.type === 'error' && reply.message, PUBLISH_REFUSAL);
});

test('publishing on an edge with WALCAST_PUBLISH_DATABASE_URL inserts into the primary, and the row comes back through the stream', async () => {
  const e = await edge({ publishDatabaseUrl: db.url });
  const c = await fx.client(e);
  await c.subscribe('pub');
  const reply = await c.request({
    type: 'publish',
    id: 'p2',
    table: 'chat_messages',
    row: { channel_id: 'pub', sender: 'a', body: 'hi' },
  });
  assert.equal(reply.type, 'published', JSON.stringify(reply));
  const [ev] = await c.waitForEvents(1);
  assert.equal(ev!.row.body, 'hi');
});

test('/readyz on an edge reports its consumer state and lag', async () => {
  const e = await edge();
  await insert('metrics', 'one');
  await waitFor(() => e.internals.source.counters.messages > 0, 10_000, 'a message read');
  const res = await fetch(`${e.url}/readyz`);
  const body = (await res.json()) as {
    status: string;
    role: string;
    consumer: { state: string; lag: { messages: number } };
  };
  assert.equal(res.status, 200);
  assert.equal(body.role, 'edge');
  assert.equal(body.consumer.state, 'consuming');
  assert.equal(typeof body.consumer.lag.messages, 'number');
  const metrics = await (await fetch(`${e.url}/metrics`)).text();
  assert.match(metrics, /walcast_edge_consumer_state\{state="consuming"\} 1/);
  assert.match(metrics, /walcast_deliveries_total \d+/);
  assert.match(metrics, /walcast_commit_to_dispatch_seconds_count [1-9]/);
});

test('an edge waits for a stream that does not exist yet, and says why in /readyz', async () => {
  const { startEdge } = await import('../../relay/edge/edge.ts');
  const { relayConfig } = await import('../helpers/relay.ts');
  const { silentLogger } = await import('../../relay/log.ts');
  const e = await startEdge(
    relayConfig(db.url, { natsUrl: nats.url, natsStream: 'nothing_here', slot: relay.slot }),
    silentLogger,
  );
  edges.push(e);
  await waitFor(async () => (await fetch(`${e.url}/readyz`)).status === 503, 5000, '503');
  const body = (await (await fetch(`${e.url}/readyz`)).json()) as { reasons: string[] };
  assert.match(body.reasons.join(' '), /nothing_here does not exist yet/);
  const ws = await fetch(`${e.url}/ws`, { headers: { connection: 'upgrade', upgrade: 'websocket' } }).catch(
    () => undefined,
  );
  assert.ok(ws === undefined || ws.status === 503 || ws.status >= 400);
});

test('the SDK given a dead URL and an edge connects to the edge, and its positions resume on the slot relay', async () => {
  const { createClient } = await import('../../client/node.ts');
  const e = await edge();
  const rows: string[] = [];
  const client = createClient(['ws://127.0.0.1:1/ws', e.wsUrl], { backoff: { initialMs: 20, maxMs: 50 } });
  fx.cleanup(() => client.close());
  const sub = client.subscribe('sdk-edge', {}, (ev) => {
    if (ev.op !== 'truncate') rows.push(String(ev.row.body));
  });
  await sub.ready;
  assert.equal(client.url, e.wsUrl);
  await insert('sdk-edge', 'one');
  await waitFor(() => rows.length === 1, 10_000, 'the row');
  const onSlot = await fx.client(relay);
  await insert('sdk-edge', 'two');
  await waitFor(() => rows.length === 2, 10_000, 'the second row');
  const reply = await onSlot.subscribe('sdk-edge', { since: sub.position });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
});

test('an edge serves, snapshots and resumes as the read-only role of docs/scaling.md', async () => {
  const { readFileSync } = await import('node:fs');
  const { uniqueName } = await import('../helpers/postgres.ts');
  const doc = readFileSync(new URL('../../docs/scaling.md', import.meta.url), 'utf8');
  const block = /```sql\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf('<!-- edge-role-sql')))![1]!;
  const role = uniqueName('walcast_edge');
  const password = uniqueName('pw');
  await db.query(
    block
      .replaceAll('walcast_edge', role)
      .replaceAll("'change-me'", `'${password}'`)
      .replace('ON DATABASE app', `ON DATABASE ${db.name}`),
  );
  fx.cleanup(async () => {
    await db.query(`DROP OWNED BY ${role}`).catch(() => {});
    await db.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
  });
  const url = new URL(db.url);
  url.username = role;
  url.password = password;
  await insert('ro', 'before');
  const e = await startTestEdge(url.toString(), nats.url, { slot: relay.slot });
  edges.push(e);
  const c = await fx.client(e);
  const reply = await c.subscribe('ro', { snapshot: true });
  assert.equal(reply.type === 'subscribed' && reply.snapshot, 1);
  await insert('ro', 'live');
  await c.waitForEvents(2);
  assert.deepEqual(
    c.events().map((m) => [m.op, m.row.body]),
    [
      ['snapshot', 'before'],
      ['insert', 'live'],
    ],
  );
  const [ro] = await db.query<{ rolsuper: boolean; rolreplication: boolean }>(
    'select rolsuper, rolreplication from pg_roles where rolname = $1',
    [role],
  );
  assert.deepEqual(ro, { rolsuper: false, rolreplication: false });
});

test('a TRUNCATE reaches an edge client on its channel, live and when resuming from the stream', async () => {
  const onSlot = await fx.client(relay);
  await onSlot.subscribe('tr');
  await insert('tr', 'a');
  const [a] = await onSlot.waitForEvents(1);
  const e = await edge();
  const live = await fx.client(e);
  await live.subscribe('tr');
  await db.query('truncate chat_messages');
  await insert('tr', 'b');
  await live.waitFor((m) => m.some((x) => x.type === 'event' && 'row' in x && x.row?.body === 'b'));
  const liveTruncates = live.truncates();
  assert.equal(liveTruncates.length, 1);
  assert.equal(liveTruncates[0]!.channel, 'tr');
  assert.equal(liveTruncates[0]!.table, 'chat_messages');
  // Resumed from before the truncate on a fresh edge: read back from the stream, the truncate in its place.
  const later = await edge();
  const c = await fx.client(later);
  const reply = await c.subscribe('tr', { since: a!.position });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
  await c.waitFor((m) => m.some((x) => x.type === 'event' && 'row' in x && x.row?.body === 'b'));
  assert.deepEqual(
    c.messages.filter((m) => m.type === 'event').map((m) => (m.type === 'event' ? m.op : '')),
    ['truncate', 'insert'],
  );
  assert.deepEqual(c.truncates(), liveTruncates, 'the same truncate frame, live and read back');
});

test('authorisation on an edge is the slot relay’s: no token, no subscribe; a token reads only its channels', async () => {
  const { TEST_SECRET, token } = await import('../helpers/tokens.ts');
  const e = await edge({ jwtSecret: TEST_SECRET });
  const anonymous = await fx.client(e);
  const denied = await anonymous.request({ type: 'subscribe', id: 's', channel: 'room-auth' });
  assert.equal(denied.type === 'error' && denied.code, 'unauthenticated');
  const t = await token({ sub: 'ada', channels: ['room-*'] });
  const c = await fx.client(e, ['walcast.v1', `bearer.${t}`]);
  await c.subscribe('room-auth');
  const refused = await c.request({ type: 'subscribe', id: 'no', channel: 'secret' });
  assert.equal(refused.type === 'error' && refused.code, 'forbidden');
  await insert('room-auth', 'ok');
  const [ev] = await c.waitForEvents(1);
  assert.equal(ev!.row.body, 'ok');
});

test('a client of an edge that reads nothing is closed with 4008; a reading client of the same channel gets every row', async () => {
  const { TestClient } = await import('../helpers/relay.ts');
  const { CLOSE } = await import('../../client/protocol.ts');
  const e = await edge();
  const slow = await TestClient.connect(e.wsUrl);
  const fast = await fx.client(e);
  fx.cleanup(() => slow.close());
  await slow.subscribe('edge-firehose');
  await fast.subscribe('edge-firehose');
  const socket = (slow.ws as unknown as { _socket: import('node:net').Socket })._socket;
  socket.pause();
  const rows = 1500;
  const body = 'x'.repeat(8 * 1024); // 12 MiB in all: past the kernel's socket buffers and the 1 MiB queue
  for (let i = 0; i < rows; i += 100) {
    await db.query(
      `insert into chat_messages (channel_id, sender, body) select 'edge-firehose', 's', $1 || g from generate_series(${i}, ${i + 99}) g`,
      [body],
    );
  }
  await waitFor(() => e.internals.ws.slowConsumerCloses > 0, 60_000, 'the edge to close the slow consumer');
  socket.resume();
  assert.equal((await slow.waitClosed(15_000)).code, CLOSE.slowConsumer);
  await fast.waitForEvents(rows, 60_000).catch((err: Error) => {
    const src = e.internals.source;
    throw new Error(
      `${err.message.slice(0, 100)}: ${fast.events().length} events, closed ${JSON.stringify(fast.closed)}, source ${src.state} read ${src.counters.messages} delivered ${src.deliveredSeq} of ${src.lastSeq}, slow closes ${e.internals.ws.slowConsumerCloses}`,
    );
  });
  assert.deepEqual(
    fast.events().map((ev) => String(ev.row.body).slice(body.length)),
    Array.from({ length: rows }, (_, i) => String(i)),
  );
  assert.ok(e.internals.source.counters.pauses > 0, 'the edge paused its stream while the socket was backed up');
  // A pause closes the consumer and a resume starts another: the closed ones stop pulling, so NATS removes them
  // as inactive (a consumer left running beside the new one never would be).
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  const consuming = edges.filter((x) => x.internals.source.state === 'consuming').length;
  try {
    await waitFor(
      async () => (await jsm.consumers.list('walcast').next()).length <= consuming,
      30_000,
      `one consumer per consuming edge (${consuming})`,
    );
  } catch (err) {
    const list = await jsm.consumers.list('walcast').next();
    throw new Error(
      `${(err as Error).message}: ${JSON.stringify(list.map((c) => ({ n: c.name.slice(0, 12), w: c.num_waiting, d: c.delivered.stream_seq, it: c.config.inactive_threshold, p: c.num_pending, f: c.config.filter_subject })))}`,
    );
  } finally {
    await nc.close();
  }
});
