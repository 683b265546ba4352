// Configuration: every option is an environment variable and a CLI flag,
// with a default. The table below is the single source for both, and for the
// configuration table of docs/configuration.md (a test checks they agree). Invalid values
// stop start-up with one line naming the variable and what is allowed.
// The table's rows are in relay/options/ (core, security, doors), in this order.
import { parseArgs } from 'node:util';
import { WalcastError } from './errors.ts';
import type { LogFormat, LogLevel } from './log.ts';
import type { Parser } from './options/parsers.ts';
import { CORE_OPTIONS } from './options/core.ts';
import { SECURITY_OPTIONS } from './options/security.ts';
import { DOOR_OPTIONS } from './options/doors.ts';

export { usableSecret } from './options/parsers.ts';

export interface Config {
  databaseUrl: string | undefined;
  host: string;
  port: number;
  slot: string;
  publication: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  dataDir: string;
  embeddedPort: number;
  example: boolean | undefined;
  maxSubscriptions: number;
  maxFrameBytes: number;
  sendQueueBytes: number;
  slowConsumerMs: number;
  maxEventBytes: number;
  heartbeatMs: number;
  ttlSchedule: string;
  recoverySeconds: number;
  recoveryEvents: number;
  recoveryMaxBytes: number;
  recoveryRebuildBytes: number;
  /** A restart re-reading at least this much WAL serves live rows from a temporary slot meanwhile (0: never). */
  liveSlotBytes?: number;
  /** While the temporary slot serves, the re-read of the window may take this percent of the time (100: flat out). */
  rebuildPercent?: number;
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
  // Resource limits (issue 18); optional so that callers (tests) may leave them to the defaults: limit().
  maxConnections?: number;
  httpTimeoutMs?: number;
  snapshotsPerConnection?: number;
  snapshotsPerSubject?: number;
  snapshotQueue?: number;
  snapshotTimeoutMs?: number;
  replayMaxBytes?: number;
  replaysPerIp?: number;
  // [sinks] The JetStream change stream (relay/sinks/, docs/streams.md); unset URL: no sink.
  natsUrl?: string | undefined;
  natsStream?: string;
  natsToken?: string | undefined;
  natsUser?: string | undefined;
  natsPassword?: string | undefined;
  natsCreds?: string | undefined;
  natsCa?: string | undefined;
  natsMaxAgeSeconds?: number;
  natsBufferBytes?: number;
  // [edge] `walcast edge` (relay/edge/, docs/scaling.md): where its clients' publishes INSERT.
  publishDatabaseUrl?: string | undefined;
  // [sinks] Webhooks (relay/sinks/webhooks.ts, docs/webhooks.md).
  webhookBatchEvents?: number;
  webhookBatchBytes?: number;
  webhookMaxAttempts?: number;
  webhookTimeoutMs?: number;
  webhookRetryMs?: number;
  webhookBufferBytes?: number;
  // MQTT front door (relay/mqtt/, docs/mqtt.md). Unset port: 1883, given up with a warning if taken.
  mqttPort?: number | 'off' | undefined;
  mqttRetainedLimit?: number;
  // Supabase door (relay/supabase/, docs/supabase.md).
  presenceLeaseMs?: number;
}

export const OPTIONS = [...CORE_OPTIONS, ...SECURITY_OPTIONS, ...DOOR_OPTIONS] as const;

type LimitKey =
  | 'maxConnections'
  | 'httpTimeoutMs'
  | 'snapshotsPerConnection'
  | 'snapshotsPerSubject'
  | 'snapshotQueue'
  | 'snapshotTimeoutMs'
  | 'replayMaxBytes'
  | 'replaysPerIp';

/** A resource limit: the configured value, or its default when the caller left it out. */
export function limit(config: Partial<Config>, key: LimitKey): number {
  return config[key] ?? (OPTIONS.find((o) => o.key === key)!.default as number);
}

/** Read the configuration from flags (first) and the environment. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries(
        OPTIONS.map((o) => [o.flag, { type: 'boolean' in o ? ('boolean' as const) : ('string' as const) }]),
      ),
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new WalcastError('config_invalid', {
      detail: `${(err as Error).message}; run with --help to list the options`,
    });
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
  const rows = OPTIONS.map(
    (o) =>
      `  --${o.flag.padEnd(18)} ${o.env.padEnd(26)} ${o.help} (default: ${'shown' in o ? o.shown : (o.default ?? 'unset')})`,
  );
  return ['Usage: walcast start [options]', '', 'Options (flag, environment variable):', ...rows].join('\n');
}
