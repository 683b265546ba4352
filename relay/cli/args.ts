// What the subcommands share: --help, strict flag parsing that fails with
// config_invalid, the database URL, the relay URL.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import pg from 'pg';
import { WalcastError } from '../errors.ts';

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(
  command: string,
  argv: string[],
  options: Options,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new WalcastError('config_invalid', {
      detail: `walcast ${command}: ${(err as Error).message}; see walcast ${command} --help`,
    });
  }
}

export const DATABASE_OPTIONS = { 'database-url': { type: 'string' } } as const satisfies Options;

/** --database-url, else DATABASE_URL; these commands need a server of yours. */
export function databaseUrl(command: string, values: Record<string, unknown>, env: NodeJS.ProcessEnv): string {
  const url = typeof values['database-url'] === 'string' ? values['database-url'] : env.DATABASE_URL;
  if (!url || !/^postgres(ql)?:\/\//.test(url)) {
    throw new WalcastError('config_invalid', {
      detail: `walcast ${command} needs DATABASE_URL (or --database-url), a postgres:// URL`,
    });
  }
  return url;
}

export async function withPool<T>(url: string, fn: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

export const RELAY_URL_OPTIONS = { url: { type: 'string' }, token: { type: 'string' } } as const satisfies Options;
export const DEFAULT_RELAY_URL = 'http://127.0.0.1:8080';

/** --url, else WALCAST_URL, else the default; http(s):// or ws(s)://, returned as http(s). */
export function relayUrl(values: Record<string, unknown>, env: NodeJS.ProcessEnv): string {
  const raw = (typeof values.url === 'string' ? values.url : env.WALCAST_URL) || DEFAULT_RELAY_URL;
  if (!/^(http|ws)s?:\/\//.test(raw))
    throw new WalcastError('config_invalid', {
      detail: `--url must be an http(s):// or ws(s):// URL of a relay; got ${JSON.stringify(raw)}`,
    });
  return raw
    .replace(/^ws/, 'http')
    .replace(/\/ws\/?$/, '')
    .replace(/\/$/, '');
}

/** --token, else WALCAST_TOKEN: a JWT for relays that require one (docs/security.md). */
export function relayToken(values: Record<string, unknown>, env: NodeJS.ProcessEnv): string | undefined {
  return (typeof values.token === 'string' ? values.token : env.WALCAST_TOKEN) || undefined;
}
