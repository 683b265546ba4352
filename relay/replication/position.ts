// Event positions: opaque strings to clients, unique per event, that sort in
// commit order under plain string comparison. The layout is
//   <commit LSN, 16 hex digits>-<index in the transaction, 8 hex digits>
// The commit LSN orders transactions (pgoutput sends them in commit order);
// the index, counted from 1, orders rows inside one. Index 0 never names an
// event: "<lsn>-00000000" is a point in the stream, before that transaction.

import { hex16ToLsn, lsnToHex16, type Lsn } from './lsn.ts';

export interface PositionParts {
  commitLsn: Lsn;
  index: number;
}

const POSITION_RE = /^([0-9A-F]{16})-([0-9A-F]{8})$/;

export function formatPosition(commitLsn: Lsn, index: number): string {
  return `${lsnToHex16(commitLsn)}-${index.toString(16).toUpperCase().padStart(8, '0')}`;
}

/** The stream point just before any event of a transaction committing at or after `lsn`. */
export function streamPoint(lsn: Lsn): string {
  return formatPosition(lsn, 0);
}

export function parsePosition(text: string): PositionParts | undefined {
  const m = POSITION_RE.exec(text);
  if (!m) return undefined;
  return { commitLsn: hex16ToLsn(m[1]!), index: parseInt(m[2]!, 16) };
}
