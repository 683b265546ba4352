// `walcast flows`: the MQTT ingest brokers and flows (docs/ingest.md) as
// the database has them: each broker with the state the active relay last
// wrote, each flow with its filter, action, target, whether it is enabled,
// why it does not run (if so) and its counters. Read-only.
import { asStartupError } from '../db/connect-error.ts';
import { DATABASE_OPTIONS, databaseUrl, parse, wantsHelp, withPool } from './args.ts';

const HELP = `Usage: walcast flows [--json] [--database-url URL]

Lists the MQTT ingest brokers (walcast.brokers) with their connection state as the active relay
last saw it, and the flows (walcast.flows) with their state and counters: rows committed,
duplicates skipped by the dedup key, dead letters (walcast.dead_letters). A flow the relay does not
run says why: "failed: …" (its table is gone, …) or "refused: …" (the broker refused its subscription).
See docs/ingest.md.

  --json               print { brokers, flows } as JSON
  --database-url URL   PostgreSQL (default DATABASE_URL)`;

interface BrokerLine {
  name: string;
  url: string;
  clean: boolean;
  state: string | null;
  detail: string | null;
  since: Date | null;
}

interface FlowLine {
  name: string;
  broker: string;
  topic_filter: string;
  action: string;
  target: string;
  enabled: boolean;
  /** Why the relay does not run it: 'failed' or 'refused' (the broker refused its subscription); null while it runs. */
  state: string | null;
  error: string | null;
  committed: string;
  duplicates: string;
  dead_lettered: string;
  last_at: Date | null;
}

export async function flowsCommand(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) return void console.log(HELP);
  const { values } = parse('flows', argv, { ...DATABASE_OPTIONS, json: { type: 'boolean' } });
  const url = databaseUrl('flows', values, process.env);
  const { brokers, flows } = await withPool(url, async (pool) => {
    const b = await pool.query<BrokerLine>(
      `SELECT b.name, b.url, b.clean, s.state, s.detail, s.updated_at AS since
       FROM walcast.brokers b LEFT JOIN walcast.broker_status s ON s.broker = b.name ORDER BY b.name`,
    );
    const f = await pool.query<FlowLine>(
      `SELECT f.name, f.broker, f.topic_filter, f.action, f.target, f.enabled, s.state, s.error,
              coalesce(s.committed, 0)::text AS committed, coalesce(s.duplicates, 0)::text AS duplicates,
              coalesce(s.dead_lettered, 0)::text AS dead_lettered, s.last_at
       FROM walcast.flows f LEFT JOIN walcast.flow_stats s ON s.flow = f.name ORDER BY f.broker, f.name`,
    );
    return { brokers: b.rows, flows: f.rows };
  }).catch((err: unknown) => Promise.reject(asStartupError(err, url)));
  if (values.json) return void console.log(JSON.stringify({ brokers, flows }, null, 2));
  console.log(table(['broker', 'url', 'state', 'since', 'detail'], brokers.map(brokerRow)));
  console.log();
  console.log(
    table(
      ['flow', 'broker', 'topic filter', 'action', 'target', 'state', 'committed', 'duplicates', 'dead letters'],
      flows.map((f) => [
        f.name,
        f.broker,
        f.topic_filter,
        f.action,
        f.target,
        !f.enabled ? 'disabled' : f.error ? `${f.state ?? 'failed'}: ${f.error}` : 'enabled',
        f.committed,
        f.duplicates,
        f.dead_lettered,
      ]),
    ),
  );
}

function brokerRow(b: BrokerLine): string[] {
  return [b.name, b.url, b.state ?? 'unknown (no relay has run it)', b.since?.toISOString() ?? '', b.detail ?? ''];
}

function table(head: string[], rows: string[][]): string {
  if (rows.length === 0) return `(no ${head[0]}s)`;
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}
