// `walcast replay <channel> --since POSITION`: the channel's events after a
// position, from a running relay's recovery window (GET /v1/channels/…/events),
// one JSON line each on stdout. Exit 1 when the window no longer covers it.
import { WalcastError } from '../errors.ts';
import { RELAY_URL_OPTIONS, parse, relayToken, relayUrl, wantsHelp } from './args.ts';

const HELP = `Usage: walcast replay <channel> --since POSITION [--url URL] [--token JWT]

Prints the events of <channel> after POSITION (from an event or a subscribed reply), one JSON
line each, then the position to continue from on stderr. Exits 1 if the relay's recovery window
no longer reaches back to POSITION (the reason is printed): read the rows from PostgreSQL instead.

  --since POSITION   where to start (required)
  --url URL          the relay (default WALCAST_URL or http://127.0.0.1:8080)
  --token JWT        a token for relays that require one (default WALCAST_TOKEN)`;

interface Page {
  recovered: boolean;
  reason?: string;
  position?: string;
  more?: boolean;
  events: unknown[];
}

export async function replayCommand(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) return void console.log(HELP);
  const { values, positionals } = parse('replay', argv, { ...RELAY_URL_OPTIONS, since: { type: 'string' } });
  const [channel, ...extra] = positionals;
  if (!channel || extra.length || typeof values.since !== 'string') {
    throw new WalcastError('config_invalid', {
      detail: 'walcast replay needs one channel and --since POSITION; see walcast replay --help',
    });
  }
  const base = relayUrl(values, process.env);
  const token = relayToken(values, process.env);
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  let since = values.since;
  for (;;) {
    const url = `${base}/v1/channels/${encodeURIComponent(channel)}/events?since=${encodeURIComponent(since)}&limit=1000`;
    let res: Response;
    let page: Page;
    try {
      res = await fetch(url, { headers });
      page = (await res.json()) as Page;
    } catch (err) {
      throw new WalcastError('relay_unreachable', { url: base, detail: (err as Error).message }, err);
    }
    if (!res.ok) {
      throw new WalcastError('relay_refused', {
        url: base,
        request: `the replay of ${channel}`,
        detail: `HTTP ${res.status}: ${JSON.stringify(page)}`,
      });
    }
    if (!page.recovered) {
      process.stderr.write(
        `walcast: cannot replay ${channel} from ${since}: ${page.reason ?? 'outside the recovery window'}\n`,
      );
      process.exitCode = 1;
      return;
    }
    for (const e of page.events) process.stdout.write(`${JSON.stringify(e)}\n`);
    since = page.position!;
    if (!page.more) break;
  }
  process.stderr.write(`# position ${since}\n`);
}
