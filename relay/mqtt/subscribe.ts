// SUBSCRIBE → SUBACK, then the retained rows, then live (subscriptions.ts);
// UNSUBSCRIBE → UNSUBACK. Each filter is judged on its own: an invalid
// filter, a shared subscription, a channel the grants do not allow or one
// subscription too many fails that filter only (MQTT 5 reason codes; 0x80
// for 3.1.1). QoS 2 is granted as 1.
import type { Visibility } from '../db/snapshot.ts';
import mqttPacket, {
  type ISubackPacket,
  type ISubscribePacket,
  type IUnsubackPacket,
  type IUnsubscribePacket,
} from 'mqtt-packet';
import { filterError, isShared, planFilter } from './topics.ts';
import type { OutMessage } from './outgoing.ts';
import type { RetainedRead } from './retained.ts';
import type { Session } from './session.ts';

/** MQTT 5 SUBACK reason codes (3.9.3) walcast sends. */
const SUBACK = {
  unspecified: 0x80,
  notAuthorized: 0x87,
  filterInvalid: 0x8f,
  quotaExceeded: 0x97,
  sharedNotSupported: 0x9e,
  subscriptionIdsNotSupported: 0xa1,
} as const;

export async function subscribe(s: Session, p: ISubscribePacket): Promise<void> {
  const { server } = s;
  if (p.properties?.subscriptionIdentifier !== undefined) {
    return s.protocolError(
      SUBACK.subscriptionIdsNotSupported,
      'subscription identifiers are not supported (CONNACK said so)',
    );
  }
  const codes: number[] = [];
  const pending: string[] = [];
  const wantRetained: string[] = [];
  const reasons: string[] = [];
  const fail = (code: number, why: string) => {
    codes.push(s.version === 5 ? code : 0x80);
    reasons.push(why);
  };
  for (const sub of p.subscriptions) {
    const filter = sub.topic;
    const invalid = filterError(filter);
    if (invalid) {
      fail(SUBACK.filterInvalid, `${filter.slice(0, 80)}: ${invalid}`);
      continue;
    }
    if (isShared(filter)) {
      fail(SUBACK.sharedNotSupported, `${filter.slice(0, 80)}: shared subscriptions are not supported`);
      continue;
    }
    const plan = planFilter(filter);
    if (plan.channel !== null && !s.grants!.canSubscribe(plan.channel)) {
      fail(
        SUBACK.notAuthorized,
        `${filter.slice(0, 80)}: the token does not allow channel ${plan.channel.slice(0, 80)}`,
      );
      continue;
    }
    if (!s.subs.filters.has(filter) && s.subs.size >= server.opts.maxSubscriptions) {
      fail(
        SUBACK.quotaExceeded,
        `${filter.slice(0, 80)}: a connection may hold ${server.opts.maxSubscriptions} subscriptions (WALCAST_MAX_SUBSCRIPTIONS)`,
      );
      continue;
    }
    const qos = sub.qos >= 1 ? 1 : 0;
    const existed = s.subs.add(filter, qos);
    if (!existed) pending.push(filter);
    // Retain Handling (MQTT 5, 3.8.3.1): 0 always, 1 only for a new subscription, 2 never.
    const rh = sub.rh ?? 0;
    if (rh === 0 || (rh === 1 && !existed)) wantRetained.push(filter);
    codes.push(qos);
  }
  // A persistent session resumes from where its first subscription started
  // until a live event is acknowledged: a crash before the first position
  // is written replays the window from here instead of losing what came since.
  if (s.persistent && pending.length > 0 && s.resumeAfter() === null) s.resumeFrom(server.opts.position());
  const current = await readCurrentRows(s, wantRetained, (filter) => {
    codes[p.subscriptions.findIndex((x) => x.topic === filter)] = s.version === 5 ? SUBACK.unspecified : 0x80;
  });
  if (s.closed) return;
  reasons.push(...current.reasons);
  if (s.persistent) await server.store?.save(s);
  const suback: ISubackPacket = { cmd: 'suback', messageId: p.messageId, granted: codes };
  if (s.version === 5 && reasons.length > 0) suback.properties = { reasonString: reasons.join('; ').slice(0, 400) };
  s.write(mqttPacket.generate(suback, { protocolVersion: s.version }));
  await s.subs.settle(
    pending.filter((f) => s.subs.filters.has(f)),
    current.retained,
    current.visible,
  );
}

export interface CurrentRows {
  retained: Map<string, OutMessage[]>;
  visible: Visibility | null;
  /** Why some filters got fewer rows, or none (for the reason string). */
  reasons: string[];
}

/** The current rows of `filters`; a filter whose read failed is removed and reported to `failed`. */
export async function readCurrentRows(
  s: Session,
  filters: string[],
  failed: (filter: string) => void,
): Promise<CurrentRows> {
  const { server } = s;
  const out: CurrentRows = { retained: new Map(), visible: null, reasons: [] };
  if (filters.length === 0) return out;
  let read: RetainedRead;
  try {
    read = await server.readRetained(s, filters);
  } catch (err) {
    server.opts.logger.error({ err }, 'MQTT: reading the retained rows failed');
    for (const filter of filters) {
      s.subs.remove(filter);
      failed(filter);
    }
    out.reasons.push('reading the current rows failed; subscribe again');
    return out;
  }
  out.visible = read.visible;
  filters.forEach((filter, i) => {
    out.retained.set(filter, read.messages[i]!);
    if (!read.truncated[i]) return;
    const limit = server.opts.retainedLimit;
    out.reasons.push(
      `${filter.slice(0, 80)}: more than ${limit} rows match; the newest ${limit} are sent (WALCAST_MQTT_RETAINED_LIMIT)`,
    );
    server.opts.logger.info(
      { clientId: s.clientId, filter, limit },
      'MQTT subscription matched more rows than WALCAST_MQTT_RETAINED_LIMIT: the newest were sent as retained messages',
    );
  });
  return out;
}

export async function unsubscribe(s: Session, p: IUnsubscribePacket): Promise<void> {
  const codes = p.unsubscriptions.map((filter) => (s.subs.remove(filter) ? 0x00 : 0x11));
  if (s.persistent) await s.server.store?.save(s);
  // 3.1.1's UNSUBACK has no reason codes (mqtt-packet writes them for 5 only).
  const unsuback: IUnsubackPacket = { cmd: 'unsuback', messageId: p.messageId, granted: codes };
  s.write(mqttPacket.generate(unsuback, { protocolVersion: s.version }));
}
