// `walcast tail <channel>`: subscribe to a channel on a running relay and
// print its events, one JSON line each, on stdout. When the relay goes away
// (1001, a restart, a failover) it reconnects and resumes with `since` from
// the last event, so nothing is missed while the window covers the gap.
import { WebSocket } from 'ws';
import { BEARER_PREFIX, SUBPROTOCOL, type ServerMessage } from '../../client/protocol.ts';
import { WalcastError } from '../errors.ts';
import { RELAY_URL_OPTIONS, parse, relayToken, relayUrl, wantsHelp } from './args.ts';

const HELP = `Usage: walcast tail <channel> [--url URL] [--token JWT] [--since POSITION] [--snapshot] [--table NAME]...

Prints the channel's events as they are committed, one JSON line each (the frames clients
receive). Notes go to stderr. Reconnects and resumes after the last event if the relay goes away.

  --url URL            the relay (default WALCAST_URL or http://127.0.0.1:8080)
  --token JWT          a token for relays that require one (default WALCAST_TOKEN)
  --since POSITION     start after this position (resume), if the recovery window still has it
  --snapshot           first print the channel's current rows (op "snapshot")
  --table NAME         only this table's events (repeatable)`;

export async function tailCommand(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) return void console.log(HELP);
  const { values, positionals } = parse('tail', argv, {
    ...RELAY_URL_OPTIONS,
    since: { type: 'string' },
    snapshot: { type: 'boolean' },
    table: { type: 'string', multiple: true },
  });
  const [channel, ...extra] = positionals;
  if (!channel || extra.length)
    throw new WalcastError('config_invalid', { detail: 'walcast tail needs one channel; see walcast tail --help' });
  const wsUrl = `${relayUrl(values, process.env).replace(/^http/, 'ws')}/ws`;
  const token = relayToken(values, process.env);
  let since = values.since as string | undefined;
  let snapshot = values.snapshot === true;
  const tables = values.table as unknown as string[] | undefined;
  for (let attempt = 0; ; attempt++) {
    const outcome = await session(wsUrl, token, { channel, since, snapshot, tables }, (position) => (since = position));
    if (outcome.fatal)
      throw new WalcastError('relay_refused', {
        url: wsUrl,
        request: `the subscription to ${channel}`,
        detail: outcome.fatal,
      });
    snapshot = false;
    process.stderr.write(`# ${outcome.note}; reconnecting${since ? ` and resuming after ${since}` : ''}\n`);
    await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(attempt, 4))));
  }
}

interface Subscribe {
  channel: string;
  since: string | undefined;
  snapshot: boolean;
  tables: string[] | undefined;
}

/** One connection; resolves when it ends. `fatal` when the relay refused the subscription. */
function session(
  url: string,
  token: string | undefined,
  sub: Subscribe,
  onPosition: (p: string) => void,
): Promise<{ note: string; fatal?: string }> {
  return new Promise((resolve) => {
    // The token as a subprotocol, not in the URL (URLs end up in logs).
    const ws = token ? new WebSocket(url, [SUBPROTOCOL, BEARER_PREFIX + token]) : new WebSocket(url);
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          type: 'subscribe',
          id: 'tail',
          channel: sub.channel,
          since: sub.since,
          snapshot: sub.snapshot || undefined,
          tables: sub.tables,
        }),
      );
    });
    ws.on('message', (data) => {
      const text = data.toString();
      const msg = JSON.parse(text) as ServerMessage;
      if (msg.type === 'event') {
        process.stdout.write(`${text}\n`);
        if (msg.op !== 'snapshot') onPosition(msg.position);
      } else if (msg.type === 'subscribed') {
        process.stderr.write(
          `# subscribed to ${msg.channel} at ${msg.position}${msg.recovered === false ? ' (could not resume: events were missed)' : ''}\n`,
        );
        if (!sub.since) onPosition(msg.position);
      } else if (msg.type === 'error' && msg.code === 'event_too_large') {
        // An event too large to send, in its place: note it and go on after it.
        process.stderr.write(`# ${msg.message}\n`);
        if (msg.position) onPosition(msg.position);
      } else if (msg.type === 'error') {
        resolve({ note: msg.message, fatal: `${msg.code}: ${msg.message}` });
        ws.close();
      }
    });
    ws.on('error', (err) => resolve({ note: `connection failed: ${err.message}` }));
    ws.on('close', (code, reason) =>
      resolve({ note: `connection closed (${code}${reason.length ? ` ${reason.toString()}` : ''})` }),
    );
  });
}
