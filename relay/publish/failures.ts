// A failed INSERT of a published row, as the client sees it: a stable code
// by SQLSTATE (never by message text) and a message that names the column or
// constraint but carries no value and nothing of the server's internals.
import type { ErrorCode } from '../../client/protocol.ts';
import { SQLSTATE, SQLSTATE_CLASS, sqlState } from '../errors.ts';

export interface Failure {
  code: ErrorCode;
  message: string;
}

/** Drizzle wraps the driver's error (DrizzleQueryError); the PostgreSQL error is its cause. */
function postgresError(err: unknown): unknown {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (sqlState(e) && (e as { severity?: string }).severity) return e;
  }
  return err;
}

export function failureOf(thrown: unknown): Failure {
  const err = postgresError(thrown);
  const state = sqlState(err);
  const e = err as { column?: string; constraint?: string; severity?: string };
  if (!state || !e.severity)
    return { code: 'publish_failed', message: 'the row could not be inserted; it has been logged' };
  const constraint = e.constraint ? ` (${e.constraint})` : '';
  switch (state) {
    case SQLSTATE.uniqueViolation:
      return { code: 'duplicate', message: `a row with the same unique key already exists${constraint}` };
    case SQLSTATE.notNullViolation:
      return { code: 'missing_value', message: `column ${e.column ?? '?'} may not be null` };
    case SQLSTATE.foreignKeyViolation:
      return { code: 'reference_not_found', message: `a value refers to a row that does not exist${constraint}` };
    case SQLSTATE.checkViolation:
      return { code: 'check_failed', message: `the row violates a check constraint${constraint}` };
    case SQLSTATE.exclusionViolation:
      return { code: 'check_failed', message: `the row violates an exclusion constraint${constraint}` };
  }
  // Class 22, data exception: invalid text (22P02), too long (22001), out of range (22003), bad date (22007, 22008)…
  if (state.startsWith(SQLSTATE_CLASS.dataException))
    return { code: 'invalid_value', message: `a value cannot be stored in its column (SQLSTATE ${state})` };
  return { code: 'publish_failed', message: 'the row could not be inserted; it has been logged' };
}
