// The header block of a change-stream message, read by the edge itself.
// nats.js decodes a message's headers into a MsgHdrs on first access: every
// key is canonicalised and looked up again, every value checked with a
// regular expression, a Map of arrays built — for six headers of which an
// edge reads four. In a profile of an edge with few clients that was more
// than half of its own per-message time (relay/edge/source.ts handle) and
// much of its garbage. Here the block's bytes are decoded once to a string,
// and only the four values an edge routes by are looked up in it. Pure,
// except rawHeaderBlock and headerReader, which read nats.js's message.
//
// The block as NATS sends it (ADR-4): `NATS/1.0[ status]` CRLF, then
// `Key: value` CRLF lines, then CRLF. Keys are compared exactly, as nats.js's
// MsgHdrs.get does by default; a repeated key gives its first value.
import type { JsMsg } from '@nats-io/jetstream';

const CRLF = '\r\n';

/**
 * The value of `key` in a header block (first occurrence, trimmed);
 * undefined when absent. A key is found only at the start of a line, so a
 * value that contains another key's name is never taken for it.
 */
export function headerValue(block: string, key: string): string | undefined {
  const at = block.indexOf(`${CRLF}${key}:`);
  if (at < 0) return undefined;
  const from = at + key.length + 3;
  const end = block.indexOf(CRLF, from);
  return block.slice(from, end < 0 ? block.length : end).trim();
}

/** What nats.js keeps of a received message (nats-core MsgImpl): the bytes of headers and payload, and where the payload starts. */
interface ReceivedMsg {
  _rdata?: Uint8Array;
  _msg?: { hdr?: number };
}

/**
 * The header block of `m` as text, read from nats.js's received bytes;
 * undefined when the message has no headers, or when nats.js keeps them in
 * another shape (a version that changed its internals: the caller falls back
 * to m.headers, and test/integration/edge-header-block.test.ts fails on a real
 * message so the change is noticed).
 */
export function rawHeaderBlock(m: JsMsg): string | undefined {
  const raw = (m as unknown as { msg?: ReceivedMsg }).msg;
  const hdr = raw?._msg?.hdr;
  const data = raw?._rdata;
  if (typeof hdr !== 'number' || hdr <= 0 || !(data instanceof Uint8Array) || hdr > data.length) return undefined;
  return Buffer.from(data.buffer, data.byteOffset, hdr).toString('utf8');
}

/** A message's headers by name: read from its bytes, or through nats.js's MsgHdrs when those cannot be read. */
export function headerReader(m: JsMsg): (name: string) => string | undefined {
  const block = rawHeaderBlock(m);
  if (block === undefined) return (name) => m.headers?.get(name) || undefined;
  return (name) => headerValue(block, name) || undefined;
}
