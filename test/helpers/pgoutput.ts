// Builds pgoutput messages byte by byte, as the PostgreSQL docs lay them out
// (protocol-logicalrep-message-formats), for decoder tests without a server.

export class Bytes {
  private parts: Buffer[] = [];
  byte(c: string | number): this {
    this.parts.push(Buffer.from([typeof c === 'string' ? c.charCodeAt(0) : c]));
    return this;
  }
  int16(n: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    this.parts.push(b);
    return this;
  }
  int32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    this.parts.push(b);
    return this;
  }
  int64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    this.parts.push(b);
    return this;
  }
  cstring(s: string): this {
    this.parts.push(Buffer.from(`${s}\0`, 'utf8'));
    return this;
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export type Value = string | null | 'UNCHANGED';
export const UNCHANGED = 'UNCHANGED' as const;

export function tupleData(values: Value[]): Bytes {
  const b = new Bytes().int16(values.length);
  for (const v of values) {
    if (v === null) b.byte('n');
    else if (v === UNCHANGED) b.byte('u');
    else {
      const text = Buffer.from(v, 'utf8');
      b.byte('t').int32(text.length).raw(text);
    }
  }
  return b;
}

export function relationMsg(
  oid: number,
  schema: string,
  name: string,
  cols: { name: string; typeOid: number; key?: boolean }[],
  identity: 'd' | 'f' | 'i' | 'n' = 'd',
): Buffer {
  const b = new Bytes().byte('R').int32(oid).cstring(schema).cstring(name).byte(identity).int16(cols.length);
  for (const c of cols)
    b.byte(c.key ? 1 : 0)
      .cstring(c.name)
      .int32(c.typeOid)
      .int32(-1);
  return b.build();
}

export const beginMsg = (finalLsn: bigint, commitTime: bigint, xid: number): Buffer =>
  new Bytes().byte('B').int64(finalLsn).int64(commitTime).int32(xid).build();

export const commitMsg = (commitLsn: bigint, endLsn: bigint, commitTime: bigint): Buffer =>
  new Bytes().byte('C').byte(0).int64(commitLsn).int64(endLsn).int64(commitTime).build();

export const insertMsg = (oid: number, values: Value[]): Buffer =>
  new Bytes().byte('I').int32(oid).byte('N').raw(tupleData(values).build()).build();

export function updateMsg(oid: number, newValues: Value[], old?: { kind: 'K' | 'O'; values: Value[] }): Buffer {
  const b = new Bytes().byte('U').int32(oid);
  if (old) b.byte(old.kind).raw(tupleData(old.values).build());
  return b.byte('N').raw(tupleData(newValues).build()).build();
}

export const deleteMsg = (oid: number, kind: 'K' | 'O', values: Value[]): Buffer =>
  new Bytes().byte('D').int32(oid).byte(kind).raw(tupleData(values).build()).build();

export const messageMsg = (transactional: boolean, lsn: bigint, prefix: string, content: string): Buffer => {
  const body = Buffer.from(content);
  return new Bytes()
    .byte('M')
    .byte(transactional ? 1 : 0)
    .int64(lsn)
    .cstring(prefix)
    .int32(body.length)
    .raw(body)
    .build();
};
