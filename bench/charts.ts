// Charts without running the benchmark again:
//   tsx bench/charts.ts                       the run bench/README.md reports (its tables) → bench/charts/*.svg
//   tsx bench/charts.ts results/A.json …      results of `npm run bench` → SVG beside each file
// `npm run bench` draws its own charts as it writes its results (lib/report.ts).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { chartsFor, rowsFromMarkdown } from './lib/charts.ts';
import type { ScenarioResult } from './lib/report.ts';

const BENCH = import.meta.dirname;
const files = process.argv.slice(2);

if (files.length === 0) {
  const readme = readFileSync(join(BENCH, 'README.md'), 'utf8');
  const date = /on (\d{4}-\d{2}-\d{2}), [\d:]+ UTC/.exec(readme)?.[1] ?? 'unknown date';
  const out = join(BENCH, 'charts');
  mkdirSync(out, { recursive: true });
  for (const [scenario, heading] of [
    ['ingest', '### 1. Ingest'],
    ['fanout', '### 2. Fan-out'],
  ] as const) {
    const rows = rowsFromMarkdown(readme, heading);
    for (const chart of chartsFor({ scenario, mode: 'full', startedAt: date, rows })) {
      writeFileSync(join(out, `${chart.name}.svg`), chart.svg);
      console.log(`wrote ${join(out, `${chart.name}.svg`)}`);
    }
  }
} else {
  for (const file of files) {
    const result = JSON.parse(readFileSync(file, 'utf8')) as ScenarioResult;
    const prefix = file.replace(/-[a-z]+\.json$/, '');
    for (const chart of chartsFor(result)) {
      const path = join(dirname(file), `${prefix.split('/').pop()}-${chart.name}.svg`);
      writeFileSync(path, chart.svg);
      console.log(`wrote ${path}`);
    }
  }
}
