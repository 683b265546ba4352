// Where MQTT clients connect: TCP on WALCAST_MQTT_PORT, and WebSocket at
// /mqtt on the relay's HTTP server (subprotocol `mqtt`, what mqtt.js in a
// browser offers). Both hand bytes to a Session through a Transport. The
// WebSocket door goes through the same gate as /ws (Origin, connections per
// address, a `?token=`); the TCP door through the per-address limit.
import net from 'node:net';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import type { Admission } from '../auth/gate.ts';
import type { Grants } from '../auth/grants.ts';
import type { MqttServer } from './server.ts';
import type { Transport } from './session.ts';

export const MQTT_WS_PATH = '/mqtt';
/** Subprotocols an MQTT-over-WebSocket client may offer (MQTT 5 §6; `mqttv3.1` by old clients). */
const SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

export function listenTcp(server: MqttServer, host: string, port: number): Promise<net.Server> {
  const tcp = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {}); // a reset; 'close' follows
    const address = socket.remoteAddress ?? 'unknown';
    // Counted per address like every HTTP/WebSocket socket (WALCAST_MAX_CONNECTIONS_PER_IP).
    server.opts.gate.track(socket);
    if (server.opts.gate.refusal(socket) !== null) {
      socket.destroy();
      return;
    }
    const transport: Transport = {
      remoteAddress: address,
      write: (bytes) => void socket.write(bytes),
      buffered: () => socket.writableLength,
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      end: () => socket.end(),
      destroy: () => socket.destroy(),
    };
    const session = server.accept(transport, null);
    socket.on('data', (d: Buffer) => session.onData(d));
    socket.on('close', () => session.ended());
  });
  return new Promise((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ host, port }, () => {
      tcp.off('error', reject);
      resolve(tcp);
    });
  });
}

/** Serve MQTT over WebSocket on `http`'s upgrades to /mqtt. */
export function attachWebSocket(server: MqttServer, http: Server): WebSocketServer {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: server.opts.maxPacketBytes + 8,
    perMessageDeflate: false,
    handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((req.url ?? '').split('?')[0] !== MQTT_WS_PATH) return;
    const onError = () => socket.destroy();
    socket.on('error', onError);
    server.opts.gate.admit(req).then(
      (admission: Admission) => {
        socket.off('error', onError);
        if (!admission.ok) {
          socket.end(
            `HTTP/1.1 ${admission.status} ${admission.status === 403 ? 'Forbidden' : 'Too Many Requests'}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${admission.reason}\n`,
          );
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) =>
          open(server, ws, req, admission.tokenError === undefined ? admission.grants : null),
        );
      },
      () => socket.destroy(),
    );
  });
  return wss;
}

function open(server: MqttServer, ws: WebSocket, req: IncomingMessage, grants: Grants | null): void {
  const transport: Transport = {
    remoteAddress: req.socket.remoteAddress ?? 'unknown',
    write: (bytes) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(bytes, { binary: true });
    },
    buffered: () => ws.bufferedAmount,
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    end: () => ws.close(1000),
    destroy: () => ws.terminate(),
  };
  const session = server.accept(transport, grants);
  ws.on('message', (data: RawData) =>
    session.onData(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer)),
  );
  ws.on('error', () => {});
  ws.on('close', () => session.ended());
}
