// A numeric's length as PostgreSQL stores and streams it. The text "1e131071"
// is nine characters, but numeric expands it to 131,072 digits, which every
// subscriber then receives. A published numeric may have at most
// MAX_NUMERIC_DIGITS digits once its exponent is applied: the largest
// precision a numeric column may declare (numeric(1000)).

export const MAX_NUMERIC_DIGITS = 1000;

const NUMERIC_TEXT = /^[-+]?(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/;

/** Why `value` (a numeric column's value, or an array of them) is too long; null when it is not. */
export function numericIssue(type: string, value: unknown): string | null {
  if (type !== 'numeric') return null;
  if (Array.isArray(value)) {
    for (const v of value) if (numericDigits(v) > MAX_NUMERIC_DIGITS) return tooLong;
    return null;
  }
  return numericDigits(value) > MAX_NUMERIC_DIGITS ? tooLong : null;
}

const tooLong = `is a numeric of more than ${MAX_NUMERIC_DIGITS} digits once its exponent is applied`;

/** Digits of the plain decimal form of a number or numeric text; 0 for anything else (the schema judges it). */
export function numericDigits(value: unknown): number {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string') return 0;
  const m = NUMERIC_TEXT.exec(text);
  if (!m) return 0;
  const digits = (m[1] ?? '').length + (m[2] ?? '').length;
  const exponent = m[3] ?? '0';
  // A long exponent string is an absurd exponent: no need to parse it.
  if (exponent.replace(/^[-+]?0*/, '').length > 7) return Number.MAX_SAFE_INTEGER;
  return digits + Math.abs(Number(exponent));
}
