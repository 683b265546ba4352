// The bench's pictures, from a scenario's result rows (the JSON of a run, or
// the tables bench/README.md keeps): fan-out latency (p99 bars, p50 ticks)
// per system for each cell, fan-out throughput against offered load, and
// ingest against pg_recvlogical.
import { barChart, lineChart, type BarGroup } from './svg.ts';
import type { Row, ScenarioResult } from './report.ts';

export interface Chart {
  /** File name without extension. */
  name: string;
  svg: string;
}

const num = (v: Row[string] | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The charts a scenario's result draws (none for scenarios without one). */
export function chartsFor(result: Pick<ScenarioResult, 'scenario' | 'mode' | 'startedAt' | 'rows'>): Chart[] {
  const when = `${result.mode} run, ${result.startedAt.slice(0, 10)}`;
  if (result.scenario === 'fanout') return fanoutCharts(result.rows, when);
  if (result.scenario === 'ingest') return [ingestChart(result.rows, when)];
  return [];
}

function cellKey(r: Row): string {
  return `${r.subscribers}×${Number(r['rows/s']).toLocaleString('en-US')}/s ${r.channels}ch`;
}

function fanoutCharts(rows: Row[], when: string): Chart[] {
  const systems = [...new Set(rows.map((r) => String(r.system)))];
  const cells = [...new Set(rows.map(cellKey))];
  const find = (cell: string, system: string) => rows.find((r) => cellKey(r) === cell && r.system === system);
  const groups: BarGroup[] = cells.map((cell) => ({
    label: cell,
    values: systems.map((s) => num(find(cell, s)?.['p99 ms'])),
    marks: systems.map((s) => num(find(cell, s)?.['p50 ms'])),
  }));
  const latency = barChart({
    title: 'Fan-out latency: p99 (bar) and p50 (tick) per cell',
    subtitle: `ms, log scale; ${when}`,
    unit: 'ms',
    series: systems,
    groups,
    log: true,
    markLabel: 'cells: subscribers × rows/s inserted, channels; a missing bar: the system was not run in that cell',
  });
  // One layout, so that each system is one curve: every subscriber on one channel.
  const oneChannel = rows.filter((r) => r.channels === 1);
  const offered = oneChannel.map((r) => num(r['offered/s'])).filter((v): v is number => v !== null);
  const series = systems.map((s) => ({
    name: s,
    markersOnly: true,
    points: oneChannel
      .filter((r) => r.system === s && num(r['offered/s']) !== null && num(r['deliveries/s']) !== null)
      .map((r) => ({ x: num(r['offered/s'])!, y: Math.max(1, num(r['deliveries/s'])!) })),
  }));
  const ideal = [...new Set(offered)].map((x) => ({ x, y: x }));
  const throughput = lineChart({
    title: 'Fan-out throughput against offered load, one channel',
    subtitle: `deliveries/s, log-log; 0 (a system that shed its clients) drawn at 1; ${when}`,
    xLabel: 'offered deliveries/s (subscribers per channel × rows/s)',
    yLabel: 'deliveries/s',
    series: [...series, { name: 'offered', points: ideal, dashed: true }],
    log: true,
  });
  return [
    { name: 'fanout-latency', svg: latency },
    { name: 'fanout-throughput', svg: throughput },
  ];
}

function ingestChart(rows: Row[], when: string): Chart {
  const rowsPerSec = (r: Row, system: 'walcast' | 'pg_recvlogical'): number | null => {
    const walcastRows = num(r['walcast rows/s']);
    if (system === 'walcast') return walcastRows;
    // The same backlog, so rows per transaction are the same for both.
    const recvTxn = num(r['pg_recvlogical txn/s']);
    const walcastTxn = num(r['walcast txn/s']);
    return recvTxn && walcastTxn && walcastRows ? Math.round((walcastRows * recvTxn) / walcastTxn) : null;
  };
  const svg = barChart({
    title: 'Ingest: draining a backlog from a fresh slot',
    subtitle: `rows/s; ${when}`,
    unit: 'rows/s',
    series: ['walcast', 'pg_recvlogical'],
    groups: rows.map((r) => ({
      label: String(r.backlog),
      values: [rowsPerSec(r, 'walcast'), rowsPerSec(r, 'pg_recvlogical')],
    })),
  });
  return { name: 'ingest', svg };
}

/**
 * The rows of the markdown table under `heading` in `markdown` (as
 * report.ts markdownTable writes them): numbers parsed back, '–' as null.
 */
export function rowsFromMarkdown(markdown: string, heading: string): Row[] {
  const start = markdown.indexOf(heading);
  if (start < 0) throw new Error(`no heading ${heading}`);
  const lines = markdown.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const table: string[] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    table.push(line);
  }
  const cells = (line: string) =>
    line
      .slice(1, -1)
      .split('|')
      .map((c) => c.trim());
  const columns = cells(table[0]!);
  return table.slice(2).map((line) => {
    const row: Row = {};
    cells(line).forEach((c, i) => {
      const n = c.replace(/,/g, '');
      row[columns[i]!] = c === '–' ? null : /^-?\d+(\.\d+)?$/.test(n) ? Number(n) : c;
    });
    return row;
  });
}
