// Admission for snapshot reads. The snapshot pool has a few database
// connections; without a bound, one client sending snapshot subscribes in a
// loop (and closing each socket at once) queued reads without end and
// starved everyone else. Each read is admitted or refused at once:
//
//   - per connection: at most `perConnection` reads waiting or running;
//   - per token subject: at most `perSubject`, over all its connections;
//   - in all: `concurrency` running and at most `queue` waiting.
//
// A waiting read whose client is gone (closed, or unsubscribed meanwhile)
// is dropped when its turn comes, without touching the database. Pure: no
// database here; tests drive it with promises.

export interface SnapshotLimits {
  perConnection: number;
  perSubject: number;
  queue: number;
  concurrency: number;
}

export interface SnapshotTicket {
  /** The connection (any object): its reads are counted together. */
  owner: object;
  /** The token's sub; null in open mode or without one (no subject limit). */
  subject: string | null;
  /** Still wanted? Checked when a waiting read's turn comes. */
  alive(): boolean;
}

/** Refused at once: a limit is reached. The message names it. */
export class SnapshotBusy extends Error {}

/** A waiting read was dropped: its client went away. */
export class SnapshotDropped extends Error {}

/** The rows cannot be read consistently now (an edge's read replica lags); the message says why and the fix. */
export class SnapshotUnavailable extends Error {}

interface Waiter {
  ticket: SnapshotTicket;
  start(): void;
  drop(): void;
}

export class SnapshotQueue {
  readonly counters = { started: 0, dropped: 0, refused: 0 };
  private running = 0;
  private readonly waiting: Waiter[] = [];
  private readonly perOwner = new Map<object, number>();
  private readonly perSubject = new Map<string, number>();

  constructor(private readonly limits: SnapshotLimits) {}

  get runningCount(): number {
    return this.running;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Run `read` when admitted and a connection is free; throws SnapshotBusy or SnapshotDropped. */
  async run<T>(ticket: SnapshotTicket, read: () => Promise<T>): Promise<T> {
    this.admit(ticket);
    try {
      if (this.running >= this.limits.concurrency) await this.wait(ticket);
      else this.running++;
      this.counters.started++;
      try {
        return await read();
      } finally {
        this.running--;
        this.next();
      }
    } finally {
      this.release(ticket);
    }
  }

  /** Count the ticket, or throw SnapshotBusy naming the limit it hit. */
  private admit(ticket: SnapshotTicket): void {
    const { perConnection, perSubject, queue, concurrency } = this.limits;
    let refusal: string | undefined;
    if ((this.perOwner.get(ticket.owner) ?? 0) >= perConnection) {
      refusal = `this connection has ${perConnection} snapshots waiting or being read (WALCAST_SNAPSHOTS_PER_CONNECTION); wait for their replies`;
    } else if (ticket.subject !== null && (this.perSubject.get(ticket.subject) ?? 0) >= perSubject) {
      refusal = `this token's sub has ${perSubject} snapshots waiting or being read (WALCAST_SNAPSHOTS_PER_SUBJECT); wait for their replies`;
    } else if (this.running >= concurrency && this.waiting.length >= queue) {
      refusal = `${queue} snapshots are already waiting (WALCAST_SNAPSHOT_QUEUE); try again shortly`;
    }
    if (refusal) {
      this.counters.refused++;
      throw new SnapshotBusy(refusal);
    }
    this.perOwner.set(ticket.owner, (this.perOwner.get(ticket.owner) ?? 0) + 1);
    if (ticket.subject !== null) this.perSubject.set(ticket.subject, (this.perSubject.get(ticket.subject) ?? 0) + 1);
  }

  private release(ticket: SnapshotTicket): void {
    decrement(this.perOwner, ticket.owner);
    if (ticket.subject !== null) decrement(this.perSubject, ticket.subject);
  }

  private wait(ticket: SnapshotTicket): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({
        ticket,
        start: resolve,
        drop: () => reject(new SnapshotDropped('the client went away while its snapshot waited')),
      });
    });
  }

  /** A connection is free: start the first waiting read still wanted, dropping the others before it. */
  private next(): void {
    while (this.running < this.limits.concurrency) {
      const waiter = this.waiting.shift();
      if (!waiter) return;
      if (!waiter.ticket.alive()) {
        this.counters.dropped++;
        waiter.drop();
        continue;
      }
      this.running++;
      waiter.start();
    }
  }
}

function decrement<K>(counts: Map<K, number>, key: K): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n <= 0) counts.delete(key);
  else counts.set(key, n);
}
