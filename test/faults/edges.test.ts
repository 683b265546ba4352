// Edge relays as real processes: one slot relay (with the JetStream sink),
// two `walcast edge` processes, a real nats-server. Clients on both edges
// get every row; a position from one edge resumes on the other and on the
// slot relay; an edge SIGKILLed under steady inserts loses its clients to
// the other edge (the SDK given both URLs), which resume with every row
// exactly once, in order; a slot relay SIGKILLed with a hot standby is a
// pause for the edges' clients, with no loss and no duplicate; a snapshot
// on an edge has every row once; an MQTT client with a persistent QoS 1
// session on an edge SIGKILLed moves to the other edge and has every row
// exactly once, in order. Absence of duplicates is checked against a marker
// row, inserted last.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueName } from '../helpers/postgres.ts';
import { spawnRelay, type RelayProcess } from '../helpers/process.ts';
import { relayFixture, waitFor, type TestClient } from '../helpers/relay.ts';
import { readStream, startNatsServer, type NatsServer } from '../helpers/nats.ts';
import { mqttPortOf, spawnEdge } from '../helpers/edge.ts';
import { MqttTestClient, type Received } from '../helpers/mqtt.ts';
import { createClient } from '../../client/node.ts';
import type { EventMessage } from '../../client/protocol.ts';

const fx = relayFixture();
const { db } = fx;
const servers: NatsServer[] = [];
const procs: RelayProcess[] = [];
fx.cleanup(() => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});
after(async () => {
  for (const s of servers) await s.stop();
});

/**
 * One test's deployment: its own nats-server (a stream's subjects may not
 * overlap another's, and the sink must be its stream's only writer), slot
 * relays and edges on one slot. Its processes are killed when the test ends.
 */
async function deployment(t: TestContext, name: string) {
  const nats = await startNatsServer();
  servers.push(nats);
  const slot = uniqueName(name);
  const mine: RelayProcess[] = [];
  t.after(() => {
    for (const p of mine) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  });
  const track = (p: RelayProcess) => {
    mine.push(p);
    procs.push(p);
    return p;
  };
  const env = { WALCAST_NATS_URL: nats.url };
  return {
    nats,
    slotRelay: async () =>
      track(await spawnRelay(['--database-url', db.url, '--slot', slot, '--example', 'true'], env)),
    edge: async (extra: Record<string, string> = {}) =>
      track(await spawnEdge(['--database-url', db.url, '--slot', slot], { ...env, ...extra })),
  };
}

/** walcast_edge_repeats_total of an edge process. */
async function repeats(p: RelayProcess): Promise<number> {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  return Number(/^walcast_edge_repeats_total (\d+)/m.exec(text)?.[1] ?? -1);
}

async function insert(channel: string, body: string): Promise<void> {
  await db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'load', $2)`, [channel, body]);
}

async function committed(channel: string): Promise<string[]> {
  return (
    await db.query<{ body: string }>(`select body from chat_messages where channel_id = $1 order by id`, [channel])
  ).map((r) => r.body);
}

function bodies(c: TestClient): string[] {
  return c.events().map((m) => String(m.row.body));
}

async function untilMarker(c: TestClient, marker: string): Promise<void> {
  await c.waitFor((m) => m.some((x) => x.type === 'event' && 'row' in x && x.row?.body === marker), 30_000, marker);
}

/** Insert a row every few ms into `channel` until stopped. */
function steady(channel: string): { stop(): Promise<void>; count(): number } {
  let running = true;
  let n = 0;
  const loop = (async () => {
    for (; running; n++) {
      await insert(channel, String(n));
      await new Promise((r) => setTimeout(r, 4));
    }
  })();
  return {
    count: () => n,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

test('clients on two edges get every row, in order, as clients of the slot relay do; a position from one edge resumes on the other and on the slot relay', async (t: TestContext) => {
  const d = await deployment(t, 'edges_all');
  const relay = await d.slotRelay();
  const [a, b] = [await d.edge(), await d.edge()];
  const onA = await fx.client(a);
  const onB = await fx.client(b);
  const onSlot = await fx.client(relay);
  for (const c of [onA, onB, onSlot]) await c.subscribe('all');
  for (let i = 0; i < 40; i++) await insert('all', `r${i}`);
  await insert('all', 'marker');
  for (const c of [onA, onB, onSlot]) await untilMarker(c, 'marker');
  const rows = await committed('all');
  assert.deepEqual(bodies(onA), rows);
  assert.deepEqual(bodies(onB), rows);
  assert.deepEqual(onA.events(), onSlot.events(), 'the same events, with the same positions, as the slot relay sent');

  // A client of edge A saw up to r9; it resumes on edge B and on the slot relay.
  const since = onA.events()[9]!.position;
  const later = rows.slice(10);
  for (const target of [b, relay]) {
    const c = await fx.client(target);
    const reply = await c.subscribe('all', { since });
    assert.equal(reply.type === 'subscribed' && reply.recovered, true, `resumed on ${target.url}`);
    await insert('all', `after-${target.url}`);
    await untilMarker(c, `after-${target.url}`);
    const got = bodies(c);
    assert.deepEqual(got.slice(0, later.length), later, 'every missed row once, in order');
    later.push(`after-${target.url}`);
  }
});

test('kill -9 an edge under steady inserts: the SDK given both edges moves to the other and has every row exactly once, in order', async (t: TestContext) => {
  const d = await deployment(t, 'edges_kill');
  await d.slotRelay();
  const [a, b] = [await d.edge(), await d.edge()];
  const received: EventMessage[] = [];
  const client = createClient([a.wsUrl, b.wsUrl], { backoff: { initialMs: 50, maxMs: 200 } });
  fx.cleanup(() => client.close());
  const sub = client.subscribe('kill', {}, (e) => {
    if (e.op !== 'truncate') received.push(e as EventMessage);
  });
  await sub.ready;
  const load = steady('kill');
  await waitFor(() => received.length >= 100, 30_000, '100 rows before the kill');
  a.child.kill('SIGKILL');
  const killedAt = Date.now();
  await waitFor(() => client.url === b.wsUrl && client.status === 'open', 20_000, 'the client on the other edge');
  t.diagnostic(`the client was open on the other edge ${Date.now() - killedAt} ms after the SIGKILL`);
  await new Promise((r) => setTimeout(r, 300));
  await load.stop();
  await insert('kill', 'marker');
  await waitFor(() => received.some((e) => e.row.body === 'marker'), 30_000, 'the marker row');
  const rows = await committed('kill');
  assert.ok(rows.length > 100);
  assert.deepEqual(
    received.map((e) => e.row.body),
    rows,
    'every row exactly once, in commit order',
  );
});

test('kill -9 an edge under steady inserts: a persistent QoS 1 MQTT session moves to the other edge and has every row exactly once, in order', async (t: TestContext) => {
  const d = await deployment(t, 'edges_mqtt');
  await d.slotRelay();
  // Persistent sessions are kept in the primary, through the publish URL.
  const publish = {
    WALCAST_PUBLISH_DATABASE_URL: db.url,
    WALCAST_LOG_LEVEL: process.env.DEBUG_EDGE ? 'debug' : 'warn',
  };
  const [a, b] = [await d.edge(publish), await d.edge(publish)];
  const servers = [a, b].map((p) => ({ host: '127.0.0.1', port: mqttPortOf(p) }));
  const session = { clean: false, reconnectPeriod: 100, servers };
  // MQTT 5: the client keeps the position of the last row it processed and sends it as `since` when it
  // reconnects (mqtt.js sends the CONNECT properties of its options; none until there is a position:
  // mqtt-packet writes no CONNECT at all for an empty userProperties).
  const v5 = await MqttTestClient.connect({ mqttPort: servers[0]!.port, mqttWsUrl: '' }, 'tcp', 5, {
    ...session,
    clientId: 'edge-roamer-5',
    properties: { sessionExpiryInterval: 600 },
  });
  v5.client.on('message', (_topic, _payload, packet) => {
    const position = packet.properties?.userProperties?.position;
    if (!packet.retain && typeof position === 'string')
      v5.client.options.properties = { sessionExpiryInterval: 600, userProperties: { since: position } };
  });
  // MQTT 3.1.1: the session's stored position only (at least once).
  const v4 = await MqttTestClient.connect({ mqttPort: servers[0]!.port, mqttWsUrl: '' }, 'tcp', 4, {
    ...session,
    clientId: 'edge-roamer-4',
  });
  fx.cleanup(() => {
    for (const c of [v5, v4]) c.client.end(true);
  });
  for (const c of [v5, v4]) assert.deepEqual(await c.subscribe('chat_messages/mqtt-kill/#', 1), [1]);
  const rowsOf = (c: MqttTestClient) => c.received.map((m: Received) => String(JSON.parse(m.payload).body));
  const load = steady('mqtt-kill');
  await waitFor(() => rowsOf(v5).length >= 100 && rowsOf(v4).length >= 100, 30_000, '100 rows before the kill');
  a.child.kill('SIGKILL');
  const killedAt = Date.now();
  for (const c of [v5, v4])
    await waitFor(
      () => c.client.connected && c.sessionPresentAfterReconnect(),
      20_000,
      'the client on the other edge with its session',
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}; packets ${JSON.stringify(c.packets.map((p) => p.cmd).filter((x) => x !== 'publish'))}; edge B: ${b.output().slice(-3000)}`,
      );
    });
  t.diagnostic(`both MQTT clients were back on the other edge ${Date.now() - killedAt} ms after the SIGKILL`);
  const seen = rowsOf(v5).length;
  await waitFor(() => rowsOf(v5).length >= seen + 100, 30_000, '100 rows after the reconnect');
  await load.stop();
  await insert('mqtt-kill', 'marker');
  for (const c of [v5, v4]) await waitFor(() => rowsOf(c).includes('marker'), 30_000, 'the marker row');
  const rows = await committed('mqtt-kill');
  assert.ok(
    v5.received.every((m) => !m.retain),
    'resumed from the stream, not from current rows',
  );
  assert.deepEqual(rowsOf(v5), rows, 'MQTT 5 with since: every row exactly once, in order');
  const got4 = rowsOf(v4);
  assert.deepEqual([...new Set(got4)], rows, 'MQTT 3.1.1: every row, first seen in order');
  t.diagnostic(
    `MQTT 3.1.1 without since: ${got4.length - rows.length} rows came twice (acknowledged after the last stored position)`,
  );
});

test('kill -9 the slot relay with a hot standby: the edges clients see a pause, no loss, no duplicate', async (t: TestContext) => {
  const d = await deployment(t, 'edges_failover');
  const active = await d.slotRelay();
  const standby = await d.slotRelay();
  assert.match(standby.output(), /on standby/);
  const [a, b] = [await d.edge(), await d.edge()];
  const onA = await fx.client(a);
  const onB = await fx.client(b);
  await onA.subscribe('failover');
  await onB.subscribe('failover');
  const load = steady('failover');
  await waitFor(() => onA.events().length >= 100, 30_000, '100 rows before the kill');
  active.child.kill('SIGKILL');
  const killedAt = Date.now();
  const before = onA.events().length;
  await waitFor(() => onA.events().length > before + 50, 60_000, 'rows flowing again after the takeover');
  t.diagnostic(`rows flowed again ${Date.now() - killedAt} ms after the SIGKILL`);
  await load.stop();
  await insert('failover', 'marker');
  for (const c of [onA, onB]) await untilMarker(c, 'marker');
  const rows = await committed('failover');
  assert.deepEqual(bodies(onA), rows, 'edge A: every row exactly once, in order');
  assert.deepEqual(bodies(onB), rows, 'edge B: every row exactly once, in order');
  assert.equal(onA.closed, undefined, 'the edge kept its clients through the takeover');
});

test('snapshot on an edge process: the current rows, then live events, each row once', async (t: TestContext) => {
  const d = await deployment(t, 'edges_snap');
  await d.slotRelay();
  const e = await d.edge();
  for (let i = 0; i < 10; i++) await insert('snap', `s${i}`);
  const load = steady('snap');
  await new Promise((r) => setTimeout(r, 50));
  const c = await fx.client(e);
  const reply = await c.subscribe('snap', { snapshot: true, limit: 1000 });
  assert.equal(reply.type, 'subscribed');
  await new Promise((r) => setTimeout(r, 200));
  await load.stop();
  await insert('snap', 'marker');
  await untilMarker(c, 'marker');
  assert.deepEqual(bodies(c), await committed('snap'));
});

test('nats-server SIGKILLed and restarted under steady inserts: an edge keeps its clients, and they get every row once, in order', async (t: TestContext) => {
  const d = await deployment(t, 'edges_nats');
  const relay = await d.slotRelay();
  const e = await d.edge();
  const c = await fx.client(e);
  await c.subscribe('natsdown');
  const load = steady('natsdown');
  await waitFor(() => c.events().length >= 100, 30_000, '100 rows before the restart');
  await d.nats.restart();
  const restartedAt = Date.now();
  const at = c.events().length;
  await waitFor(() => c.events().length > at + 100, 60_000, 'rows flowing again after the restart');
  t.diagnostic(`rows flowed again ${Date.now() - restartedAt} ms after nats-server restarted`);
  await load.stop();
  await insert('natsdown', 'marker');
  await untilMarker(c, 'marker');
  const stored = (await readStream(d.nats.url, 'walcast')).map((m) => String(m.event.row.body));
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: d.nats.url });
  const consumers = await (await jetstreamManager(nc)).consumers.list('walcast').next();
  await nc.close();
  // The edge's consumer, and at most the one from before the restart until NATS drops it as inactive.
  assert.ok(consumers.length <= 2, `no consumer running twice (${consumers.length} on the stream)`);
  t.diagnostic(
    `stream: ${stored.length} messages, ${stored.length - new Set(stored).size} stored twice; edge skipped ${await repeats(e)} repeats`,
  );
  assert.deepEqual(bodies(c), await committed('natsdown'), 'every row exactly once, in order');
  assert.equal(c.closed, undefined);
  const ready = (await (await fetch(`${e.url}/readyz`)).json()) as { consumer: { state: string } };
  assert.equal(ready.consumer.state, 'consuming');
  assert.ok(relay.child.exitCode === null);
});
