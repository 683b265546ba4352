// A `post` flow: each message's row (the payload with its captures) is
// POSTed as JSON to the flow's URL. At most POST_CONCURRENCY requests of a
// flow are in flight; the rest wait in order (their number is bounded by
// the broker's MAX_UNACKED, since their PUBACKs wait too). A 2xx
// acknowledges the message. 408, 429, 5xx, a timeout or a refused
// connection is retried with backoff (0.5 s doubling to 10 s, jitter, never
// sooner than Retry-After) up to POST_ATTEMPTS; then, or at once on another
// 4xx, the message becomes a dead letter (written through the broker's
// writer) and is acknowledged after that commits. A flow's dedup key goes
// along as the Idempotency-Key header.
import { retryDelay } from '../sinks/retry.ts';
import type { RelayErrorCode } from '../errors.ts';
import type { Flow } from './catalog.ts';
import type { Row } from './decode.ts';

export const POST_CONCURRENCY = 8;
export const POST_ATTEMPTS = 5;
export const POST_TIMEOUT_MS = 10_000;
const BACKOFF = { initialMs: 500, maxMs: 10_000, factor: 2 };

export interface PostJob {
  topic: string;
  row: Row;
  dedup: string | undefined;
  /** A 2xx came. */
  delivered(): void;
  /** No 2xx will come: record a dead letter. */
  failed(code: RelayErrorCode, params: Record<string, string>): void;
}

export class Poster {
  private readonly waiting: PostJob[] = [];
  private inFlight = 0;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private flow: Flow) {}

  /** A changed flow (its URL) applies to the next request. */
  update(flow: Flow): void {
    this.flow = flow;
  }

  push(job: PostJob): void {
    this.waiting.push(job);
    this.next();
  }

  get pending(): number {
    return this.waiting.length + this.inFlight;
  }

  /** Requests in flight are left to finish or fail; nothing more is sent or retried (unacknowledged: redelivered). */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
  }

  private next(): void {
    while (!this.stopped && this.inFlight < POST_CONCURRENCY && this.waiting.length) {
      const job = this.waiting.shift()!;
      this.inFlight++;
      void this.deliver(job).finally(() => {
        this.inFlight--;
        this.next();
      });
    }
  }

  private async deliver(job: PostJob): Promise<void> {
    let last = '';
    for (let attempt = 1; attempt <= POST_ATTEMPTS && !this.stopped; attempt++) {
      const url = this.flow.target;
      const res = await send(url, job).catch((err: Error) => ({ error: err.message }));
      if ('status' in res) {
        if (res.status >= 200 && res.status < 300) return job.delivered();
        last = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 408 && res.status !== 429) {
          return job.failed('ingest_post_rejected', { ...this.params(job, url, last), status: String(res.status) });
        }
      } else last = res.error;
      if (attempt === POST_ATTEMPTS) break;
      const delay = retryDelay(attempt, 'status' in res ? res.retryAfter : undefined, BACKOFF);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.timers.delete(t);
          resolve();
        }, delay);
        this.timers.add(t);
      });
    }
    if (this.stopped) return;
    const params = { ...this.params(job, this.flow.target, last), attempts: String(POST_ATTEMPTS) };
    job.failed('ingest_post_failed', params);
  }

  private params(job: PostJob, url: string, detail: string): Record<string, string> {
    return { flow: this.flow.name, topic: job.topic, url, detail };
  }
}

async function send(url: string, job: PostJob): Promise<{ status: number; retryAfter: string | null }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'mqtt-topic': job.topic };
  if (job.dedup !== undefined) headers['idempotency-key'] = job.dedup;
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify(job.row),
    signal: AbortSignal.timeout(POST_TIMEOUT_MS),
    redirect: 'manual',
  });
  await res.body?.cancel().catch(() => {});
  return { status: res.status, retryAfter: res.headers.get('retry-after') };
}
