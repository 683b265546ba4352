// The client-hop heartbeat's schedule (relay/ws/heartbeat.ts): pings spread
// over the interval, each connection still pinged once per interval, and one
// that stops answering terminated on its next visit. The connections here
// stand in for sockets (ping and terminate counted); test/integration/ws.test.ts
// drops a real silent client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket } from 'ws';
import { Heartbeat, heartbeatSteps, type Beating } from '../../relay/ws/heartbeat.ts';

interface Conn extends Beating {
  pings: number;
  terminated: boolean;
}

function conns(n: number): Conn[] {
  return Array.from({ length: n }, () => {
    const c = { isAlive: true, pings: 0, terminated: false } as Conn;
    c.ws = {
      ping: () => void c.pings++,
      terminate: () => void (c.terminated = true),
    } as unknown as WebSocket;
    return c;
  });
}

test('an interval is cut into at most 50 slots of at least 100 ms', () => {
  assert.equal(heartbeatSteps(15_000), 50);
  assert.equal(heartbeatSteps(1000), 10);
  assert.equal(heartbeatSteps(300), 3);
  assert.equal(heartbeatSteps(100), 1);
});

test('5,000 connections: each tick pings a fiftieth of them, and each is pinged once per interval', () => {
  const all = conns(5000);
  const hb = new Heartbeat(15_000, () => all);
  const perTick: number[] = [];
  for (let round = 0; round < 3; round++) {
    for (let t = 0; t < 50; t++) {
      const before = all.reduce((n, c) => n + c.pings, 0);
      hb.tick();
      perTick.push(all.reduce((n, c) => n + c.pings, 0) - before);
      for (const c of all) c.isAlive = true; // every client answers
    }
    assert.ok(
      all.every((c) => c.pings === round + 1),
      `round ${round}: every connection pinged once`,
    );
  }
  assert.ok(Math.max(...perTick) <= 100, `at most 100 pings in one tick, got ${Math.max(...perTick)}`);
  assert.ok(all.every((c) => !c.terminated));
});

test('a connection that stops answering is terminated on its next visit, the others are not', () => {
  const all = conns(10);
  const hb = new Heartbeat(1000, () => all);
  const silent = all[3]!;
  for (let t = 0; t < 10; t++) hb.tick(); // one interval: everyone pinged once
  for (const c of all) if (c !== silent) c.isAlive = true;
  for (let t = 0; t < 10; t++) hb.tick();
  assert.equal(silent.terminated, true);
  assert.equal(silent.pings, 1);
  assert.deepEqual(
    all.filter((c) => c.terminated),
    [silent],
  );
});

test('connections that arrive later are spread over the slots too', () => {
  const all = conns(0);
  const hb = new Heartbeat(15_000, () => all);
  hb.tick();
  all.push(...conns(1000)); // a burst of connections between two ticks
  const perTick: number[] = [];
  for (let t = 0; t < 50; t++) {
    const before = all.reduce((n, c) => n + c.pings, 0);
    hb.tick();
    perTick.push(all.reduce((n, c) => n + c.pings, 0) - before);
  }
  assert.ok(all.every((c) => c.pings === 1));
  assert.ok(Math.max(...perTick) <= 20, `at most 20 pings in one tick, got ${Math.max(...perTick)}`);
});
