// Per-socket write coalescing. Every frame sent to a socket is its own
// write (ws writes the header and the payload, each a syscall when the
// socket is not corked), and per-socket writes dominate the CPU of fan-out:
// measured with bench/ (see bench/README.md), one write per frame delivered
// several times fewer frames per CPU-second than writing a socket's frames
// of one event-loop tick together. So the first frame a socket gets in a
// tick corks it, and the tick's end (setImmediate, after the I/O callbacks
// that produced the frames) uncorks every corked socket: one writev each.
//
// Bounded: corked bytes sit in the socket's writable buffer, which ws counts
// in bufferedAmount, so the send-queue bound still applies; a tick adds no
// more delay than the work done in it.
import type { Duplex } from 'node:stream';

export class WriteCoalescer {
  private readonly corked = new Set<Duplex>();
  private scheduled = false;

  /** Hold `socket`'s writes until the end of this tick. */
  cork(socket: Duplex): void {
    if (this.corked.has(socket)) return;
    socket.cork();
    this.corked.add(socket);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    for (const socket of this.corked) socket.uncork();
    this.corked.clear();
  };
}
