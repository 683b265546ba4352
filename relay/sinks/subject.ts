// Subjects of the change stream: walcast.<table>.<channel>, each of <table>
// and <channel> exactly one NATS subject token, so that a consumer's filter
// (`walcast.*.room-1`, `walcast.chat_messages.>`) matches as it reads.
//
// Token encoding (reversible, documented in docs/streams.md): the characters
// A-Z a-z 0-9 - _ stand for themselves; every other character is written as
// its UTF-8 bytes, each as %XX (upper-case hex). So `.`, `*`, `>`, `%`,
// whitespace and non-ASCII can never split or widen a token, and decoding is
// decodeURIComponent. `app.orders` → `app%2Eorders`, `room 1` → `room%201`.
//
// A table-wide event (one without a channel, such as a truncate) has the
// channel token `%`: the encoding never produces a lone `%`, so it cannot
// collide with a real channel.
//
// Logical messages (MQTT retain=0 publishes, Supabase broadcasts and presence
// diffs; docs/streams.md#logical-messages) are on walcast.%.%%<channel>: the
// table token `%` and the channel mark `%%` are never produced by the
// encoding, so no filter naming a table (`walcast.chat_messages.>`) or a
// channel (`walcast.*.room-1`), nor the truncates' `walcast.*.%`, matches
// them, and the subject is still three tokens (a stream on `walcast.*.*`
// holds it). `walcast.%.>` is every message.
export const SUBJECT_PREFIX = 'walcast';
export const NO_CHANNEL_TOKEN = '%';
export const MESSAGE_TABLE_TOKEN = '%';
export const MESSAGE_CHANNEL_MARK = '%%';
/** What every logical message's subject starts with. */
export const MESSAGE_SUBJECT_START = `${SUBJECT_PREFIX}.${MESSAGE_TABLE_TOKEN}.${MESSAGE_CHANNEL_MARK}`;

const PLAIN = /^[A-Za-z0-9_-]+$/;

export function encodeToken(text: string): string {
  if (PLAIN.test(text)) return text;
  let out = '';
  for (const ch of text) {
    if (/[A-Za-z0-9_-]/.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeToken(token: string): string {
  return decodeURIComponent(token);
}

/** The subject of an event of `table` (as events name it) on `channel` (undefined: table-wide). */
export function subjectFor(table: string, channel: string | undefined): string {
  const ch = channel === undefined || channel === '' ? NO_CHANNEL_TOKEN : encodeToken(channel);
  return `${SUBJECT_PREFIX}.${encodeToken(table)}.${ch}`;
}

/** The subject of a logical message routed on `channel`. */
export function messageSubject(channel: string): string {
  return MESSAGE_SUBJECT_START + encodeToken(channel);
}

/** The channel of a logical message's subject; undefined when it is not one (or not decodable). */
export function messageChannelOf(subject: string): string | undefined {
  if (!subject.startsWith(MESSAGE_SUBJECT_START)) return undefined;
  const token = subject.slice(MESSAGE_SUBJECT_START.length);
  if (token.includes('.')) return undefined;
  try {
    return decodeToken(token);
  } catch {
    return undefined;
  }
}

/** The table and channel a subject names; undefined for a subject outside the scheme. */
export function parseSubject(subject: string): { table: string; channel: string | undefined } | undefined {
  const parts = subject.split('.');
  if (parts.length !== 3 || parts[0] !== SUBJECT_PREFIX) return undefined;
  try {
    return {
      table: decodeToken(parts[1]!),
      channel: parts[2] === NO_CHANNEL_TOKEN ? undefined : decodeToken(parts[2]!),
    };
  } catch {
    return undefined;
  }
}
