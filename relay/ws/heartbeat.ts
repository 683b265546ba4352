// Heartbeats on the client hop: every interval each connection is pinged;
// one that has not answered (pong or any message) since the previous ping is
// terminated. A dead client is therefore dropped within two intervals of
// its last answer (a step more for one that never answered at all).
//
// The pings are spread over the interval: each connection belongs to one of
// `steps` slots (round robin, as it is first seen), and a timer every
// interval ÷ steps visits one slot. Pinging every connection in one tick
// wrote one frame per socket at once, and with thousands of connections
// that held every event back for a fifth of a second every interval
// (bench/README.md, fan-out: 5,000 connections, 219 ms in one tick; it was
// the "carry-over" of long fan-out runs). Now a tick pings about
// connections ÷ steps of them, each still once per interval.
import type { WebSocket } from 'ws';

export interface Beating {
  ws: WebSocket;
  isAlive: boolean;
}

/** At most this many slots per interval… */
export const HEARTBEAT_MAX_STEPS = 50;
/** …and a timer no more often than this, ms (a 300 ms interval: 3 slots). */
export const HEARTBEAT_MIN_STEP_MS = 100;

/** How many slots an interval is cut into. */
export function heartbeatSteps(intervalMs: number): number {
  return Math.max(1, Math.min(HEARTBEAT_MAX_STEPS, Math.floor(intervalMs / HEARTBEAT_MIN_STEP_MS)));
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private readonly steps: number;
  /** Each connection's slot, given when it is first seen. */
  private readonly slots = new WeakMap<Beating, number>();
  private nextSlot = 0;
  private cursor = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly connections: () => Iterable<Beating>,
  ) {
    this.steps = heartbeatSteps(intervalMs);
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.intervalMs / this.steps);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Visit the next slot: terminate its connections that did not answer the last ping, ping the others. */
  tick(): void {
    const slot = this.cursor;
    this.cursor = (this.cursor + 1) % this.steps;
    for (const conn of this.connections()) {
      if (this.slotOf(conn) !== slot) continue;
      if (!conn.isAlive) {
        conn.ws.terminate();
        continue;
      }
      conn.isAlive = false;
      conn.ws.ping();
    }
  }

  private slotOf(conn: Beating): number {
    let slot = this.slots.get(conn);
    if (slot === undefined) {
      slot = this.nextSlot;
      this.nextSlot = (this.nextSlot + 1) % this.steps;
      this.slots.set(conn, slot);
    }
    return slot;
  }
}
