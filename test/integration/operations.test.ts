// /metrics, /readyz and the slot watchdog of a real relay: the numbers move
// with real traffic, two relays in one process keep separate registries,
// lag turns readiness off, and the heartbeat moves an idle slot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';
import { parseLsn } from '../../relay/replication/lsn.ts';

const fx = relayFixture();
const { relay, client } = fx;

/** The value of one sample line of a Prometheus text exposition, or undefined. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

async function scrape(r: Relay): Promise<string> {
  const res = await fetch(`${r.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  return res.text();
}

test('/metrics counts rows, events, deliveries, bytes, connections, subscriptions, errors and latency; relays do not share a registry', async () => {
  const r = await relay({ ttlSchedule: '* * * * * *', watchdogMs: 200 });
  const other = await relay(); // a second registry in the same process
  const c = await client(r);
  await c.subscribe('m-1');
  await c.subscribe('m-2');
  c.send('{not json');
  await c.waitFor((m) => m.find((x) => x.type === 'error'));
  for (let i = 0; i < 3; i++) {
    await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('m-1', 'a', $1)`, [`x${i}`]);
  }
  // An expired row for the TTL job (every second here).
  await fx.db.query(
    `insert into presence (channel_id, user_id, updated_at) values ('m-9', 'gone', now() - interval '1 hour')`,
  );
  await c.waitForEvents(3);
  await waitFor(
    async () => (sample(await scrape(r), 'walcast_ttl_pruned_rows_total{table="public.presence"}') ?? 0) >= 1,
    10_000,
    'the prune to be counted',
  );
  await waitFor(() => r.internals.watchdog.status !== undefined, 10_000, 'a watchdog round');

  const text = await scrape(r);
  assert.ok(sample(text, 'walcast_rows_received_total')! >= 4, 'rows: 3 inserts and the presence insert');
  assert.ok(sample(text, 'walcast_events_dispatched_total')! >= 3);
  assert.equal(sample(text, 'walcast_deliveries_total'), 3);
  assert.ok(sample(text, 'walcast_sent_bytes_total')! > 300, 'three event frames and the replies');
  assert.equal(sample(text, 'walcast_connections'), 1);
  assert.equal(sample(text, 'walcast_subscriptions'), 2);
  assert.equal(sample(text, 'walcast_channels'), 2);
  assert.equal(sample(text, 'walcast_client_errors_total{code="invalid_json"}'), 1);
  assert.equal(sample(text, 'walcast_replication_state{state="streaming"}'), 1);
  assert.equal(sample(text, 'walcast_slot_wal_status{status="reserved"}'), 1);
  assert.ok(sample(text, 'walcast_commit_to_dispatch_seconds_count')! >= 4, 'one observation per transaction');
  assert.equal(sample(text, 'walcast_slow_consumer_closes_total'), 0);
  assert.ok(sample(text, 'walcast_replication_lag_bytes')! >= 0);
  assert.ok(text.includes('# TYPE walcast_replication_lag_seconds gauge'));

  const otherText = await scrape(other);
  assert.equal(sample(otherText, 'walcast_connections'), 0, 'the other relay counts its own');
  assert.equal(sample(otherText, 'walcast_deliveries_total'), 0);
});

test('/readyz is 200 while streaming and 503 with the reason when the lag passes WALCAST_LAG_WARN_SECONDS', async () => {
  const r = await relay({ watchdogMs: 100, lagWarnSeconds: 1 });
  await waitFor(() => r.internals.watchdog.status !== undefined, 10_000, 'a watchdog round');
  // Other test files share the server and may write a lot of WAL: ready once caught up.
  let readyBody: { status?: string } = {};
  await waitFor(
    async () => {
      const res = await fetch(`${r.url}/readyz`);
      readyBody = (await res.json()) as { status: string };
      return res.status === 200;
    },
    30_000,
    '/readyz 200',
  );
  assert.equal(readyBody.status, 'ready');

  // Nothing dispatches any more while WAL keeps being written: the lag grows.
  await r.internals.stream.stop();
  await fx.db.query(`insert into chat_messages (channel_id, sender, body) values ('lag', 'a', 'b')`);
  await waitFor(() => r.internals.watchdog.lagging !== undefined, 15_000, 'the lag warning');
  const res = await fetch(`${r.url}/readyz`);
  assert.equal(res.status, 503);
  const body = (await res.json()) as { status: string; reasons: string[]; lag: { bytes: number; seconds: number } };
  assert.equal(body.status, 'not_ready');
  assert.ok(
    body.reasons.some((x) => /replication lag .* above WALCAST_LAG_WARN_SECONDS/.test(x)),
    body.reasons.join('; '),
  );
  assert.ok(body.lag.bytes > 0 && body.lag.seconds > 1);
  const text = await scrape(r);
  assert.ok(sample(text, 'walcast_replication_lag_bytes')! > 0);
  assert.ok(sample(text, 'walcast_replication_lag_seconds')! > 1);
});

test('the watchdog heartbeat is confirmed: the slot moves past it while the published tables are idle', async () => {
  // No recovery window: delivered positions are confirmed at once.
  const r = await relay({ watchdogMs: 200, recoveryEvents: 0 });
  await waitFor(() => r.internals.watchdog.heartbeats >= 2, 10_000, 'two heartbeats');
  const beat = r.internals.watchdog.lastHeartbeatLsn;
  assert.ok(beat > 0n);
  await waitFor(
    async () => {
      const [row] = await fx.db.query<{ lsn: string }>(
        'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
        [r.slot],
      );
      return row !== undefined && parseLsn(row.lsn) >= beat;
    },
    15_000,
    'the slot to confirm the heartbeat',
  );
  const text = await scrape(r);
  assert.ok(sample(text, 'walcast_heartbeats_total')! >= 2);
  assert.equal(sample(text, 'walcast_deliveries_total'), 0, 'heartbeats are not events');
});

test('/metrics counts rows published by clients and publishes refused, by reason', async () => {
  const r = await relay();
  const c = await client(r);
  const ok = await c.request({
    type: 'publish',
    id: 'p1',
    table: 'chat_messages',
    row: { channel_id: 'm', sender: 'ada', body: 'hi' },
  });
  assert.equal(ok.type, 'published');
  const bad = await c.request({
    type: 'publish',
    id: 'p2',
    table: 'chat_messages',
    row: { channel_id: 'm', sender: 'ada', body: 'hi', id: 5 },
  });
  assert.equal(bad.type === 'error' && bad.code, 'invalid_row');
  const text = await scrape(r);
  assert.equal(sample(text, 'walcast_published_rows_total'), 1);
  assert.equal(sample(text, 'walcast_publish_rejected_total{reason="invalid"}'), 1);
  assert.equal(sample(text, 'walcast_publish_rejected_total{reason="forbidden"}'), 0);
  assert.equal(sample(text, 'walcast_auth_failures_total'), 0);
});

test('every metric docs/grafana-dashboard.json queries is one /metrics exposes', async () => {
  const r = await relay();
  const exposed = new Set<string>();
  for (const m of (await scrape(r)).matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
    exposed.add(m[1]!);
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exposed.add(m[1]! + s);
  }
  const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  const queried = new Set(
    dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/\bwalcast_\w+/g) ?? [])),
  );
  assert.deepEqual(
    [...queried].filter((name) => !exposed.has(name)),
    [],
    'metrics the dashboard queries but /metrics lacks',
  );
  // The panels operators look for first.
  for (const name of [
    'walcast_replication_lag_seconds',
    'walcast_deliveries_total',
    'walcast_connections',
    'walcast_slow_consumer_closes_total',
    'walcast_errors_total',
    'walcast_slot_wal_status',
  ]) {
    assert.ok(queried.has(name), `the dashboard shows ${name}`);
  }
});
