// NATS and the JetStream stream the sink writes to: connection options from
// the configuration, the stream created when missing (or checked when it
// exists), and the last position it stores, read at start and after every
// failure so that publishing resumes exactly after it.
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import {
  AuthorizationError,
  connect,
  credsAuthenticator,
  UserAuthenticationExpiredError,
  type NodeConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { fromSeed } from '@nats-io/nkeys';
import { WalcastError } from '../errors.ts';
import { SUBJECT_PREFIX } from './subject.ts';
import { parseMsgId } from './message.ts';

export interface NatsSettings {
  url: string;
  stream: string;
  maxAgeSeconds: number;
  token?: string | undefined;
  user?: string | undefined;
  password?: string | undefined;
  credsFile?: string | undefined;
  caFile?: string | undefined;
}

/** Duplicate window of a stream walcast creates (Nats-Msg-Id dedup). */
export const DUPLICATE_WINDOW_SECONDS = 120;
const NANOS = 1_000_000_000;

export function connectionOptions(s: NatsSettings): NodeConnectionOptions {
  const opts: NodeConnectionOptions = {
    servers: s.url,
    name: 'walcast',
    // Reconnect for ever: publishing resumes where it stopped.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    timeout: 5000,
  };
  if (s.token) opts.token = s.token;
  if (s.user) opts.user = s.user;
  if (s.password) opts.pass = s.password;
  if (s.credsFile) {
    const path = s.credsFile;
    checkCreds(path);
    // Read again at each (re)connect: a file replaced while the relay runs
    // (new credentials after nats_auth_failed) is used without a restart.
    opts.authenticator = credsAuthenticator(() => readFileSync(path));
  }
  const hosts = serverHosts(s.url);
  if (s.caFile || hosts.tls) {
    // Passed to tls.connect as they are (nats.js types only the options it reads itself).
    opts.tls = {
      ...(s.caFile ? { caFile: s.caFile } : {}),
      // nats.js upgrades its socket to TLS without the host's name when the
      // URL names an IP address, and Node then checks the certificate
      // against "localhost": check it against the hosts configured instead.
      checkServerIdentity: (host: string, cert: PeerCertificate) => {
        if (host !== 'localhost' || hosts.names.length === 0) return checkServerIdentity(host, cert);
        const errors = hosts.names.map((h) => checkServerIdentity(h, cert));
        return errors.includes(undefined) ? undefined : errors[0];
      },
    } as NonNullable<NodeConnectionOptions['tls']>;
  }
  return opts;
}

/** The blocks of a .creds file: `-----BEGIN NATS USER JWT-----`, then `-----BEGIN USER NKEY SEED-----`. */
const CREDS_BLOCK = /-{3,}BEGIN ([A-Z ]+)-{3,}\r?\n\s*(\S+)\s*\r?\n\s*-{3,}END \1-{3,}/g;

/**
 * Fail at start-up, with the fix, on a creds file nats.js could not use: not
 * readable, no user JWT and user seed, or a seed that is not the JWT's user's
 * (NATS would only say "Authorization Violation", retried for ever).
 */
export function checkCreds(path: string): void {
  const invalid = (detail: string, cause?: unknown) => new WalcastError('nats_creds_invalid', { path, detail }, cause);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw invalid((err as Error).message, err);
  }
  const blocks = new Map([...text.matchAll(CREDS_BLOCK)].map((m) => [m[1]!, m[2]!]));
  const jwt = blocks.get('NATS USER JWT');
  const seed = blocks.get('USER NKEY SEED');
  if (!jwt || !seed) throw invalid('it has no NATS USER JWT block and USER NKEY SEED block');
  let publicKey: string;
  try {
    publicKey = fromSeed(new TextEncoder().encode(seed)).getPublicKey();
  } catch (err) {
    throw invalid(`its seed is not an NKey seed (${(err as Error).message})`, err);
  }
  let subject: unknown;
  try {
    subject = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')).sub;
  } catch {
    throw invalid('its JWT cannot be decoded');
  }
  if (subject !== publicKey) throw invalid(`its seed is not that of the JWT's user (${String(subject)})`);
}

/** The hosts of WALCAST_NATS_URL (comma-separated, scheme optional), and whether one asks for TLS. */
function serverHosts(url: string): { names: string[]; tls: boolean } {
  const names: string[] = [];
  let tls = false;
  for (const part of url.split(',')) {
    const text = part.trim();
    if (!text) continue;
    try {
      const u = new URL(text.includes('://') ? text : `nats://${text}`);
      names.push(u.hostname.replace(/^\[|\]$/g, ''));
      tls ||= u.protocol === 'tls:';
    } catch {
      // config.ts validated the URL; a part it let through is left to nats.js
    }
  }
  return { names, tls };
}

/** Node's TLS error codes for a certificate that cannot be trusted or does not match the host. */
const TLS_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** A NATS failure as the error the log shows: refused credentials and TLS get their own codes and fixes. */
export function natsError(err: unknown, s: NatsSettings): WalcastError {
  if (err instanceof WalcastError) return err;
  const detail = (err as Error)?.message ?? String(err);
  if (err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError)
    return new WalcastError('nats_auth_failed', { url: redactUrl(s.url), detail }, err);
  let cause: unknown = err;
  for (let depth = 0; cause && depth < 4; depth++, cause = (cause as { cause?: unknown }).cause) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' && TLS_CODES.has(code))
      return new WalcastError('nats_tls_failed', { url: redactUrl(s.url), detail: (cause as Error).message }, err);
  }
  return new WalcastError('nats_publish_failed', { stream: s.stream, detail }, err);
}

/** The URL without a password or token in it, for the log. */
function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@,]*@/g, '//…@');
}

export function openNats(s: NatsSettings): Promise<NatsConnection> {
  return connect(connectionOptions(s));
}

/** The stream's settings when walcast creates it (docs/streams.md). */
export function streamConfig(s: NatsSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: s.stream,
    subjects: [`${SUBJECT_PREFIX}.>`],
    storage: 'file' as StreamConfig['storage'],
    max_age: s.maxAgeSeconds * NANOS,
    duplicate_window: DUPLICATE_WINDOW_SECONDS * NANOS,
  };
}

/** Can a stream with these subjects hold every walcast.<table>.<channel>? */
export function coversWalcast(subjects: readonly string[]): boolean {
  return subjects.some(
    (s) => s === '>' || s === `${SUBJECT_PREFIX}.>` || s === `${SUBJECT_PREFIX}.*.*` || s === `${SUBJECT_PREFIX}.*.>`,
  );
}

/** Create the stream if missing; an existing one is used as it is, if it can hold the subjects. */
export async function ensureStream(jsm: JetStreamManager, s: NatsSettings): Promise<void> {
  let subjects: string[] | undefined;
  try {
    subjects = (await jsm.streams.info(s.stream)).config.subjects ?? [];
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (subjects === undefined) {
    try {
      await jsm.streams.add(streamConfig(s));
      return;
    } catch (err) {
      throw new WalcastError(
        'nats_stream_incompatible',
        { stream: s.stream, detail: `creating it failed: ${(err as Error).message}` },
        err,
      );
    }
  }
  if (!coversWalcast(subjects)) {
    throw new WalcastError('nats_stream_incompatible', {
      stream: s.stream,
      detail: `its subjects are ${JSON.stringify(subjects)}`,
    });
  }
}

export interface StoredTail {
  /** The stream's last sequence (0: empty). */
  seq: number;
  /** Order key of the last walcast message stored ('' when none). */
  key: string;
}

/** The last message the stream stores, as an order key. */
export async function readTail(jsm: JetStreamManager, stream: string): Promise<StoredTail> {
  const info = await jsm.streams.info(stream);
  const seq = info.state.last_seq;
  if (seq === 0 || info.state.messages === 0) return { seq, key: '' };
  const msg = await jsm.streams.getMessage(stream, { seq }).catch((err: unknown) => {
    if (isNotFound(err)) return null;
    throw err;
  });
  const id = msg?.header?.get('Nats-Msg-Id');
  return { seq, key: (id && parseMsgId(id)) || '' };
}

export { jetstreamManager };

export function isNotFound(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.NoMessageFound)
  );
}
