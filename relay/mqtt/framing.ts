// The size of each incoming packet, read from its fixed header (MQTT 2.2)
// before the parser buffers it: a client announcing a packet over the limit
// is refused before its bytes are held (MQTT 5 reason 0x95). Pure: bytes in,
// the first oversized packet's size out.

export class PacketSizeGuard {
  /** Body bytes of the current packet still to pass. */
  private skip = 0;
  private inLength = false;
  private value = 0;
  private multiplier = 1;
  private lengthBytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Bytes of a packet over the limit (or -1 for a malformed length) seen in `chunk`; null when all fit. */
  feed(chunk: Buffer): number | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      if (!this.inLength) {
        // First byte of the fixed header: packet type and flags.
        this.inLength = true;
        this.value = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
        i++;
        continue;
      }
      const b = chunk[i++]!;
      this.value += (b & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      if (b & 0x80) {
        if (this.lengthBytes === 4) return -1; // Remaining Length has at most 4 bytes
        continue;
      }
      this.inLength = false;
      const total = 1 + this.lengthBytes + this.value;
      if (total > this.maxBytes) return total;
      this.skip = this.value;
    }
    return null;
  }
}
