// An edge whose DATABASE_URL is a streaming read replica (docs/scaling.md):
// a snapshot waits until the replica has replayed what the edge already
// routed, so its rows and the live events join without a gap; a replica
// that stays behind gets snapshot_failed saying so. Real primary and
// replica (Debian's PostgreSQL, test/helpers/replica.ts), real nats-server,
// a slot relay and an edge in this process.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { EdgeRelay } from '../../relay/edge/edge.ts';
import type { Relay } from '../../relay/relay.ts';
import { startTestEdge } from '../helpers/edge.ts';
import { startNatsServer, type NatsServer } from '../helpers/nats.ts';
import { TestClient, startTestRelay } from '../helpers/relay.ts';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../helpers/replica.ts';

let servers: PrimaryWithReplica;
let nats: NatsServer;
let relay: Relay;
let primary: pg.Pool;
const edges: EdgeRelay[] = [];
const clients: TestClient[] = [];

before(async () => {
  servers = await startPrimaryWithReplica();
  nats = await startNatsServer();
  primary = new pg.Pool({ connectionString: servers.primaryUrl, max: 2 });
  relay = await startTestRelay(servers.primaryUrl, { natsUrl: nats.url });
});

after(async () => {
  for (const c of clients) c.close();
  for (const e of edges) await e.stop();
  await relay?.stop();
  await primary?.end();
  await nats?.stop();
  await servers?.stop();
});

async function edge(overrides = {}): Promise<EdgeRelay> {
  const e = await startTestEdge(servers.replicaUrl, nats.url, { slot: relay.slot, ...overrides });
  edges.push(e);
  return e;
}

async function client(e: EdgeRelay): Promise<TestClient> {
  const c = await TestClient.connect(e.wsUrl);
  clients.push(c);
  return c;
}

async function insert(channel: string, body: string): Promise<void> {
  await primary.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'test', $2)`, [channel, body]);
}

function got(c: TestClient, body: string): (msgs: unknown[]) => true | undefined {
  return () => (c.events().some((m) => m.row?.body === body) ? true : undefined);
}

test('a snapshot on an edge waits for its replica to replay what the edge routed: every row once, no gap', async () => {
  const e = await edge();
  const live = await client(e);
  await live.subscribe('rep');
  await servers.pauseReplay();
  for (const body of ['r1', 'r2', 'r3']) await insert('rep', body);
  // The edge has routed r1–r3 (from the stream); the replica has not replayed them.
  await live.waitForEvents(3);
  const snap = await client(e);
  snap.send({ type: 'subscribe', id: 'snap', channel: 'rep', snapshot: true, limit: 100 });
  await insert('rep', 'while-paused');
  await live.waitFor(got(live, 'while-paused'), 10_000, 'the row inserted while replay is paused');
  assert.equal(
    snap.messages.find((m) => 'id' in m && m.id === 'snap'),
    undefined,
    'no snapshot is answered from a replica that has not replayed the edge position',
  );
  await servers.resumeReplay();
  const reply = await snap.waitFor((msgs) => msgs.find((m) => 'id' in m && m.id === 'snap'), 10_000, 'the snapshot');
  assert.equal(reply.type, 'subscribed');
  await insert('rep', 'marker');
  await snap.waitFor(got(snap, 'marker'), 10_000, 'the marker row');
  const rows = (
    await primary.query<{ body: string }>(`select body from chat_messages where channel_id = 'rep' order by id`)
  ).rows.map((r) => r.body);
  assert.deepEqual(rows, ['r1', 'r2', 'r3', 'while-paused', 'marker']);
  assert.deepEqual(
    snap.events().map((m) => m.row.body),
    rows,
    'snapshot rows then live events: each row exactly once, in order',
  );
});

test('a replica that stays behind past WALCAST_SNAPSHOT_TIMEOUT_MS: snapshot_failed says the replica lags; live subscribing still works', async () => {
  const e = await edge({ snapshotTimeoutMs: 500 });
  const live = await client(e);
  await live.subscribe('lag');
  await servers.pauseReplay();
  try {
    await insert('lag', 'behind');
    await live.waitFor(got(live, 'behind'), 10_000, 'the row the replica has not replayed');
    const snap = await client(e);
    const reply = await snap.request({ type: 'subscribe', id: 'snap-lag', channel: 'lag', snapshot: true });
    assert.equal(reply.type, 'error');
    assert.equal(reply.type === 'error' && reply.code, 'snapshot_failed');
    assert.match(
      reply.type === 'error' ? reply.message : '',
      /read replica has not replayed.*WALCAST_SNAPSHOT_TIMEOUT_MS/,
    );
    // The failed snapshot left no half subscription: a plain subscribe works and gets live rows.
    await snap.subscribe('lag');
    await insert('lag', 'after');
    await snap.waitFor(got(snap, 'after'), 10_000, 'a live row after the failed snapshot');
    assert.deepEqual(
      snap.events().map((m) => m.row.body),
      ['after'],
    );
  } finally {
    await servers.resumeReplay();
  }
});
