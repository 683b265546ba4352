// Presence, per topic, on this relay: who tracks what. A tracked entry is a
// meta with its phx_ref under the channel's presence key; joins and leaves
// go to every subscriber of the topic as presence_diff, and a joining
// subscriber gets the whole state as presence_state (even when empty).
// Kept in memory on each relay: clients of other relays are not seen
// (docs/supabase.md). Pure: callers send the diffs.

export type Metas = Record<string, { metas: Record<string, unknown>[] }>;

export interface Diff {
  joins: Metas;
  leaves: Metas;
}

interface Entry {
  key: string;
  meta: Record<string, unknown>;
}

/** Most tracked entries per topic: past it, track is refused (and says so). */
export const MAX_PRESENCES_PER_TOPIC = 10_000;
/** Largest tracked payload (JSON bytes). */
export const MAX_PRESENCE_BYTES = 16 * 1024;

export class PresenceTable<Member> {
  private readonly topics = new Map<string, Map<Member, Entry>>();
  private refs = 0;

  /** The state of `topic` as presence_state sends it. */
  state(topic: string): Metas {
    const out: Metas = {};
    for (const e of this.topics.get(topic)?.values() ?? []) (out[e.key] ??= { metas: [] }).metas.push(e.meta);
    return out;
  }

  /** Track (or re-track) `member`; returns the diff, or an error message. */
  track(topic: string, member: Member, key: string, payload: Record<string, unknown>): Diff | string {
    if (Buffer.byteLength(JSON.stringify(payload)) > MAX_PRESENCE_BYTES)
      return `a presence payload is at most ${MAX_PRESENCE_BYTES} bytes of JSON`;
    let members = this.topics.get(topic);
    if (!members) this.topics.set(topic, (members = new Map()));
    const before = members.get(member);
    if (!before && members.size >= MAX_PRESENCES_PER_TOPIC)
      return `topic ${topic} has ${MAX_PRESENCES_PER_TOPIC} presences, the most one relay keeps`;
    const meta: Record<string, unknown> = { ...payload, phx_ref: String(++this.refs) };
    if (before) meta.phx_ref_prev = before.meta.phx_ref;
    members.set(member, { key, meta });
    const diff: Diff = { joins: { [key]: { metas: [meta] } }, leaves: {} };
    if (before) diff.leaves[before.key] = { metas: [before.meta] };
    return diff;
  }

  /** Untrack `member` (it left, or closed); null when it tracked nothing. */
  untrack(topic: string, member: Member): Diff | null {
    const members = this.topics.get(topic);
    const before = members?.get(member);
    if (!members || !before) return null;
    members.delete(member);
    if (members.size === 0) this.topics.delete(topic);
    return { joins: {}, leaves: { [before.key]: { metas: [before.meta] } } };
  }
}
