// `npm run bench [-- --quick] [-- --only ingest,fanout,connections,restart,mqtt,supabase]`:
// every scenario against the same PostgreSQL, in one run. Progress goes to
// stderr, a markdown table per scenario to stdout, the numbers to
// bench/results/<date>-<scenario>.json, with charts as SVG beside them. See
// bench/README.md.
import { openBenchDatabase } from './lib/env.ts';
import { machine } from './lib/proc.ts';
import { markdownTable, progress, writeResult, type Row, type ScenarioResult } from './lib/report.ts';
import { INGEST_FULL, INGEST_QUICK, runIngest } from './scenarios/ingest.ts';
import { FANOUT_FULL, FANOUT_QUICK, runFanout, type FanoutPlan } from './scenarios/fanout.ts';
import type { SystemName } from './lib/targets.ts';
import { CONNECTIONS_FULL, CONNECTIONS_QUICK, runConnections } from './scenarios/connections.ts';
import { RESTART_FULL, RESTART_QUICK, runRestart } from './scenarios/restart.ts';
import { STREAMS_FULL, STREAMS_QUICK, runStreams } from './scenarios/streams.ts';
import { MQTT_FULL, MQTT_QUICK, runMqtt, type MqttPlan } from './scenarios/mqtt.ts';
import { INGEST_MQTT_FULL, INGEST_MQTT_QUICK, runIngestMqtt } from './scenarios/ingest-mqtt.ts';
import { EDGES_FULL, EDGES_QUICK, runEdges, type EdgesPlan } from './scenarios/edges.ts';
import {
  SUPABASE_FULL,
  SUPABASE_QUICK,
  runSupabase,
  type SupabasePlan,
  type SupabaseSystem,
} from './scenarios/supabase.ts';

type Scenario = { name: string; run: () => Promise<{ rows: Row[]; notes: string[] }> };

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const only = listFlag(argv, 'only');
  const mode = quick ? 'quick' : 'full';
  const startedAt = new Date().toISOString();
  progress(`walcast bench (${mode}) on ${machine()}`);
  const db = await openBenchDatabase();
  progress(`database: ${db.source}`);
  const scenarios: Scenario[] = [
    { name: 'ingest', run: async () => ({ rows: await runIngest(db, quick ? INGEST_QUICK : INGEST_FULL), notes: [] }) },
    { name: 'fanout', run: () => runFanout(db, fanoutPlan(argv, quick)) },
    { name: 'connections', run: () => runConnections(db, quick ? CONNECTIONS_QUICK : CONNECTIONS_FULL) },
    { name: 'restart', run: () => runRestart(db, quick ? RESTART_QUICK : RESTART_FULL) },
    { name: 'streams', run: () => runStreams(db, quick ? STREAMS_QUICK : STREAMS_FULL) },
    { name: 'mqtt', run: () => runMqtt(db, mqttPlan(argv, quick)) },
    { name: 'ingest-mqtt', run: () => runIngestMqtt(db, quick ? INGEST_MQTT_QUICK : INGEST_MQTT_FULL) },
    { name: 'edges', run: () => runEdges(db, edgesPlan(argv, quick)) },
    { name: 'supabase', run: () => runSupabase(db, supabasePlan(argv, quick)) },
  ];
  let failed = false;
  try {
    for (const s of scenarios) {
      if (only && !only.includes(s.name)) continue;
      progress(`scenario ${s.name}`);
      try {
        const { rows, notes } = await s.run();
        const result: ScenarioResult = {
          scenario: s.name,
          mode,
          machine: machine(),
          database: db.source,
          startedAt,
          rows,
          notes,
        };
        const paths = writeResult(result);
        process.stdout.write(
          `\n### ${s.name} (${mode})\n\n${markdownTable(rows)}${notes.map((n) => `\n${n}\n`).join('')}\n`,
        );
        progress(`wrote ${paths.join(', ')}`);
      } catch (err) {
        failed = true;
        progress(`scenario ${s.name} failed: ${(err as Error).stack ?? err}`);
      }
    }
  } finally {
    await db.close();
  }
  progress('done');
  process.exit(failed ? 1 : 0);
}

/** `--name a,b` or `--name=a,b`. */
function listFlag(argv: string[], name: string): string[] | undefined {
  const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  const arg = argv[i]!;
  return (arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : (argv[i + 1] ?? '')).split(',').filter(Boolean);
}

/** The fan-out plan, narrowed by --systems, --subscribers, --rates, --layouts, --measure-ms. */
function fanoutPlan(argv: string[], quick: boolean): FanoutPlan {
  const plan = { ...(quick ? FANOUT_QUICK : FANOUT_FULL) };
  const systems = listFlag(argv, 'systems');
  if (systems) plan.systems = systems as SystemName[];
  const subscribers = listFlag(argv, 'subscribers');
  if (subscribers) plan.subscribers = subscribers.map(Number);
  const rates = listFlag(argv, 'rates');
  if (rates) plan.rates = rates.map(Number);
  const layouts = listFlag(argv, 'layouts');
  if (layouts) plan.layouts = layouts as FanoutPlan['layouts'];
  const measure = listFlag(argv, 'measure-ms');
  if (measure) plan.measureMs = Number(measure[0]);
  return plan;
}

/** The mqtt plan, narrowed by --subscribers, --layouts, --rates, --measure-ms (as for fanout). */
function mqttPlan(argv: string[], quick: boolean): MqttPlan {
  const plan = { ...(quick ? MQTT_QUICK : MQTT_FULL) };
  const { subscribers, layouts, rates, measureMs } = fanoutPlan(argv, quick);
  if (listFlag(argv, 'subscribers')) plan.subscribers = subscribers;
  if (listFlag(argv, 'layouts')) plan.layouts = layouts;
  if (listFlag(argv, 'rates')) plan.rates = rates;
  if (listFlag(argv, 'measure-ms')) plan.measureMs = measureMs;
  return plan;
}

/**
 * The edges plan, narrowed by --subscribers, --rates (the first), --measure-ms,
 * --warmup-ms and --edges 0,1,2 (0: the single relay); with --edges, the subscription
 * measurement (edge-filters.ts) is left out.
 */
function edgesPlan(argv: string[], quick: boolean): EdgesPlan {
  const plan = { ...(quick ? EDGES_QUICK : EDGES_FULL) };
  const subscribers = listFlag(argv, 'subscribers');
  if (subscribers) plan.subscribers = subscribers.map(Number);
  const rates = listFlag(argv, 'rates');
  if (rates) plan.rate = Number(rates[0]);
  const measure = listFlag(argv, 'measure-ms');
  if (measure) plan.measureMs = Number(measure[0]);
  const warmup = listFlag(argv, 'warmup-ms');
  if (warmup) plan.warmupMs = Number(warmup[0]);
  const edges = listFlag(argv, 'edges');
  if (edges) {
    plan.edges = edges.map(Number);
    plan.filter = undefined;
  }
  return plan;
}

/** The supabase plan, narrowed by --systems (walcast, supabase-v1, supabase-v2) and the fan-out flags. */
function supabasePlan(argv: string[], quick: boolean): SupabasePlan {
  const plan = { ...(quick ? SUPABASE_QUICK : SUPABASE_FULL) };
  const { subscribers, layouts, rates, measureMs } = fanoutPlan(argv, quick);
  const systems = listFlag(argv, 'systems');
  if (systems) plan.systems = systems as SupabaseSystem[];
  if (listFlag(argv, 'subscribers')) plan.subscribers = subscribers;
  if (listFlag(argv, 'layouts')) plan.layouts = layouts;
  if (listFlag(argv, 'rates')) plan.rates = rates;
  if (listFlag(argv, 'measure-ms')) plan.measureMs = measureMs;
  return plan;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
