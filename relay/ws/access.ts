// Who a connection is and what it may send, on top of the protocol: the
// token given at connect or in `auth` messages (relay/auth/), the rate
// limits (taken for every frame, before it is parsed), and which messages
// are allowed before authentication (auth and ping only).
import type { AuthMessage, ClientMessage, ErrorCode, ServerMessage } from '../../client/protocol.ts';
import { CLOSE, withId, type AuthenticatedMessage } from '../../client/protocol.ts';
import type { Gate, Admission } from '../auth/gate.ts';
import type { Grants } from '../auth/grants.ts';
import type { TokenBucket } from '../auth/limits.ts';
import { Session } from '../auth/session.ts';
import type { Router, Sink } from '../hub/router.ts';

export interface AccessConnection extends Sink {
  readonly subscriptions: Set<string>;
  reply(msg: ServerMessage): void;
  error(code: ErrorCode, message?: string, id?: string): void;
  close(code: number, reason: string): void;
}

export class Access {
  readonly session: Session;
  private readonly bucket: TokenBucket;
  private subject: { sub: string; bucket: TokenBucket } | null = null;
  private ended = false;

  constructor(
    private readonly gate: Gate,
    private readonly conn: AccessConnection,
    private readonly router: Router,
  ) {
    this.session = new Session(conn);
    this.bucket = gate.connectionBucket();
  }

  /** Apply what the upgrade decided: grants, a pending token, or a bad token (closes 4003). */
  start(admission: Extract<Admission, { ok: true }>): void {
    if (admission.tokenError !== undefined) return this.conn.close(CLOSE.authFailed, reason(admission.tokenError));
    if (admission.grants) return this.grant(admission.grants);
    this.session.awaitToken(this.gate.settings.authTimeoutMs);
  }

  get grants(): Grants | null {
    return this.session.grants;
  }

  /** Take a rate-limit token for one frame, before it is parsed; false when over a limit. */
  take(): boolean {
    return this.bucket.take() && (this.subject === null || this.subject.bucket.take());
  }

  /** False (and an error sent) when `msg` may not be handled now. */
  admit(msg: ClientMessage): boolean {
    if (this.session.grants === null && msg.type !== 'auth' && msg.type !== 'ping') {
      this.conn.error('unauthenticated', undefined, msg.id);
      return false;
    }
    return true;
  }

  async auth(msg: AuthMessage): Promise<void> {
    let grants: Grants;
    try {
      grants = await this.gate.grantsFor(msg.token);
    } catch (err) {
      const message = (err as Error).message;
      this.conn.error('invalid_token', message, msg.id);
      if (this.session.grants === null) this.conn.close(CLOSE.authFailed, reason(message));
      return;
    }
    if (this.ended) return; // closed while the token was checked
    const current = this.session.grants;
    if (current !== null && current.sub !== grants.sub) {
      this.conn.error('invalid_token', 'a refreshed token must have the same sub as the one it replaces', msg.id);
      return;
    }
    this.grant(grants);
    this.revokeForbidden(grants);
    const reply = withId<AuthenticatedMessage>({ type: 'authenticated' }, msg.id);
    if (grants.sub !== null) reply.sub = grants.sub;
    if (grants.expiresAtMs !== null) reply.expires_at = new Date(grants.expiresAtMs).toISOString();
    this.conn.reply(reply);
  }

  private grant(grants: Grants): void {
    this.session.authenticate(grants);
    if (grants.sub !== null && this.subject === null)
      this.subject = { sub: grants.sub, bucket: this.gate.subjectBucket(grants.sub) };
  }

  /** A refreshed token may allow fewer channels: end the subscriptions it no longer allows. */
  private revokeForbidden(grants: Grants): void {
    for (const channel of [...this.conn.subscriptions]) {
      if (grants.canSubscribe(channel)) continue;
      this.conn.subscriptions.delete(channel);
      this.router.unsubscribe(channel, this.conn);
      this.conn.reply({ type: 'unsubscribed', channel });
    }
  }

  end(): void {
    this.ended = true;
    this.session.end();
    if (this.subject) this.gate.releaseSubject(this.subject.sub);
    this.subject = null;
  }
}

/** A close reason must fit in 123 bytes. */
function reason(text: string): string {
  const full = `invalid token: ${text}`;
  return Buffer.byteLength(full) <= 123 ? full : full.slice(0, 120);
}
