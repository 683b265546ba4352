// Token verification with jose: HS256 with a shared secret, RS256/ES256 with
// a PEM public key, or the keys of a JWKS URL (fetched and cached by jose,
// refetched when a token names a key id it has not seen). Algorithms are
// pinned per key source, so a token cannot choose `none` or switch an RSA
// public key into an HMAC secret.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, errors as joseErrors, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { WalcastError } from '../errors.ts';
import type { SecuritySettings } from './settings.ts';

export interface Verifier {
  verify(token: string): Promise<JWTPayload>;
}

export class TokenError extends Error {
  constructor(
    message: string,
    readonly expired = false,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

/** The latest instant a JavaScript Date can hold (ECMA-262 21.4.1.1). */
const MAX_DATE_MS = 8.64e15;

/** A clock skew allowance for `exp` and `nbf` at verification. */
const CLOCK_TOLERANCE_S = 5;

export function createVerifier(settings: SecuritySettings): Verifier | null {
  const { key } = settings;
  let getKey: Uint8Array | KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  switch (key.kind) {
    case 'none':
      return null;
    case 'secret':
      getKey = new TextEncoder().encode(key.secret);
      algorithms = ['HS256'];
      break;
    case 'public-key': {
      let k: KeyObject;
      try {
        k = createPublicKey(key.pem);
      } catch (err) {
        throw new WalcastError('auth_key_invalid', { detail: (err as Error).message }, err);
      }
      const curve = k.asymmetricKeyDetails?.namedCurve;
      if (k.asymmetricKeyType === 'rsa') algorithms = ['RS256'];
      else if (k.asymmetricKeyType === 'ec' && curve === 'prime256v1') algorithms = ['ES256'];
      else
        throw new WalcastError('auth_key_invalid', {
          detail: `a ${k.asymmetricKeyType} ${curve ?? ''} key is neither RSA nor P-256`,
        });
      getKey = k;
      break;
    }
    case 'jwks':
      getKey = createRemoteJWKSet(new URL(key.url), { timeoutDuration: 5000, cooldownDuration: 30_000 });
      algorithms = ['RS256', 'ES256'];
      break;
  }
  const options = {
    algorithms,
    clockTolerance: CLOCK_TOLERANCE_S,
    ...(settings.issuer ? { issuer: settings.issuer } : {}),
    ...(settings.audience ? { audience: settings.audience } : {}),
  };
  return {
    async verify(token: string): Promise<JWTPayload> {
      try {
        const { payload } = await jwtVerify(token, getKey as never, options);
        // jose checks that exp is a number in the future; 1e300 is, but no date is that late.
        if (payload.exp !== undefined && !(payload.exp * 1000 <= MAX_DATE_MS))
          throw new TokenError("the token's exp claim is out of range");
        return payload;
      } catch (err) {
        throw asTokenError(err);
      }
    },
  };
}

/** A message safe to send the client: says what is wrong with the token, never anything about the key. */
function asTokenError(err: unknown): TokenError {
  if (err instanceof TokenError) return err;
  if (err instanceof joseErrors.JWTExpired) return new TokenError('the token has expired', true);
  if (err instanceof joseErrors.JWTClaimValidationFailed)
    return new TokenError(`the token's ${err.claim} claim is not accepted`);
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return new TokenError('the token is signed with an algorithm this relay does not accept');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return new TokenError('the token signature does not verify');
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new TokenError('no key of the JWKS matches the token');
  if (err instanceof joseErrors.JWKSTimeout || (err as { code?: string }).code === 'ERR_JOSE_GENERIC') {
    return new TokenError('the relay could not fetch the keys to check the token; try again');
  }
  if (err instanceof joseErrors.JOSEError) return new TokenError('the token is malformed');
  return new TokenError('the token could not be verified');
}
