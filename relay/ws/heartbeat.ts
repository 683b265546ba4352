// Heartbeats on the client hop: every interval each connection is pinged;
// one that has not answered (pong or any message) since the previous ping is
// terminated. A dead client is therefore dropped within two intervals.
import type { WebSocket } from 'ws';

export interface Beating {
  ws: WebSocket;
  isAlive: boolean;
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly connections: () => Iterable<Beating>,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  tick(): void {
    for (const conn of this.connections()) {
      if (!conn.isAlive) {
        conn.ws.terminate();
        continue;
      }
      conn.isAlive = false;
      conn.ws.ping();
    }
  }
}
