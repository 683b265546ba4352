// The NATS headers of a sink message, rendered as bytes in one string
// concatenation. nats.js's own MsgHdrs validates and canonicalises every key
// on every set (a handful of arrays and strings per header, six headers per
// message) and renders the block again at publish: a profile of a backlog
// drain showed that as a quarter of the sink's time and much of its garbage.
// Here the keys are constants, the per-event part is rendered once when the
// event is queued, and only Nats-Expected-Last-Sequence is added at publish.
//
// nats.js publishes headers by calling their encode() (what its own MsgHdrs
// does too); the other MsgHdrs methods are here so that the object is a
// complete, read-only MsgHdrs wherever else it may be read.
import type { Match, MsgHdrs } from '@nats-io/transport-node';

const CRLF = '\r\n';
const NATS_HEADER = 'NATS/1.0';

/** `Key: value` lines (each ending in CRLF) for fixed keys; a value with CR or LF is refused as nats.js refuses it. */
export function renderHeaderLines(entries: readonly (readonly [string, string])[]): string {
  let s = '';
  for (const [k, v] of entries) {
    if (/[\r\n]/.test(v)) throw new Error(`the value of NATS header ${k} cannot contain CR or LF`);
    s += `${k}: ${v.trim()}${CRLF}`;
  }
  return s;
}

export class StreamHeaders implements MsgHdrs {
  readonly hasError = false;
  readonly status = '';
  readonly code = 0;
  readonly description = '';
  private entries: [string, string][] | undefined;

  /** `lines`: from renderHeaderLines. */
  constructor(private readonly lines: string) {}

  /** The header block, as nats.js puts it on the wire (HPUB). */
  encode(): Uint8Array {
    return Buffer.from(`${NATS_HEADER}${CRLF}${this.lines}${CRLF}`);
  }

  get(k: string, match?: Match): string {
    return this.values(k, match)[0] ?? '';
  }

  last(k: string, match?: Match): string {
    return this.values(k, match).at(-1) ?? '';
  }

  has(k: string, match?: Match): boolean {
    return this.values(k, match).length > 0;
  }

  keys(): string[] {
    return [...new Set(this.parsed().map(([k]) => k))];
  }

  /** Keys compare exactly, whatever `match` asks: walcast writes them in one spelling. */
  values(k: string, _match?: Match): string[] {
    return this.parsed()
      .filter(([key]) => key === k)
      .map(([, v]) => v);
  }

  set(): void {
    throw new Error('StreamHeaders are read-only');
  }

  append(): void {
    throw new Error('StreamHeaders are read-only');
  }

  delete(): void {
    throw new Error('StreamHeaders are read-only');
  }

  *[Symbol.iterator](): Iterator<[string, string[]]> {
    for (const k of this.keys()) yield [k, this.values(k)];
  }

  private parsed(): [string, string][] {
    this.entries ??= this.lines
      .split(CRLF)
      .filter(Boolean)
      .map((line) => {
        const i = line.indexOf(':');
        return [line.slice(0, i), line.slice(i + 1).trim()];
      });
    return this.entries;
  }
}
