// The walcast client SDK under Node: the same API, on the `ws` package
// (Node 20 has no global WebSocket).
import { WebSocket } from 'ws';
import { WalcastClient, type ClientOptions, type WebSocketConstructor } from './sdk.ts';

export * from './index.ts';

export function createClient(url: string | readonly string[], options: ClientOptions = {}): WalcastClient {
  return new WalcastClient(url, { WebSocket: WebSocket as unknown as WebSocketConstructor, ...options });
}
