// Results: one JSON file per scenario under bench/results/ (and its charts as
// SVG beside it), a markdown table per scenario on stdout, and progress lines
// on stderr while it runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { chartsFor } from './charts.ts';

export type Row = Record<string, string | number | null>;

export interface ScenarioResult {
  scenario: string;
  mode: 'quick' | 'full';
  machine: string;
  database: string;
  startedAt: string;
  rows: Row[];
  notes: string[];
}

const RESULTS_DIR = new URL('../results/', import.meta.url).pathname;
const started = Date.now();

export function progress(message: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${s}s] ${message}\n`);
}

/** The result as JSON, and its charts (charts.ts) as SVG beside it; returns the paths written. */
export function writeResult(result: ScenarioResult): string[] {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const prefix = `${RESULTS_DIR}${result.startedAt.slice(0, 19).replace(/:/g, '-')}`;
  const path = `${prefix}-${result.scenario}.json`;
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  const paths = [path];
  for (const chart of chartsFor(result)) {
    paths.push(`${prefix}-${chart.name}.svg`);
    writeFileSync(paths[paths.length - 1]!, chart.svg);
  }
  return paths;
}

export function markdownTable(rows: Row[]): string {
  if (rows.length === 0) return '(no rows)\n';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: string | number | null | undefined) =>
    v === null || v === undefined ? '–' : typeof v === 'number' ? fmt(v) : v;
  const lines = [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${cols.map((c) => cell(r[c])).join(' | ')} |`);
  return `${lines.join('\n')}\n`;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toPrecision(3);
}
