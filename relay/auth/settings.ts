// The relay's security settings, resolved once at start from the
// configuration: how tokens are verified (or that they are not), who may
// publish, and the limits. The start-up rule lives here: with no key, the
// relay serves only on a loopback address, unless told --insecure.
import { isIP } from 'node:net';
import { OPTIONS, usableSecret, type Config } from '../config.ts';
import { WalcastError } from '../errors.ts';

export type KeySource =
  | { kind: 'none' }
  | { kind: 'secret'; secret: string }
  | { kind: 'public-key'; pem: string }
  | { kind: 'jwks'; url: string };

export interface SecuritySettings {
  key: KeySource;
  issuer: string | undefined;
  audience: string | undefined;
  /** Who may publish: any connection (open), tokens with a `publish` claim (token), nobody (off). */
  publish: 'token' | 'open' | 'off';
  /** Browser Origins allowed; null: any. */
  allowedOrigins: string[] | null;
  authTimeoutMs: number;
  rateLimit: number;
  subjectRateLimit: number;
  maxConnectionsPerIp: number;
}

type SecurityKey =
  | 'jwtSecret'
  | 'jwtPublicKey'
  | 'jwksUrl'
  | 'jwtIssuer'
  | 'jwtAudience'
  | 'insecure'
  | 'allowedOrigins'
  | 'publish'
  | 'authTimeoutMs'
  | 'rateLimit'
  | 'subjectRateLimit'
  | 'maxConnectionsPerIp';

/** The configured value, or the OPTIONS default when the caller (a test, say) left it out. */
function setting<K extends SecurityKey>(config: Partial<Config>, key: K): Config[K] {
  if (config[key] !== undefined) return config[key];
  return OPTIONS.find((o) => o.key === key)!.default as Config[K];
}

/** Origins a page served from a loopback address has; allowed when no key is configured. */
const LOOPBACK_ORIGIN = /^https?:\/\/(localhost|127(?:\.\d{1,3}){3}|\[::1\])(:\d+)?$/;

export function securitySettings(config: Partial<Config> & { host: string }): SecuritySettings {
  const sources = [
    config.jwtSecret && ({ kind: 'secret', secret: config.jwtSecret } as const),
    config.jwtPublicKey && ({ kind: 'public-key', pem: config.jwtPublicKey } as const),
    config.jwksUrl && ({ kind: 'jwks', url: config.jwksUrl } as const),
  ].filter((s): s is Exclude<KeySource, { kind: 'none' }> => Boolean(s));
  if (sources.length > 1) {
    throw new WalcastError('config_invalid', {
      detail: 'set only one of WALCAST_JWT_SECRET, WALCAST_JWT_PUBLIC_KEY and WALCAST_JWKS_URL',
    });
  }
  const key: KeySource = sources[0] ?? { kind: 'none' };
  // The same rule as the variable's parser, for relays started from code.
  if (key.kind === 'secret' && usableSecret(key.secret) === undefined) {
    throw new WalcastError('config_invalid', {
      detail: 'WALCAST_JWT_SECRET must be at least 32 characters other than whitespace',
    });
  }
  if (key.kind === 'none' && !isLoopback(config.host) && !setting(config, 'insecure')) {
    throw new WalcastError('auth_required', { host: config.host });
  }
  const origins = setting(config, 'allowedOrigins');
  return {
    key,
    issuer: setting(config, 'jwtIssuer'),
    audience: setting(config, 'jwtAudience'),
    publish: setting(config, 'publish') ?? (key.kind === 'none' ? 'open' : 'token'),
    allowedOrigins: origins?.includes('*') ? null : (origins ?? (key.kind === 'none' ? ['loopback'] : null)),
    authTimeoutMs: setting(config, 'authTimeoutMs')!,
    rateLimit: setting(config, 'rateLimit')!,
    subjectRateLimit: setting(config, 'subjectRateLimit')!,
    maxConnectionsPerIp: setting(config, 'maxConnectionsPerIp')!,
  };
}

/** Is `origin` (the browser's Origin header, absent for non-browser clients) allowed? */
export function originAllowed(settings: SecuritySettings, origin: string | undefined): boolean {
  if (origin === undefined || settings.allowedOrigins === null) return true;
  return settings.allowedOrigins.some((o) => (o === 'loopback' ? LOOPBACK_ORIGIN.test(origin) : o === origin));
}

/**
 * In open mode, is the request's `Host` one a DNS rebinding attack cannot
 * produce? A page on rebind.example whose name resolves to 127.0.0.1 sends
 * `Host: rebind.example`; a page that reached the relay by its address or as
 * localhost is the relay's own origin. So: localhost and IP literals pass,
 * other names do not. With a key configured, tokens protect the relay and
 * every Host passes. A request without Host (HTTP/1.0) is no browser's.
 */
export function hostAllowed(settings: SecuritySettings, host: string | undefined): boolean {
  if (settings.key.kind !== 'none' || host === undefined) return true;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) return isIP(bracketed[1]!) === 6;
  const name = host.replace(/:\d+$/, '').toLowerCase();
  return name === 'localhost' || isIP(name) === 4;
}

/** 127.0.0.0/8, ::1 and localhost: reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** What the start-up log line says about the mode. */
export function describeMode(s: SecuritySettings, host: string): { mode: string; message: string } {
  if (s.key.kind !== 'none') {
    return {
      mode: `jwt-${s.key.kind}`,
      message: `clients authenticate with JWTs (${s.key.kind}); publishing: ${s.publish}`,
    };
  }
  const where = isLoopback(host) ? 'bound to loopback' : `bound to ${host} with --insecure`;
  return {
    mode: 'open',
    message: `no JWT key configured: open mode (${where}); every client may subscribe to every channel; publishing: ${s.publish}. Set WALCAST_JWT_SECRET, WALCAST_JWT_PUBLIC_KEY or WALCAST_JWKS_URL to require tokens`,
  };
}
