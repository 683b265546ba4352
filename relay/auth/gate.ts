// The door of the WebSocket endpoint: what is decided before a connection
// exists. Every TCP connection to the port (WebSocket or plain HTTP) is
// counted against its address as it is accepted (track); one over the limit
// is answered 429 on its first request and cut soon after. An upgrade is
// refused with an HTTP status when the Host is refused in open mode (403),
// the browser's Origin is not allowed (403) or its address holds too many
// connections (429). A token given at connect, as `?token=` or as the subprotocol
// `bearer.<token>`, is verified here; the relay selects the subprotocol
// `walcast.v1` and never echoes the token.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { BEARER_PREFIX, ERROR_CODES, MAX_TOKEN_LENGTH, SUBPROTOCOL } from '../../client/protocol.ts';
import type { Logger } from '../log.ts';
import { grantsFromClaims, openGrants, type Grants } from './grants.ts';
import { Shared, TokenBucket } from './limits.ts';
import { hostAllowed, originAllowed, type SecuritySettings } from './settings.ts';
import { createVerifier, TokenError, type Verifier } from './verifier.ts';

export type Admission =
  | { ok: false; status: number; reason: string }
  /** grants null: authentication pending (a key is configured and no token came); tokenError: the token given was bad. */
  | { ok: true; grants: Grants | null; tokenError?: string };

/** How long a connection over its address's limit may stay to read its 429. */
const REFUSED_GRACE_MS = 2000;

export interface GateCounters {
  refusedOrigin: number;
  refusedAddress: number;
  authFailures: number;
}

export class Gate {
  readonly verifier: Verifier | null;
  readonly counters: GateCounters = { refusedOrigin: 0, refusedAddress: 0, authFailures: 0 };
  private readonly perAddress = new Shared(() => null);
  /** Sockets accepted over their address's limit: answered 429, then cut. */
  private readonly overLimit = new WeakSet<object>();
  private readonly subjects: Shared<TokenBucket>;

  constructor(
    readonly settings: SecuritySettings,
    private readonly logger: Logger,
  ) {
    this.verifier = createVerifier(settings);
    this.subjects = new Shared(() => new TokenBucket(settings.subjectRateLimit, settings.subjectRateLimit * 2));
  }

  get authRequired(): boolean {
    return this.verifier !== null;
  }

  /**
   * Count a newly accepted TCP connection against its address until it
   * closes. Over WALCAST_MAX_CONNECTIONS_PER_IP it is not counted but marked:
   * its request gets 429 (refusal()), and it is cut after REFUSED_GRACE_MS
   * whatever it sends, so that refused sockets cannot pile up.
   */
  track(socket: Socket): void {
    const address = socket.remoteAddress ?? 'unknown';
    if (this.perAddress.holders(address) >= this.settings.maxConnectionsPerIp) {
      this.counters.refusedAddress++;
      this.overLimit.add(socket);
      const timer = setTimeout(() => socket.destroy(), REFUSED_GRACE_MS);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
      return;
    }
    this.perAddress.acquire(address);
    socket.once('close', () => this.perAddress.release(address));
  }

  /** Why a request on `socket` must be refused with 429, or null. */
  refusal(socket: object): string | null {
    if (!this.overLimit.has(socket)) return null;
    return `this address holds ${this.settings.maxConnectionsPerIp} connections (WALCAST_MAX_CONNECTIONS_PER_IP); close some first`;
  }

  /** Decide on an upgrade (its socket was counted by track()). */
  async admit(req: IncomingMessage): Promise<Admission> {
    if (!hostAllowed(this.settings, req.headers.host))
      return { ok: false, status: 403, reason: ERROR_CODES.host_not_allowed };
    const origin = req.headers.origin;
    if (!originAllowed(this.settings, origin)) {
      this.counters.refusedOrigin++;
      this.logger.info({ origin }, 'refused a WebSocket upgrade from an origin not allowed');
      return { ok: false, status: 403, reason: `origin ${origin} is not allowed: add it to WALCAST_ALLOWED_ORIGINS` };
    }
    const refused = this.refusal(req.socket);
    if (refused) return { ok: false, status: 429, reason: refused };
    if (!this.verifier) return { ok: true, grants: openGrants(this.settings.publish === 'open') };
    const token = tokenOf(req);
    if (token === undefined) return { ok: true, grants: null };
    if (token.length > MAX_TOKEN_LENGTH) {
      this.counters.authFailures++;
      return { ok: true, grants: null, tokenError: `the token is longer than ${MAX_TOKEN_LENGTH} characters` };
    }
    try {
      return { ok: true, grants: await this.grantsFor(token) };
    } catch (err) {
      return { ok: true, grants: null, tokenError: (err as Error).message };
    }
  }

  /** Verify `token` and read what it allows; throws TokenError. */
  async grantsFor(token: string): Promise<Grants> {
    if (!this.verifier) return openGrants(this.settings.publish === 'open');
    try {
      return grantsFromClaims(await this.verifier.verify(token), this.settings.publish);
    } catch (err) {
      this.counters.authFailures++;
      // debug: a client with a stale token retries, and an attacker should not fill the log.
      this.logger.debug({ reason: (err as Error).message }, 'refused a token');
      if (err instanceof TokenError) throw err;
      throw new TokenError('the token could not be verified');
    }
  }

  /**
   * HTTP reads (GET /v1/channels/:channel/events): with a key configured, an
   * `Authorization: Bearer <token>` whose channels admit `channel`; null when allowed.
   */
  async authorizeRead(
    authorization: string | undefined,
    channel: string,
  ): Promise<{ status: number; code: string; message: string } | null> {
    if (!this.verifier) return null;
    const token = bearerToken(authorization);
    if (!token)
      return { status: 401, code: 'unauthenticated', message: 'send the token as Authorization: Bearer <token>' };
    let grants: Grants;
    try {
      grants = await this.grantsFor(token);
    } catch (err) {
      return { status: 401, code: 'invalid_token', message: (err as Error).message };
    }
    if (!grants.canSubscribe(channel))
      return { status: 403, code: 'forbidden', message: 'the token does not allow this channel' };
    return null;
  }

  /** The subject's shared bucket, held until release(). */
  subjectBucket(sub: string): TokenBucket {
    return this.subjects.acquire(sub);
  }

  releaseSubject(sub: string): void {
    this.subjects.release(sub);
  }

  connectionBucket(): TokenBucket {
    return new TokenBucket(this.settings.rateLimit, this.settings.rateLimit * 2);
  }

  /** ws `handleProtocols`: select walcast.v1 when offered; never a bearer token. */
  static selectProtocol(protocols: Set<string>): string | false {
    return protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false;
  }
}

/** The token of `?token=` or of a `bearer.<token>` subprotocol. */
export function tokenOf(req: IncomingMessage): string | undefined {
  const url = new URL(req.url ?? '/', 'http://relay');
  const fromQuery = url.searchParams.get('token');
  if (fromQuery) return fromQuery.slice(0, MAX_TOKEN_LENGTH + 1);
  const header = req.headers['sec-websocket-protocol'];
  if (typeof header !== 'string') return undefined;
  const bearer = header
    .split(',')
    .map((p) => p.trim())
    .find((p) => p.startsWith(BEARER_PREFIX));
  // One character over the limit is enough for admit() to refuse it.
  return bearer ? bearer.slice(BEARER_PREFIX.length, BEARER_PREFIX.length + MAX_TOKEN_LENGTH + 1) : undefined;
}

/** The bearer token of an `Authorization: Bearer …` header. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m?.[1];
}
