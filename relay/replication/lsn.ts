// Log sequence numbers. PostgreSQL prints them as two hex halves, "16/B374D848"
// (pg_lsn's text form); on the wire they are 64-bit big-endian integers. Here
// they are bigints, which compare and subtract exactly.

export type Lsn = bigint;

export function parseLsn(text: string): Lsn {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!m) throw new TypeError(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: Lsn): string {
  const hi = Number(lsn >> 32n)
    .toString(16)
    .toUpperCase();
  const lo = Number(lsn & 0xffffffffn)
    .toString(16)
    .toUpperCase();
  return `${hi}/${lo}`;
}

/** Fixed-width, zero-padded hex: sorts like the number under string comparison. */
export function lsnToHex16(lsn: Lsn): string {
  return lsn.toString(16).toUpperCase().padStart(16, '0');
}

export function hex16ToLsn(hex: string): Lsn {
  return BigInt(`0x${hex}`);
}
