// Topics and filters, pure. A row's topic is `<table>/<channel>/<key…>`:
// the table as events name it ("chat_messages", "app.orders"), the channel
// column's value, then one level per primary-key column that is not the
// channel column (so `presence/room-1/u-7`, `chat_messages/room-1/42`). A
// table without such a key publishes on `<table>/<channel>`.
//
// Every topic, row or not, is routed by its second level: that is the
// router's channel (`alerts/fire` travels on channel "fire"), and what the
// token's channel grants are checked against. A one-level topic has the
// channel "".
//
// Values are put in levels with `%`, `/`, `+`, `#` percent-encoded (`%25`,
// `%2F`, `%2B`, `%23`), so any channel or key value is one level and no
// value is a wildcard. An empty value is an empty level (valid, MQTT 4.7.1).

export const MAX_TOPIC_BYTES = 65_535;

const ENCODE = /[%/+#]/g;
const ESCAPES: Record<string, string> = { '%': '%25', '/': '%2F', '+': '%2B', '#': '%23' };
const DECODE = /%(25|2F|2B|23)/gi;

export function encodeLevel(value: string): string {
  return value.replace(ENCODE, (c) => ESCAPES[c]!);
}

/** Inverse of encodeLevel; other `%` sequences are left as they are. */
export function decodeLevel(level: string): string {
  return level.includes('%')
    ? level.replace(DECODE, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    : level;
}

export function rowTopic(table: string, channel: string, key: readonly string[]): string {
  let topic = `${table}/${encodeLevel(channel)}`;
  for (const k of key) topic += `/${encodeLevel(k)}`;
  return topic;
}

/** The router channel of a topic: its second level, decoded ("" for a one-level topic). */
export function channelOfTopic(topic: string): string {
  const first = topic.indexOf('/');
  if (first < 0) return '';
  const second = topic.indexOf('/', first + 1);
  return decodeLevel(second < 0 ? topic.slice(first + 1) : topic.slice(first + 1, second));
}

export interface TopicParts {
  /** First level: a table's name, or any namespace. */
  head: string;
  channel: string;
  /** Levels after the channel, decoded. */
  rest: string[];
}

export function splitTopic(topic: string): TopicParts {
  const levels = topic.split('/');
  return {
    head: levels[0]!,
    channel: levels.length > 1 ? decodeLevel(levels[1]!) : '',
    rest: levels.slice(2).map(decodeLevel),
  };
}

/** Why a PUBLISH topic name is not valid (MQTT 4.7.3), or null. */
export function topicNameError(topic: string): string | null {
  if (topic.length === 0) return 'the topic name is empty';
  if (/[+#]/.test(topic)) return 'a topic name may not contain + or # (wildcards are for subscriptions)';
  if (topic.includes('\u0000')) return 'a topic name may not contain U+0000';
  if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES) return 'the topic name is longer than 65535 bytes';
  return null;
}

/** Why a SUBSCRIBE topic filter is not valid (MQTT 4.7.1), or null. */
export function filterError(filter: string): string | null {
  if (filter.length === 0) return 'the topic filter is empty';
  if (filter.includes('\u0000')) return 'a topic filter may not contain U+0000';
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES) return 'the topic filter is longer than 65535 bytes';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '# must be the last level, alone';
    if (level.includes('+') && level !== '+') return '+ must be a whole level';
  }
  return null;
}

/** Does `filter` match `topic` (MQTT 4.7.1, and 4.7.2: wildcards at the first level do not match `$` topics)? */
export function matches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  // Compared in place, no level copied: this runs per delivery per filter.
  let f = 0;
  let t = 0;
  for (;;) {
    const fEnd = endOfLevel(filter, f);
    const fLength = fEnd - f;
    if (fLength === 1 && filter.charCodeAt(f) === HASH) return true;
    const tEnd = endOfLevel(topic, t);
    if (t > topic.length) return false;
    const plus = fLength === 1 && filter.charCodeAt(f) === PLUS;
    if (!plus && (fLength !== tEnd - t || !sameChars(filter, f, topic, t, fLength))) return false;
    const fDone = fEnd >= filter.length;
    const tDone = tEnd >= topic.length;
    if (fDone || tDone) {
      if (fDone && tDone) return true;
      // "sport/#" also matches "sport" (4.7.1.2).
      return tDone && !fDone && fEnd + 2 === filter.length && filter.charCodeAt(fEnd + 1) === HASH;
    }
    f = fEnd + 1;
    t = tEnd + 1;
  }
}

const HASH = 0x23;
const PLUS = 0x2b;

function sameChars(a: string, from: number, b: string, at: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (a.charCodeAt(from + i) !== b.charCodeAt(at + i)) return false;
  return true;
}

function endOfLevel(text: string, from: number): number {
  const i = text.indexOf('/', from);
  return i < 0 ? text.length : i;
}

/**
 * What a filter asks for, in walcast's terms: which table (null: any) and
 * which channel (null: any) it can match, and its key levels. Used to pick
 * router subscriptions and the rows to read as retained messages.
 */
export interface FilterPlan {
  filter: string;
  table: string | null;
  channel: string | null;
  /** Key levels after the channel: literal values (decoded), '+' or '#'; empty when the filter stops at the channel. */
  key: string[];
}

export function planFilter(filter: string): FilterPlan {
  const levels = filter.split('/');
  const first = levels[0]!;
  const wild = (l: string | undefined) => l === '+' || l === '#';
  const table = wild(first) ? null : first;
  let channel: string | null;
  if (levels.length === 1) channel = first === '#' ? null : '';
  else channel = wild(levels[1]) ? null : decodeLevel(levels[1]!);
  const key = levels.slice(2).map((l) => (wild(l) ? l : decodeLevel(l)));
  return { filter, table, channel, key };
}

/** `$share/<group>/<filter>` (MQTT 5 shared subscriptions). */
export function isShared(filter: string): boolean {
  return filter.startsWith('$share/');
}
