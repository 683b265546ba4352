// Configuration: every option is an environment variable and a CLI flag,
// with a default. The table below is the single source for both, and for the
// README's configuration table (a test checks they agree). Invalid values
// stop start-up with one line naming the variable and what is allowed.
import { parseArgs } from 'node:util';
import { validate as validateCron } from 'node-cron';
import { WalcastError } from './errors.ts';
import { LOG_LEVELS, type LogLevel } from './log.ts';

export interface Config {
  databaseUrl: string | undefined;
  host: string;
  port: number;
  slot: string;
  publication: string;
  logLevel: LogLevel;
  dataDir: string;
  embeddedPort: number;
  example: boolean | undefined;
  maxSubscriptions: number;
  maxFrameBytes: number;
  sendQueueBytes: number;
  slowConsumerMs: number;
  heartbeatMs: number;
  ttlSchedule: string;
  recoverySeconds: number;
  recoveryEvents: number;
  recoveryMaxBytes: number;
  // Security (relay/auth/settings.ts fills in what a caller leaves out).
  jwtSecret?: string | undefined;
  jwtPublicKey?: string | undefined;
  jwksUrl?: string | undefined;
  jwtIssuer?: string | undefined;
  jwtAudience?: string | undefined;
  insecure?: boolean;
  allowedOrigins?: string[] | undefined;
  publish?: 'token' | 'open' | 'off' | undefined;
  authTimeoutMs?: number;
  rateLimit?: number;
  subjectRateLimit?: number;
  maxConnectionsPerIp?: number;
  shutdownSeconds: number;
  watchdogMs: number;
  lagWarnSeconds: number;
  lagWarnBytes: number;
  standbyPollMs: number;
  // MQTT front door (relay/mqtt/, docs/mqtt.md). Unset port: 1883, given up with a warning if taken.
  mqttPort?: number | 'off' | undefined;
  mqttRetainedLimit?: number;
}

type Parser<T> = (raw: string) => T | undefined;

interface OptionSpec<K extends keyof Config> {
  key: K;
  env: string;
  flag: string;
  default: Config[K];
  allowed: string;
  parse: Parser<Config[K]>;
  help: string;
  /** A flag that may stand alone (`--insecure`); its variable takes true/false. */
  boolean?: true;
  /** Never echoed in error messages. */
  secret?: true;
  /** The default as help shows it, when the value is left unset on purpose. */
  shown?: string;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const ident: Parser<string> = (v) => (IDENTIFIER.test(v) ? v : undefined);
const int = (min: number, max: number): Parser<number> => (v) => {
  if (!/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return n >= min && n <= max ? n : undefined;
};
const pem: Parser<string> = (v) => {
  // Environment variables often carry a PEM on one line with literal \n.
  const text = v.replace(/\\n/g, '\n').trim();
  return /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----$/.test(text) ? text : undefined;
};
const httpUrl: Parser<string> = (v) => (/^https?:\/\/\S+$/.test(v) ? v : undefined);
const origins: Parser<string[]> = (v) => {
  const list = v.split(',').map((o) => o.trim()).filter(Boolean);
  return list.length > 0 && list.every((o) => o === '*' || /^https?:\/\/[^/\s]+$/.test(o)) ? list : undefined;
};
const bool: Parser<boolean> = (v) => ({ true: true, '1': true, false: false, '0': false })[v.toLowerCase()];

function opt<K extends keyof Config>(spec: OptionSpec<K>): OptionSpec<K> {
  return spec;
}

export const OPTIONS = [
  opt({ key: 'databaseUrl', env: 'DATABASE_URL', flag: 'database-url', default: undefined, allowed: 'a postgres:// or postgresql:// URL', parse: (v) => (/^postgres(ql)?:\/\//.test(v) ? v : undefined), help: 'PostgreSQL to use; unset: an embedded PostgreSQL in WALCAST_DATA_DIR' }),
  opt({ key: 'host', env: 'HOST', flag: 'host', default: '127.0.0.1', allowed: 'a host name or IP address', parse: (v) => (v.length > 0 ? v : undefined), help: 'address the HTTP and WebSocket server listens on' }),
  opt({ key: 'port', env: 'PORT', flag: 'port', default: 8080, allowed: 'an integer from 0 to 65535', parse: int(0, 65535), help: 'port of the HTTP and WebSocket server (0: any free port)' }),
  opt({ key: 'slot', env: 'WALCAST_SLOT', flag: 'slot', default: 'walcast', allowed: 'a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters)', parse: ident, help: 'name of the logical replication slot' }),
  opt({ key: 'publication', env: 'WALCAST_PUBLICATION', flag: 'publication', default: 'realtime_events', allowed: 'a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters)', parse: ident, help: 'publication whose tables are streamed' }),
  opt({ key: 'logLevel', env: 'WALCAST_LOG_LEVEL', flag: 'log-level', default: 'info', allowed: LOG_LEVELS.join(', '), parse: (v) => (LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : undefined, help: 'log level (JSON lines on stdout)' }),
  opt({ key: 'dataDir', env: 'WALCAST_DATA_DIR', flag: 'data-dir', default: '.walcast', allowed: 'a directory path', parse: (v) => (v.length > 0 ? v : undefined), help: 'embedded mode: where the embedded PostgreSQL keeps its data' }),
  opt({ key: 'embeddedPort', env: 'WALCAST_EMBEDDED_PORT', flag: 'embedded-port', default: 54329, allowed: 'an integer from 1 to 65535', parse: int(1, 65535), help: 'embedded mode: the embedded PostgreSQL\'s port on 127.0.0.1' }),
  opt({ key: 'example', env: 'WALCAST_EXAMPLE', flag: 'example', default: undefined, allowed: 'true or false', parse: bool, help: 'install the example tables (default: true in embedded mode, false with DATABASE_URL)' }),
  opt({ key: 'maxSubscriptions', env: 'WALCAST_MAX_SUBSCRIPTIONS', flag: 'max-subscriptions', default: 100, allowed: 'an integer from 1 to 100000', parse: int(1, 100_000), help: 'subscriptions one connection may hold' }),
  opt({ key: 'maxFrameBytes', env: 'WALCAST_MAX_FRAME_BYTES', flag: 'max-frame-bytes', default: 65_536, allowed: 'an integer from 1024 to 16777216', parse: int(1024, 16 * 1024 * 1024), help: 'largest frame a client may send; larger closes with 1009' }),
  opt({ key: 'sendQueueBytes', env: 'WALCAST_SEND_QUEUE_BYTES', flag: 'send-queue-bytes', default: 1_048_576, allowed: 'an integer from 65536 to 1073741824', parse: int(65_536, 1024 ** 3), help: 'bytes queued for one slow client before it is closed with 4008' }),
  opt({ key: 'slowConsumerMs', env: 'WALCAST_SLOW_CONSUMER_MS', flag: 'slow-consumer-ms', default: 2000, allowed: 'an integer from 100 to 60000', parse: int(100, 60_000), help: 'a client whose queue stays over half of WALCAST_SEND_QUEUE_BYTES this long is closed with 4008; meanwhile the relay stops reading the replication stream' }),
  opt({ key: 'heartbeatMs', env: 'WALCAST_HEARTBEAT_MS', flag: 'heartbeat-ms', default: 15_000, allowed: 'an integer from 100 to 3600000', parse: int(100, 3_600_000), help: 'ping interval; a client silent for two intervals is dropped' }),
  opt({ key: 'ttlSchedule', env: 'WALCAST_TTL_SCHEDULE', flag: 'ttl-schedule', default: '*/10 * * * * *', allowed: 'a cron expression (node-cron, seconds field optional)', parse: (v) => (validateCron(v) ? v : undefined), help: 'when the TTL job prunes expired rows' }),
  opt({ key: 'recoverySeconds', env: 'WALCAST_RECOVERY_SECONDS', flag: 'recovery-seconds', default: 300, allowed: 'an integer from 0 to 86400', parse: int(0, 86_400), help: 'recovery window by age: clients resume with `since` within it; the slot keeps this much WAL' }),
  opt({ key: 'recoveryEvents', env: 'WALCAST_RECOVERY_EVENTS', flag: 'recovery-events', default: 10_000, allowed: 'an integer from 0 to 10000000', parse: int(0, 10_000_000), help: 'recovery window by count: events kept per channel (0: no resume)' }),
  opt({ key: 'recoveryMaxBytes', env: 'WALCAST_RECOVERY_MAX_BYTES', flag: 'recovery-max-bytes', default: 64 * 1024 * 1024, allowed: 'an integer from 0 to 17179869184', parse: int(0, 16 * 1024 ** 3), help: 'recovery window by memory: bytes of events kept in all' }),
  opt({ key: 'jwtSecret', env: 'WALCAST_JWT_SECRET', flag: 'jwt-secret', default: undefined, allowed: 'a secret of at least 32 characters', parse: (v) => (v.length >= 32 ? v : undefined), help: 'verify client tokens as HS256 JWTs with this secret', secret: true }),
  opt({ key: 'jwtPublicKey', env: 'WALCAST_JWT_PUBLIC_KEY', flag: 'jwt-public-key', default: undefined, allowed: 'a PEM public key (-----BEGIN PUBLIC KEY-----, RSA or P-256; \\n may stand for newlines)', parse: pem, help: 'verify client tokens as RS256/ES256 JWTs with this public key' }),
  opt({ key: 'jwksUrl', env: 'WALCAST_JWKS_URL', flag: 'jwks-url', default: undefined, allowed: 'an http:// or https:// URL', parse: httpUrl, help: 'verify client tokens (RS256/ES256) with the keys this JWKS URL serves' }),
  opt({ key: 'jwtIssuer', env: 'WALCAST_JWT_ISSUER', flag: 'jwt-issuer', default: undefined, allowed: 'a string', parse: (v) => v, help: 'tokens must carry this iss claim' }),
  opt({ key: 'jwtAudience', env: 'WALCAST_JWT_AUDIENCE', flag: 'jwt-audience', default: undefined, allowed: 'a string', parse: (v) => v, help: 'tokens must carry this aud claim' }),
  opt({ key: 'insecure', env: 'WALCAST_INSECURE', flag: 'insecure', default: false, allowed: 'true or false', parse: bool, help: 'allow serving without a JWT key on a non-loopback address (anyone may read and publish)', boolean: true }),
  opt({ key: 'allowedOrigins', env: 'WALCAST_ALLOWED_ORIGINS', flag: 'allowed-origins', default: undefined, allowed: 'a comma-separated list of origins (https://app.example.com) or *', parse: origins, help: 'browser Origins allowed to connect (unset: any with a key configured, loopback pages only without)' }),
  opt({ key: 'publish', env: 'WALCAST_PUBLISH', flag: 'publish', default: undefined, allowed: 'token, open or off', parse: (v) => (['token', 'open', 'off'].includes(v) ? (v as 'token' | 'open' | 'off') : undefined), help: 'who may publish rows over WebSocket (unset: token with a key configured, open without)' }),
  opt({ key: 'authTimeoutMs', env: 'WALCAST_AUTH_TIMEOUT_MS', flag: 'auth-timeout-ms', default: 10_000, allowed: 'an integer from 100 to 600000', parse: int(100, 600_000), help: 'with a key configured, time to send a token before the connection is closed (4002)' }),
  opt({ key: 'rateLimit', env: 'WALCAST_RATE_LIMIT', flag: 'rate-limit', default: 100, allowed: 'an integer from 1 to 1000000', parse: int(1, 1_000_000), help: 'messages per second one connection may send (bursts of twice that)' }),
  opt({ key: 'subjectRateLimit', env: 'WALCAST_SUBJECT_RATE_LIMIT', flag: 'subject-rate-limit', default: 300, allowed: 'an integer from 1 to 1000000', parse: int(1, 1_000_000), help: 'messages per second all connections of one token subject may send (bursts of twice that)' }),
  opt({ key: 'maxConnectionsPerIp', env: 'WALCAST_MAX_CONNECTIONS_PER_IP', flag: 'max-connections-per-ip', default: 1000, allowed: 'an integer from 1 to 1000000', parse: int(1, 1_000_000), help: 'WebSocket connections one client address may hold' }),
  opt({ key: 'shutdownSeconds', env: 'WALCAST_SHUTDOWN_SECONDS', flag: 'shutdown-seconds', default: 10, allowed: 'an integer from 1 to 3600', parse: int(1, 3600), help: 'graceful shutdown deadline; past it the process exits with status 1' }),
  opt({ key: 'watchdogMs', env: 'WALCAST_WATCHDOG_MS', flag: 'watchdog-ms', default: 10_000, allowed: 'an integer from 100 to 3600000', parse: int(100, 3_600_000), help: 'how often the slot watchdog checks the slot and emits a heartbeat' }),
  opt({ key: 'lagWarnSeconds', env: 'WALCAST_LAG_WARN_SECONDS', flag: 'lag-warn-seconds', default: 30, allowed: 'an integer from 1 to 86400', parse: int(1, 86_400), help: 'replication lag (seconds) above which a warning is logged and /readyz is 503' }),
  opt({ key: 'lagWarnBytes', env: 'WALCAST_LAG_WARN_BYTES', flag: 'lag-warn-bytes', default: 1024 ** 3, allowed: 'an integer from 1 to 1099511627776', parse: int(1, 1024 ** 4), help: 'replication lag (bytes of WAL) above which a warning is logged and /readyz is 503' }),
  opt({ key: 'mqttPort', env: 'WALCAST_MQTT_PORT', flag: 'mqtt-port', default: undefined, shown: '1883', allowed: 'an integer from 0 to 65535, or off', parse: (v) => (v === 'off' ? 'off' : int(0, 65535)(v)), help: 'MQTT over TCP on HOST (0: any free port; off: none). The default 1883, if taken, is given up with a warning; an explicit port that cannot be bound stops start-up' }),
  opt({ key: 'mqttRetainedLimit', env: 'WALCAST_MQTT_RETAINED_LIMIT', flag: 'mqtt-retained-limit', default: 1000, allowed: 'an integer from 1 to 100000', parse: int(1, 100_000), help: 'most current rows an MQTT subscription gets as retained messages (the newest)' }),
  opt({ key: 'standbyPollMs', env: 'WALCAST_STANDBY_POLL_MS', flag: 'standby-poll-ms', default: 500, allowed: 'an integer from 50 to 60000', parse: int(50, 60_000), help: 'a standby relay tries to take over the slot this often' }),
] as const;

/** Read the configuration from flags (first) and the environment. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: 'boolean' in o ? ('boolean' as const) : ('string' as const) }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new WalcastError('config_invalid', { detail: `${(err as Error).message}; run with --help to list the options` });
  }
  const config = {} as Record<keyof Config, unknown>;
  for (const o of OPTIONS) {
    const fromFlag = values[o.flag];
    const raw = typeof fromFlag === 'string' ? fromFlag : fromFlag === true ? 'true' : env[o.env];
    if (raw === undefined || raw === '') {
      config[o.key] = o.default;
      continue;
    }
    const parsed = (o.parse as Parser<unknown>)(raw);
    if (parsed === undefined) {
      throw new WalcastError('config_invalid', {
        detail: `${o.env} (--${o.flag}) must be ${o.allowed}; got ${'secret' in o ? `${raw.length} characters` : JSON.stringify(raw)}`,
      });
    }
    config[o.key] = parsed;
  }
  return config as Config;
}

export function helpText(): string {
  const rows = OPTIONS.map((o) => `  --${o.flag.padEnd(18)} ${o.env.padEnd(26)} ${o.help} (default: ${'shown' in o ? o.shown : (o.default ?? 'unset')})`);
  return ['Usage: walcast start [options]', '', 'Options (flag, environment variable):', ...rows].join('\n');
}
