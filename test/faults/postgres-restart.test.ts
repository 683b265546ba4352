// PostgreSQL restarts under load, once with a fast shutdown and once with an
// immediate one (crash recovery): the relay (a real `walcast start` process,
// with its slot lock) reconnects with backoff, keeps its clients connected,
// and they receive every committed row exactly once, in order.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../relay/db/embedded.ts';
import { TestClient, waitFor } from '../helpers/relay.ts';
import { spawnRelay, type RelayProcess } from '../helpers/process.ts';

let server: EmbeddedPostgresHandle | undefined;
let relay: RelayProcess | undefined;
let dataDir = '';
after(async () => {
  if (relay?.child.exitCode === null) relay.child.kill('SIGKILL');
  await server?.stopImmediately().catch(() => {});
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

test('fast and immediate PostgreSQL restarts under load lose nothing and duplicate nothing', async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'walcast-restart-'));
  server = await startEmbeddedPostgres({ dataDir, port: 0, persistent: true });
  relay = await spawnRelay(['--database-url', server.url, '--slot', 'restart_test', '--example', 'true']);
  const ready = async () =>
    (await fetch(`${relay!.url}/readyz`).then(
      (r) => r.status,
      () => 0,
    )) === 200;
  const c = await TestClient.connect(relay.wsUrl);
  await c.subscribe('load');

  let inserting = true;
  let committedOk = 0;
  const inserter = (async () => {
    for (let i = 0; inserting; i++) {
      const db = new pg.Client({ connectionString: server!.url });
      db.on('error', () => {}); // the server going down mid-sleep; the query below fails too
      try {
        await db.connect();
        while (inserting) {
          await db.query(`insert into chat_messages (channel_id, sender, body) values ('load', 'l', $1)`, [
            String(i++),
          ]);
          committedOk++;
          await new Promise((r) => setTimeout(r, 5));
        }
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // the server is down: try again
      } finally {
        await db.end().catch(() => {});
      }
    }
  })();

  for (const how of ['fast', 'immediate'] as const) {
    const before = committedOk;
    await waitFor(() => committedOk >= before + 50, 30_000, 'inserts before the restart');
    // A fast shutdown waits for every walsender to see its WAL confirmed: a
    // relay that held confirmation back would stall it here.
    await withTimeout(
      how === 'fast' ? server.stop() : server.stopImmediately(),
      20_000,
      `the ${how} shutdown of PostgreSQL`,
    );
    await waitFor(async () => !(await ready()), 10_000, 'the relay to notice');
    await new Promise((r) => setTimeout(r, 300));
    await server.restart();
    await waitFor(ready, 30_000, `the relay to reconnect after the ${how} restart`);
  }
  const after = committedOk;
  await waitFor(() => committedOk >= after + 50, 30_000, 'inserts after the restarts');
  inserting = false;
  await inserter;

  const check = new pg.Client({ connectionString: server.url });
  await check.connect();
  const { rows } = await check.query<{ body: string }>(
    `select body from chat_messages where channel_id = 'load' order by id`,
  );
  // A marker row last: events arrive in commit order, so a duplicate would be before it.
  await check.query(`insert into chat_messages (channel_id, sender, body) values ('load', 'marker', 'end')`);
  await check.end();
  const committed = rows.map((r) => r.body);
  await waitFor(
    () => c.events().some((e) => e.row.body === 'end'),
    30_000,
    `all ${committed.length} committed rows and the marker`,
  );
  assert.deepEqual(
    c.events().map((e) => e.row.body),
    [...committed, 'end'],
  );
  assert.equal(c.closed, undefined, 'the client stayed connected through both restarts');
  c.close();
  relay.child.kill('SIGTERM');
  assert.equal(await relay.exited, 0);
});
