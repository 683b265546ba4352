// A flow's topic filter: an MQTT filter (MQTT 3.1.1 section 4.7) where a
// level may be written {column}; that level matches like + and its value is
// captured into the column. Pure: the filter walcast subscribes with, and a
// matcher that returns the captures of a topic, or undefined.
// walcast.topic_filter_captures (sql/007_ingest.sql) checks the same syntax
// when a flow is added; this is the relay's side of it.

export interface FlowFilter {
  /** What SUBSCRIBE sends: captures written +, a $share/<group>/ prefix kept. */
  subscription: string;
  /** The captured column names, in level order. */
  captures: string[];
  /** The captures of `topic` ({} when there are none), or undefined when it does not match. */
  match(topic: string): Record<string, string> | undefined;
}

const CAPTURE = /^\{([a-z_][a-z0-9_]{0,62})\}$/;
const SHARE = /^\$share\/([^/+#{}]+)\//;

export class TopicFilterError extends Error {
  constructor(filter: string, why: string) {
    super(`topic filter ${JSON.stringify(filter)}: ${why}`);
    this.name = 'TopicFilterError';
  }
}

type Level = { kind: 'text'; text: string } | { kind: 'one'; capture?: string } | { kind: 'rest' };

export function parseFlowFilter(filter: string): FlowFilter {
  if (filter === '' || filter.length > 1000) throw new TopicFilterError(filter, 'empty or longer than 1000 characters');
  const share = SHARE.exec(filter);
  if (filter.startsWith('$share/') && (!share || share[0].length === filter.length)) {
    throw new TopicFilterError(filter, 'write $share/<group>/<filter>');
  }
  const body = share ? filter.slice(share[0].length) : filter;
  const levels = body.split('/').map((text, i, all) => parseLevel(filter, text, i === all.length - 1));
  const captures = levels.flatMap((l) => (l.kind === 'one' && l.capture ? [l.capture] : []));
  if (new Set(captures).size !== captures.length) throw new TopicFilterError(filter, 'a column is captured twice');
  const mqttFilter = levels.map((l) => (l.kind === 'text' ? l.text : l.kind === 'one' ? '+' : '#')).join('/');
  return {
    subscription: (share?.[0] ?? '') + mqttFilter,
    captures,
    match: (topic) => matchLevels(levels, topic),
  };
}

function parseLevel(filter: string, text: string, last: boolean): Level {
  if (text === '#') {
    if (!last) throw new TopicFilterError(filter, '# must be the last level');
    return { kind: 'rest' };
  }
  if (text === '+') return { kind: 'one' };
  const capture = CAPTURE.exec(text);
  if (capture) return { kind: 'one', capture: capture[1]! };
  if (/[+#{}]/.test(text)) {
    throw new TopicFilterError(filter, `level ${JSON.stringify(text)} mixes a wildcard or a {column} with text`);
  }
  return { kind: 'text', text };
}

/** MQTT 4.7.2: a filter starting with a wildcard does not match topics starting with $. */
function matchLevels(levels: Level[], topic: string): Record<string, string> | undefined {
  const parts = topic.split('/');
  if (topic.startsWith('$') && levels[0]!.kind !== 'text') return undefined;
  const captured: Record<string, string> = {};
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    // `a/#` matches `a` too (MQTT 4.7.1.2).
    if (level.kind === 'rest') return captured;
    const part = parts[i];
    if (part === undefined) return undefined;
    if (level.kind === 'text') {
      if (part !== level.text) return undefined;
    } else if (level.capture) {
      captured[level.capture] = part;
    }
  }
  return parts.length === levels.length ? captured : undefined;
}
