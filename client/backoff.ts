// Reconnect delays: exponential backoff with full jitter (AWS Architecture
// Blog, "Exponential Backoff And Jitter"). The ceiling doubles with every
// failed attempt up to maxMs; the delay is uniform in [0, ceiling], so a
// relay restart does not see every client come back in the same instant.
// Pure: the random source is a parameter.

export interface BackoffOptions {
  /** Ceiling of the first retry's delay, ms. */
  initialMs: number;
  /** Largest ceiling, ms: no wait is ever longer. */
  maxMs: number;
  /** Growth of the ceiling per failed attempt. */
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 10_000, factor: 2 };

/** The ceiling for `attempt` (0 for the first retry after a loss). */
export function backoffCeiling(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  const n = Math.max(0, Math.floor(attempt));
  // Capped before exponentiation overflows to Infinity.
  const grown = opts.initialMs * opts.factor ** Math.min(n, 64);
  return Math.min(opts.maxMs, Number.isFinite(grown) ? grown : opts.maxMs);
}

/** The delay before retry `attempt`: uniform in [0, ceiling], whole ms. */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(r * backoffCeiling(attempt, opts));
}
