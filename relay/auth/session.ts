// One connection's authentication: its grants, the auth timeout while it has
// none, and its token's expiry while connected. States:
//
//   pending ──auth ok──▶ authenticated ──exp passes──▶ closed 4001
//      │                   │    ▲
//      │ timeout / bad     └auth┘ (refresh: same sub, new exp and claims)
//      ▼ token
//   closed 4002 / 4003
import { CLOSE } from '../../client/protocol.ts';
import type { Grants } from './grants.ts';

/** setTimeout's longest delay; a later expiry is re-armed when it fires. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface SessionHost {
  close(code: number, reason: string): void;
}

export class Session {
  private grantsNow: Grants | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: SessionHost) {}

  get grants(): Grants | null {
    return this.grantsNow;
  }

  /** Wait `ms` for a token; close with 4002 if none came. */
  awaitToken(ms: number): void {
    this.arm(ms, () => {
      if (!this.grantsNow)
        this.host.close(
          CLOSE.authTimeout,
          `authentication timed out: send {"type":"auth","token":"…"} within ${ms} ms`,
        );
    });
  }

  /** Take `grants` (first token or a refresh); close with 4001 once they expire. */
  authenticate(grants: Grants): void {
    this.grantsNow = grants;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (grants.expiresAtMs !== null) this.armExpiry(grants.expiresAtMs);
  }

  private armExpiry(at: number): void {
    this.arm(Math.max(0, at - Date.now()), () => {
      if (Date.now() < at) return this.armExpiry(at);
      this.host.close(CLOSE.tokenExpired, 'token expired: send {"type":"auth"} with a fresh token before it expires');
    });
  }

  private arm(ms: number, fire: () => void): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(fire, Math.min(ms, MAX_DELAY_MS));
    this.timer.unref();
  }

  end(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
