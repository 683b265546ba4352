// Column values: pgoutput sends each value in its text output form; this
// module turns that text into the JSON value clients receive (docs/protocol.md,
// "Row values"). The replication connection sets DateStyle=ISO, TimeZone=UTC,
// IntervalStyle=iso_8601, extra_float_digits=3 and bytea_output=hex (see
// stream.ts), so the text forms parsed here are fixed.
import { parse as parseArrayLiteral } from 'postgres-array';

export type Converter = (text: string) => unknown;

/** Session settings that fix the text forms parsed here; every connection that reads values uses them. */
export const TEXT_FORMAT_OPTIONS =
  '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex';

// Built-in type OIDs (src/include/catalog/pg_type.dat).
const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  jsonb: 3802,
} as const;

// Array type OID → element type OID, for the element types converted above
// (others' arrays arrive as arrays of strings).
const ARRAY_ELEMENT: Record<number, number> = {
  1000: OID.bool,
  1001: OID.bytea,
  1016: OID.int8,
  1005: OID.int2,
  1007: OID.int4,
  1028: OID.oid,
  199: OID.json,
  1021: OID.float4,
  1022: OID.float8,
  1115: OID.timestamp,
  1185: OID.timestamptz,
  1231: OID.numeric,
  3807: OID.jsonb,
  // Text-like arrays whose elements stay strings.
  1009: 25, // text[]
  1015: 1043, // varchar[]
  1014: 1042, // bpchar[]
  2951: 2950, // uuid[]
  1182: 1082, // date[]
  1183: 1083, // time[]
  1270: 1266, // timetz[]
  1187: 1186, // interval[]
  1003: 19, // name[]
  1041: 869, // inet[]
  651: 650, // cidr[]
};

const identity: Converter = (text) => text;
const toNumber: Converter = (text) => Number(text);
const toFloat: Converter = (text) => {
  // NaN and ±Infinity have no JSON number: they stay strings.
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
};
const toBool: Converter = (text) => text === 't';
const toJson: Converter = (text) => JSON.parse(text);
const toBase64: Converter = (text) => Buffer.from(text.slice(2), 'hex').toString('base64');

/** "2026-11-23 11:37:06.123456+00" → "2026-11-23T11:37:06.123456Z"; infinity stays as is. */
const toIsoTimestamptz: Converter = (text) => {
  if (text.length < 19 || text.endsWith(' BC')) return text;
  const t = `${text.slice(0, 10)}T${text.slice(11)}`;
  return t.endsWith('+00') ? `${t.slice(0, -3)}Z` : t;
};

/** "2026-11-23 11:37:06.123456" → "2026-11-23T11:37:06.123456" (no zone: the column has none). */
const toIsoTimestamp: Converter = (text) => {
  if (text.length < 19 || text.endsWith(' BC')) return text;
  return `${text.slice(0, 10)}T${text.slice(11)}`;
};

const SCALAR: Record<number, Converter> = {
  [OID.bool]: toBool,
  [OID.bytea]: toBase64,
  [OID.int8]: identity, // beyond 2^53: a string, as numeric
  [OID.int2]: toNumber,
  [OID.int4]: toNumber,
  [OID.oid]: toNumber,
  [OID.json]: toJson,
  [OID.jsonb]: toJson,
  [OID.float4]: toFloat,
  [OID.float8]: toFloat,
  [OID.numeric]: identity,
  [OID.timestamp]: toIsoTimestamp,
  [OID.timestamptz]: toIsoTimestamptz,
};

/** The converter for a column of type `typeOid`; unknown types keep their text form. */
export function converterFor(typeOid: number): Converter {
  const scalar = SCALAR[typeOid];
  if (scalar) return scalar;
  const element = ARRAY_ELEMENT[typeOid];
  if (element !== undefined) {
    const convert = SCALAR[element] ?? identity;
    return (text) => parseArrayLiteral(text, convert);
  }
  return identity;
}
