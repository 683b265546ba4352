// /readyz while a restarted relay re-reads its recovery window: live rows are
// held back, so it must not say ready (relay/http/health.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { healthRoutes, type HealthSource } from '../../relay/http/health.ts';

async function readyz(source: HealthSource): Promise<{ status: number; body: { status: string; reasons: string[] } }> {
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
