// Position → stream sequence. Messages are stored in position order (the
// sink publishes in commit order, each after the one before it), so the
// first message after a position is found by binary search over the
// sequences the stream holds, reading one stored message per step (about 20
// reads for a million messages). Pure: the read is passed in.

/** The position stored at `seq`; undefined when the stream no longer has it. */
export type PositionAt = (seq: number) => Promise<string | undefined>;

/**
 * The first sequence in [first, last] whose position is after `since`;
 * last + 1 when none is. A sequence that reads as missing (removed by the
 * stream's limits meanwhile) counts as before `since`: it is older than
 * anything still held.
 */
export async function firstAfter(since: string, first: number, last: number, at: PositionAt): Promise<number> {
  let lo = first;
  let hi = last + 1;
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const position = await at(mid);
    if (position === undefined || position <= since) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export type Coverage = { covered: true } | { covered: false; reason: string };

/**
 * Does a stream whose first message (at `first`) has `firstPosition` hold
 * every event after `since`? Yes when that message is at or before `since`
 * (nothing after it was removed), or when the stream never removed a message
 * (first sequence 1) and it is of the same epoch.
 */
export function covers(since: string, first: number, firstPosition: string | undefined, epoch: string): Coverage {
  if (firstPosition === undefined)
    return first <= 1
      ? { covered: true }
      : { covered: false, reason: 'the stream no longer holds events after this position (its limits removed them)' };
  if (firstPosition <= since) return { covered: true };
  if (first <= 1 && firstPosition.endsWith(`-${epoch}`)) return { covered: true };
  return { covered: false, reason: 'the stream no longer holds events after this position (its limits removed them)' };
}
