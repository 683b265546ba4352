// A plain `ws` server that pushes frames it is given to the subscribers of
// a channel: the baseline the relay is compared with, and the WebSocket end
// of the reference alternatives. It speaks just enough of walcast's
// protocol for the fleet: subscribe → subscribed, then event frames.
// NOT part of the product.
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';

const SEND_QUEUE_BYTES = 1_048_576;

export class PushServer {
  private readonly channels = new Map<string, Set<WebSocket>>();
  private readonly corked = new Set<Socket>();
  private flushScheduled = false;
  readonly http: Server;
  private readonly wss: WebSocketServer;

  /** `coalesce`: one socket write per tick per client instead of one per frame. */
  constructor(private readonly coalesce: boolean) {
    this.http = createServer();
    this.wss = new WebSocketServer({ server: this.http, path: '/ws', perMessageDeflate: false });
    this.wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        const msg = JSON.parse(data.toString()) as { type: string; id?: string; channel?: string };
        if (msg.type !== 'subscribe' || !msg.channel) return;
        let subs = this.channels.get(msg.channel);
        if (!subs) this.channels.set(msg.channel, (subs = new Set()));
        subs.add(ws);
        ws.on('close', () => subs!.delete(ws));
        ws.send(JSON.stringify({ type: 'subscribed', id: msg.id, channel: msg.channel }));
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', () => r()));
    const addr = this.http.address();
    return `ws://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/ws`;
  }

  /** Send one pre-serialised frame to every subscriber of `channel`. */
  publish(channel: string, frame: Buffer): void {
    const subs = this.channels.get(channel);
    if (!subs) return;
    for (const ws of subs) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      // The relay's bound (WALCAST_SEND_QUEUE_BYTES, default 1 MiB) and close
      // code, so that an overloaded baseline sheds clients as walcast does
      // instead of buffering without limit.
      if (ws.bufferedAmount > SEND_QUEUE_BYTES) {
        ws.close(4008, 'slow consumer');
        setTimeout(() => ws.terminate(), 1000).unref();
        continue;
      }
      if (this.coalesce) this.cork(ws);
      ws.send(frame, { binary: false });
    }
  }

  private cork(ws: WebSocket): void {
    const socket = (ws as unknown as { _socket: Socket })._socket;
    if (this.corked.has(socket)) return;
    socket.cork();
    this.corked.add(socket);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const s of this.corked) s.uncork();
    this.corked.clear();
  }
}

/** A frame shaped like a walcast event, serialised once. */
export function eventFrame(channel: string, row: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ type: 'event', channel, table: 'chat_messages', op: 'insert', row }));
}

/** Tell the parent the URL, then live until it goes away. */
export function announce(url: string): void {
  process.send?.({ type: 'ready', url });
  process.on('disconnect', () => process.exit(0));
}
