// The HTTP replay endpoint under attack (issue 18, item 7), at a small
// scale: a response carries at most WALCAST_REPLAY_MAX_BYTES of events and
// says where to continue; readers that never read hold a bounded number of
// responses per address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';
import type { EventMessage } from '../../client/protocol.ts';

const fx = relayFixture();

interface Page {
  recovered: boolean;
  position: string;
  more: boolean;
  events: EventMessage[];
}

async function fill(relay: Relay, channel: string, rows: number, bytes: number): Promise<string> {
  const c = await fx.client(relay);
  const sub = await c.subscribe(channel);
  await fx.db.query(
    `insert into chat_messages (channel_id, sender, body) select $1, 's', lpad(g::text, $3, '.') from generate_series(1, $2) g`,
    [channel, rows, bytes],
  );
  await c.waitForEvents(rows, 30_000);
  c.close();
  return sub.type === 'subscribed' ? sub.position : '';
}

test('a replay response holds at most WALCAST_REPLAY_MAX_BYTES of events, with more:true and where to continue', async () => {
  const relay = await fx.relay({ replayMaxBytes: 4096 });
  const since = await fill(relay, 'rp-1', 20, 1000);
  const bodies: string[] = [];
  let from = since;
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 20, 'the pages end');
    const res = await fetch(`${relay.url}/v1/channels/rp-1/events?since=${from}`);
    const text = await res.text();
    const page = JSON.parse(text) as Page;
    assert.equal(page.recovered, true);
    const eventBytes = page.events.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0);
    assert.ok(
      page.events.length >= 1 && (page.events.length === 1 || eventBytes <= 4096),
      `${page.events.length} events, ${eventBytes} bytes`,
    );
    bodies.push(...page.events.map((e) => String(e.row.body).replace(/^\.+/, '')));
    if (!page.more) break;
    assert.equal(page.position, page.events.at(-1)!.position);
    from = page.position;
  }
  assert.deepEqual(
    bodies,
    Array.from({ length: 20 }, (_, i) => String(i + 1)),
  );
});

/** A GET whose reader takes the first bytes of the answer and then stops reading. */
function stalledReplay(relay: Relay, since: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(relay.port, '127.0.0.1', () => {
      socket.write(`GET /v1/channels/rp-2/events?since=${since} HTTP/1.1\r\nHost: 127.0.0.1:${relay.port}\r\n\r\n`);
    });
    socket.once('data', (d) => {
      socket.pause();
      assert.match(d.toString(), /^HTTP\/1\.1 200/);
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

test('readers that never read hold at most WALCAST_REPLAYS_PER_IP responses; the next gets 429 until one goes', async () => {
  // 16 MB of events in one response: more than the socket buffers take, so the responses stay in flight.
  const relay = await fx.relay({ replayMaxBytes: 64 * 1024 * 1024, replaysPerIp: 2, httpTimeoutMs: 120_000 });
  const since = await fill(relay, 'rp-2', 160, 100_000);
  const stalled = [await stalledReplay(relay, since), await stalledReplay(relay, since)];
  const refused = await fetch(`${relay.url}/v1/channels/rp-2/events?since=${since}&limit=1`);
  assert.equal(refused.status, 429);
  assert.equal(((await refused.json()) as { code: string }).code, 'too_many_replays');
  stalled[0]!.destroy();
  let page: Page | undefined;
  await waitFor(
    async () => {
      const res = await fetch(`${relay.url}/v1/channels/rp-2/events?since=${since}&limit=1`);
      if (res.status === 200) page = (await res.json()) as Page;
      else await res.body?.cancel();
      return page !== undefined;
    },
    10_000,
    'a replay slot to free up',
  );
  assert.equal(page!.events.length, 1);
  assert.equal(page!.more, true);
  stalled[1]!.destroy();
});
