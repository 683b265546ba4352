// The client's heartbeat. Browsers cannot send WebSocket pings, so it uses
// the protocol's own: every intervalMs it sends {"type":"ping"}; if nothing
// at all arrives from the relay within timeoutMs after that ping, the
// connection is presumed dead (a half-open TCP connection can stay silent
// for minutes otherwise) and onDead runs. Any message counts as a sign of
// life, so a busy stream whose pong queues behind events is not dropped.
//
// Bound: a connection that dies is detected within intervalMs + timeoutMs of
// the last message received (15 s with the defaults).

export interface HeartbeatOptions {
  /** Time between pings, ms. */
  intervalMs: number;
  /** How long after a ping silence means death, ms. */
  timeoutMs: number;
}

export const DEFAULT_HEARTBEAT: HeartbeatOptions = { intervalMs: 10_000, timeoutMs: 5_000 };

type Timer = ReturnType<typeof setTimeout>;

export class Heartbeat {
  private interval: ReturnType<typeof setInterval> | undefined;
  private deadline: Timer | undefined;

  constructor(
    readonly opts: HeartbeatOptions,
    private readonly sendPing: () => void,
    private readonly onDead: (waitedMs: number) => void,
  ) {}

  start(): void {
    this.stop();
    this.interval = setInterval(() => this.tick(), this.opts.intervalMs);
  }

  /** Something arrived from the relay: the connection is alive. */
  received(): void {
    clearTimeout(this.deadline);
    this.deadline = undefined;
  }

  stop(): void {
    clearInterval(this.interval);
    clearTimeout(this.deadline);
    this.interval = undefined;
    this.deadline = undefined;
  }

  private tick(): void {
    this.sendPing();
    // One deadline at a time: it runs from the oldest unanswered ping.
    this.deadline ??= setTimeout(() => {
      this.stop();
      this.onDead(this.opts.timeoutMs);
    }, this.opts.timeoutMs);
  }
}
