// When a webhook delivery is tried again. Pure.
//
// Exponential backoff with full jitter (client/backoff.ts), and never sooner
// than the receiver's Retry-After (seconds, or an HTTP date), capped at the
// backoff's maximum so that a receiver cannot park a webhook for days.
import { backoffDelay, type BackoffOptions } from '../../client/backoff.ts';

/** The delay Retry-After asks for, ms; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null | undefined, nowMs: number): number | undefined {
  if (!header) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** Delay before attempt `attempt` (1: the first retry). */
export function retryDelay(
  attempt: number,
  retryAfter: string | null | undefined,
  opts: BackoffOptions,
  nowMs = Date.now(),
  random = Math.random,
): number {
  const backoff = backoffDelay(attempt - 1, opts, random);
  const asked = retryAfterMs(retryAfter, nowMs);
  return asked === undefined ? backoff : Math.min(opts.maxMs, Math.max(backoff, asked));
}

/** What a response status means for the batch. */
export function outcome(status: number): 'delivered' | 'gone' | 'retry' {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 410) return 'gone';
  return 'retry';
}
