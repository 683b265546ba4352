// A failed first contact with PostgreSQL, said plainly: unreachable host,
// refused connection, bad login or missing database become
// database_unreachable with host:port/database (never the password).
import { SQLSTATE, WalcastError, sqlState } from '../errors.ts';

export function asStartupError(err: unknown, url: string): unknown {
  if (err instanceof WalcastError) return err;
  const code = (err as { code?: string }).code;
  const state = sqlState(err);
  const network = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH';
  if (
    network ||
    state === SQLSTATE.invalidPassword ||
    state === SQLSTATE.invalidAuthorization ||
    state === SQLSTATE.invalidCatalogName
  ) {
    const target = safeTarget(url);
    return new WalcastError('database_unreachable', { target, detail: (err as Error).message }, err);
  }
  return err;
}

/** host:port/database of a URL, without the password. */
export function safeTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return 'DATABASE_URL';
  }
}
