// Standard Webhooks signatures (https://www.standardwebhooks.com/, "Signature
// scheme"): the signed content is `${webhook-id}.${webhook-timestamp}.${body}`,
// the key is the base64 after `whsec_`, the signature HMAC-SHA256 in base64,
// sent as `webhook-signature: v1,<signature>`. Pure.
import { createHmac } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';

/** The HMAC key of a `whsec_…` secret; undefined when it is not one. */
export function secretKey(secret: string): Buffer | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return undefined;
  const b64 = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined;
  const key = Buffer.from(b64, 'base64');
  return key.length > 0 ? key : undefined;
}

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** The three headers for `body` sent as message `id` at `timestampSec` (seconds since 1970). */
export function signWebhook(key: Buffer, id: string, timestampSec: number, body: string): SignedHeaders {
  const timestamp = String(Math.floor(timestampSec));
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` };
}
