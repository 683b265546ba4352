// Hot standby: two relay processes with the same slot. The active one holds
// the slot's advisory lock; the standby serves /healthz, answers /readyz and
// WebSocket upgrades with 503, and takes over when the active one dies
// (SIGKILL) or loses its database connection. Under steady inserts, clients
// that resume on the new active relay with `since` have every row exactly
// once, in order.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueName } from '../helpers/postgres.ts';
import type { RelayProcess } from '../helpers/process.ts';
import { TestClient, relayFixture, waitFor } from '../helpers/relay.ts';

const fx = relayFixture();
const { db } = fx;

async function spawn(slot: string): Promise<RelayProcess> {
  return fx.spawn(['--database-url', db.url, '--slot', slot, '--example', 'true'], { WALCAST_LOG_LEVEL: 'info' });
}

/** Connect, retrying while the relay refuses (standby, or not listening yet during the takeover). */
async function connectWhenActive(url: string, timeoutMs = 30_000): Promise<TestClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fx.client({ wsUrl: url });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Rows inserted every few ms into `channel` until stopped; collects what clients receive. */
function steady(channel: string) {
  const received: { body: string; position: string }[] = [];
  let inserting = true;
  let inserter: Promise<void> | undefined;
  return {
    received,
    /** Begin inserting; call once the first client is subscribed. */
    start() {
      inserter = (async () => {
        for (let i = 0; inserting; i++) {
          await db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'load', $2)`, [
            channel,
            String(i),
          ]);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
    },
    track(c: TestClient) {
      c.ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.type === 'event') received.push({ body: m.row.body, position: m.position });
      });
    },
    async finish(): Promise<void> {
      inserting = false;
      await inserter;
      const committed = (
        await db.query<{ body: string }>(`select body from chat_messages where channel_id = $1 order by id`, [channel])
      ).map((r) => r.body);
      await waitFor(() => received.length >= committed.length, 30_000, `all ${committed.length} rows`).catch(
        (err: Error) => {
          const got = new Set(received.map((r) => r.body));
          throw new Error(`${err.message}; missing ${committed.filter((b) => !got.has(b)).join(',')}`);
        },
      );
      // A marker row last: events arrive in commit order, so a duplicate would be before it.
      await db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 'marker', 'end')`, [channel]);
      await waitFor(() => received.some((r) => r.body === 'end'), 30_000, 'the marker row');
      assert.deepEqual(
        received.map((r) => r.body),
        [...committed, 'end'],
        'every committed row exactly once, in commit order',
      );
    },
  };
}

async function json(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('a standby waits with /readyz 503 and no WebSocket, and takes over within seconds of a SIGKILL; resuming clients lose nothing', async (t: TestContext) => {
  const slot = uniqueName('standby_slot');
  const active = await spawn(slot);
  const standby = await spawn(slot);
  assert.match(standby.output(), /walcast is on standby/);
  assert.equal((await json(`${standby.url}/healthz`)).status, 200);
  const ready = await json(`${standby.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal(ready.body.role, 'standby');
  await assert.rejects(TestClient.connect(standby.wsUrl), /503/);
  assert.equal((await json(`${active.url}/readyz`)).status, 200);

  const load = steady('failover');
  const c1 = await connectWhenActive(active.wsUrl);
  load.track(c1);
  await c1.subscribe('failover');
  load.start();
  await waitFor(() => load.received.length >= 100, 20_000, '100 rows before the kill');
  active.child.kill('SIGKILL');
  const killedAt = Date.now();
  await c1.waitClosed();
  const lastSeen = load.received[load.received.length - 1]!.position;

  const c2 = await connectWhenActive(standby.wsUrl);
  t.diagnostic(`standby accepted clients ${Date.now() - killedAt} ms after the SIGKILL`);
  load.track(c2);
  const reply = await c2.subscribe('failover', { since: lastSeen });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true, 'resumed from the window rebuilt from the slot');
  await new Promise((r) => setTimeout(r, 300));
  await load.finish();
  assert.match(standby.output(), /standby promoted/);
  assert.equal((await json(`${standby.url}/readyz`)).status, 200);
  standby.child.kill('SIGTERM');
  assert.equal(await standby.exited, 0);
});

test('an active relay whose lock connection is cut stops streaming and becomes the standby; the other takes over', async () => {
  const slot = uniqueName('cut_slot');
  const first = await spawn(slot);
  const second = await spawn(slot);
  assert.match(second.output(), /walcast is on standby/);

  const load = steady('cut');
  const c1 = await connectWhenActive(first.wsUrl);
  load.track(c1);
  await c1.subscribe('cut');
  load.start();
  await waitFor(() => load.received.length >= 50, 20_000, '50 rows before the cut');
  // Cut the active relay's lock session, as a network failure or an admin would.
  const cut = await db.query(
    `select pg_terminate_backend(pid) as ok from pg_locks
      where locktype = 'advisory' and granted and classid = 2002873443
        and database = (select oid from pg_database where datname = current_database())`,
  );
  assert.equal(cut.length, 1, 'one session holds the slot lock');
  const closed = await c1.waitClosed();
  assert.equal(closed.code, 1001);
  const lastSeen = load.received[load.received.length - 1]!.position;

  const c2 = await connectWhenActive(second.wsUrl);
  load.track(c2);
  const reply = await c2.subscribe('cut', { since: lastSeen });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
  await new Promise((r) => setTimeout(r, 300));
  await load.finish();
  assert.match(first.output(), /lost the slot lock/);
  await waitFor(
    async () => (await json(`${first.url}/readyz`)).body.role === 'standby',
    20_000,
    'the first relay to wait as a standby',
  );
  for (const p of [first, second]) p.child.kill('SIGTERM');
  assert.equal(await first.exited, 0);
  assert.equal(await second.exited, 0);
});
