// One message for one flow: payload → the row to write (or post), or the
// reason it becomes a dead letter. Pure. Mapping rules (docs/ingest.md#mapping):
// the payload is a UTF-8 JSON object; it must match the flow's schema; topic
// captures are set over payload keys of the same name (the topic says which
// device or tenant sent it, not the payload); the dedup key is a capture or
// a string or number field.
import type { RelayErrorCode } from '../errors.ts';
import type { Flow } from './catalog.ts';

export type Row = Record<string, unknown>;

export type Decoded =
  | { ok: true; row: Row; dedup: string | undefined }
  | { ok: false; code: RelayErrorCode; params: Record<string, string> };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decode(flow: Flow, topic: string, payload: Buffer, captures: Record<string, string>): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(payload));
  } catch (err) {
    return fail(flow, topic, 'ingest_invalid_json', { detail: (err as Error).message });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return fail(flow, topic, 'ingest_not_object', {
      detail: value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value,
    });
  }
  if (flow.validate && !flow.validate(value)) {
    const detail = (flow.validate.errors ?? [])
      .slice(0, 5)
      .map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`)
      .join('; ');
    return fail(flow, topic, 'ingest_schema_mismatch', { detail });
  }
  // The parsed object is this message's own: the captures are set on it, as a spread into a new
  // object would set them (same keys in the same order), without copying it.
  const row = value as Row;
  for (const k in captures) {
    if (k === '__proto__')
      Object.defineProperty(row, k, { value: captures[k], enumerable: true, writable: true, configurable: true });
    else row[k] = captures[k];
  }
  let dedup: string | undefined;
  if (flow.dedupKey) {
    const key = row[flow.dedupKey];
    if (typeof key !== 'string' && typeof key !== 'number')
      return fail(flow, topic, 'ingest_dedup_key_missing', { key: flow.dedupKey });
    dedup = String(key);
  }
  return { ok: true, row, dedup };
}

function fail(flow: Flow, topic: string, code: RelayErrorCode, detail: Record<string, string> = {}): Decoded {
  return { ok: false, code, params: { flow: flow.name, topic, ...detail } };
}
