// What a connection may do, from its token's claims:
//   sub               the subject; rate limits and `{sub}` in patterns use it
//   channels          patterns of the channels it may subscribe to
//   publish           the tables it may publish to ("chat_messages", "app.orders", "*")
//   publish_channels  patterns of the channels its published rows may go to (default: channels)
// A pattern is literal text where `*` matches any run of characters and
// `{sub}` stands for the token's sub, literally (a `*` in a sub is no
// wildcard). Absent claims grant nothing. With no key configured, the
// open grant allows every channel, and publishing as WALCAST_PUBLISH says.
import type { JWTPayload } from 'jose';
import { toShortName } from '../table-names.ts';

export interface Grants {
  /** True when the grants come from a verified token; false in open mode. */
  token: boolean;
  /** Null in open mode, or when the token has no sub. */
  sub: string | null;
  claims: Readonly<Record<string, unknown>>;
  /** `exp` in ms since 1970; null: the token does not expire (or there is none). */
  expiresAtMs: number | null;
  canSubscribe(channel: string): boolean;
  canPublishTo(table: string): boolean;
  canPublishOn(channel: string): boolean;
}

const MAX_PATTERNS = 256;

export function openGrants(publish: boolean): Grants {
  return {
    token: false,
    sub: null,
    claims: {},
    expiresAtMs: null,
    canSubscribe: () => true,
    canPublishTo: () => publish,
    canPublishOn: () => true,
  };
}

export function grantsFromClaims(payload: JWTPayload, publishMode: 'token' | 'open' | 'off'): Grants {
  const sub = typeof payload.sub === 'string' ? payload.sub : null;
  const channels = compile(strings(payload.channels), sub);
  const publishChannels =
    payload.publish_channels === undefined ? channels : compile(strings(payload.publish_channels), sub);
  const tables = new Set(strings(payload.publish).map(toShortName));
  return {
    token: true,
    sub,
    claims: payload as Record<string, unknown>,
    expiresAtMs: typeof payload.exp === 'number' ? payload.exp * 1000 : null,
    canSubscribe: (channel) => channels.some((re) => re.test(channel)),
    canPublishTo: (table) =>
      publishMode === 'open' || (publishMode === 'token' && (tables.has('*') || tables.has(table))),
    canPublishOn: (channel) => publishChannels.some((re) => re.test(channel)),
  };
}

/** A claim that should be a list of strings: a lone string counts as one; anything else grants nothing. */
function strings(claim: unknown): string[] {
  if (typeof claim === 'string') return [claim];
  if (!Array.isArray(claim)) return [];
  return claim
    .filter((c): c is string => typeof c === 'string' && c.length > 0 && c.length <= 512)
    .slice(0, MAX_PATTERNS);
}

/** Patterns as anchored regular expressions; a `{sub}` pattern without a sub matches nothing. */
export function compile(patterns: string[], sub: string | null): RegExp[] {
  const out: RegExp[] = [];
  for (const p of patterns) {
    const parts = p.split('{sub}');
    if (parts.length > 1 && sub === null) continue;
    const body = parts.map((part) => part.split('*').map(escapeRegExp).join('.*')).join(escapeRegExp(sub ?? ''));
    out.push(new RegExp(`^${body}$`, 's'));
  }
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Does `pattern` admit `channel` for `sub`? (For tests and the HTTP routes.) */
export function matchChannel(pattern: string, channel: string, sub: string | null): boolean {
  return compile([pattern], sub).some((re) => re.test(channel));
}
