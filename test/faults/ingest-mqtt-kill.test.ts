// The relay is killed with SIGKILL while an MQTT publisher sends QoS 1
// messages to two flows of a broker with a persistent session (clean=false,
// a fixed client id). A new relay process connects with the same session
// and gets what was not acknowledged again: with a dedup key every message
// is exactly one row; without one, every message is at least one row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { uniqueName } from '../helpers/postgres.ts';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { startMosquitto } from '../helpers/mqtt.ts';

const fx = relayFixture();
const { db } = fx;
const N = 3000;

async function flowsRunning(url: string): Promise<boolean> {
  const res = await fetch(`${url}/readyz`).catch(() => undefined);
  if (!res) return false;
  const body = (await res.json()) as { ingest?: { flows: { state: string }[] } };
  const flows = body.ingest?.flows ?? [];
  return flows.length === 2 && flows.every((f) => f.state === 'running');
}

const count = async (table: string) =>
  (await db.query<{ n: string; d: string }>(`select count(*) as n, count(distinct seq) as d from ${table}`))[0]!;

test('SIGKILL mid-stream with QoS 1 and a persistent session: exactly one row per message with a dedup key, at least one without', async () => {
  const broker = await startMosquitto();
  fx.cleanup(() => broker.stop());
  const args = ['--database-url', db.url, '--slot', uniqueName('ingest_kill'), '--example', 'true'];
  const first = await fx.spawn(args);
  await db.query(`create table kill_dedup (id bigserial primary key, dev text not null, seq int not null)`);
  await db.query(`create table kill_plain (id bigserial primary key, dev text not null, seq int not null)`);
  await db.query(`select walcast.add_broker('kb', $1, client_id => 'walcast-kill-test', clean => false)`, [broker.url]);
  await db.query(
    `select walcast.add_flow('exact', 'kb', 'kill/a/{dev}', 'insert', 'public.kill_dedup', dedup_key => 'seq')`,
  );
  await db.query(`select walcast.add_flow('least', 'kb', 'kill/b/{dev}', 'insert', 'public.kill_plain')`);
  await waitFor(() => flowsRunning(first.url), 15_000, 'both flows running');

  const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  fx.cleanup(() => publisher.endAsync());
  let killed = false;
  const publishing = (async () => {
    for (let seq = 0; seq < N; seq += 50) {
      const batch = Array.from({ length: 50 }, (_, i) => seq + i);
      await Promise.all(
        batch.flatMap((s) => [
          publisher.publishAsync('kill/a/d1', JSON.stringify({ seq: s }), { qos: 1 }),
          publisher.publishAsync('kill/b/d1', JSON.stringify({ seq: s }), { qos: 1 }),
        ]),
      );
      await new Promise((r) => setTimeout(r, killed ? 0 : 5));
    }
  })();
  await waitFor(async () => Number((await count('kill_dedup')).n) >= 500, 30_000, '500 rows before the kill');
  first.child.kill('SIGKILL');
  killed = true;
  await first.exited;
  const atKill = await count('kill_dedup');
  assert.ok(Number(atKill.n) < N, `killed mid-stream (${atKill.n} of ${N} rows)`);

  const second = await fx.spawn(args);
  await publishing;
  // The last message of each topic as the marker: a topic's messages arrive in order, redeliveries first.
  await publisher.publishAsync('kill/a/d1', JSON.stringify({ seq: N }), { qos: 1 });
  await publisher.publishAsync('kill/b/d1', JSON.stringify({ seq: N }), { qos: 1 });
  await waitFor(
    async () =>
      (await db.query(`select 1 from kill_dedup where seq = $1 union all select 1 from kill_plain where seq = $1`, [N]))
        .length === 2,
    60_000,
    'the marker messages',
  );
  const exact = await count('kill_dedup');
  assert.deepEqual(exact, { n: String(N + 1), d: String(N + 1) }, 'with a dedup key: every message exactly once');
  const least = await count('kill_plain');
  assert.equal(least.d, String(N + 1), 'without: every message at least once');
  assert.ok(Number(least.n) >= N + 1);
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);
});
