// /readyz while a restarted relay re-reads its recovery window: while live
// rows are held back it must not say ready; while a temporary slot serves
// them it is ready and says it is rebuilding (relay/http/health.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { healthRoutes, type HealthSource } from '../../relay/http/health.ts';

async function readyz(
  source: HealthSource,
): Promise<{ status: number; body: { status: string; reasons: string[]; rebuilding?: unknown } }> {
  const app = Fastify();
  await app.register(healthRoutes, { source });
  const res = await app.inject({ method: 'GET', url: '/readyz' });
  await app.close();
  return { status: res.statusCode, body: res.json() };
}

const streaming: HealthSource = { slot: 'walcast', state: () => 'streaming' };

test('/readyz is 503 with the reason while the window is re-read, and 200 once live rows flow', async () => {
  const rebuilding = await readyz({ ...streaming, rebuilding: () => 198_000_000 });
  assert.equal(rebuilding.status, 503);
  assert.equal(rebuilding.body.status, 'not_ready');
  assert.match(
    rebuilding.body.reasons.join(),
    /rebuilding the recovery window .* live rows are held back until 198000000 more bytes/,
  );
  const live = await readyz({ ...streaming, rebuilding: () => 0 });
  assert.deepEqual([live.status, live.body.reasons], [200, []]);
});

test('/readyz is 200 while a temporary slot serves live rows during the re-read, and says so', async () => {
  const served = await readyz({
    ...streaming,
    rebuilding: () => 198_000_000,
    liveSlot: () => ({ serving: true, slot: 'walcast_live_1a2b3c4d' }),
  });
  assert.deepEqual([served.status, served.body.reasons], [200, []]);
  assert.deepEqual(served.body.rebuilding, { bytes: 198_000_000, live_rows: 'temporary slot' });
  const stalled = await readyz({
    ...streaming,
    rebuilding: () => 198_000_000,
    liveSlot: () => ({ serving: false, slot: undefined }),
  });
  assert.equal(stalled.status, 503, 'the temporary slot failed: live rows are held back again');
  assert.deepEqual(stalled.body.rebuilding, { bytes: 198_000_000, live_rows: 'held back' });
  const done = await readyz({
    ...streaming,
    rebuilding: () => 0,
    liveSlot: () => ({ serving: false, slot: undefined }),
  });
  assert.equal(done.body.rebuilding, undefined);
});
