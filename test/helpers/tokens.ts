// Signed test tokens (jose), with the claims walcast reads.
import { SignJWT, type JWTPayload, type CryptoKey, type KeyObject } from 'jose';

export const TEST_SECRET = 'walcast-test-secret-of-at-least-32-characters';

export interface TokenOptions {
  alg?: 'HS256' | 'RS256' | 'ES256';
  key?: CryptoKey | KeyObject | Uint8Array;
  kid?: string;
  /** Seconds from now; null: no exp. */
  expiresIn?: number | null;
}

export async function token(claims: JWTPayload, opts: TokenOptions = {}): Promise<string> {
  const alg = opts.alg ?? 'HS256';
  const jwt = new SignJWT(claims).setProtectedHeader(opts.kid ? { alg, kid: opts.kid } : { alg }).setIssuedAt();
  if (opts.expiresIn !== null) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + (opts.expiresIn ?? 3600));
  return jwt.sign(opts.key ?? new TextEncoder().encode(TEST_SECRET));
}

/** A token with `alg: none`: no signature at all. */
export function unsignedToken(claims: JWTPayload): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
}
