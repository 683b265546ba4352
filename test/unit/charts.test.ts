// The bench's charts: rows in (from a run's JSON or bench/README.md's tables), SVG out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chartsFor, rowsFromMarkdown } from '../../bench/lib/charts.ts';
import type { Row } from '../../bench/lib/report.ts';

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

const fanout: Row[] = [
  {
    system: 'walcast',
    subscribers: 100,
    channels: 1,
    'rows/s': 100,
    'deliveries/s': 10_000,
    'offered/s': 10_000,
    'p50 ms': 2,
    'p99 ms': 5,
  },
  {
    system: 'polling',
    subscribers: 100,
    channels: 1,
    'rows/s': 100,
    'deliveries/s': 9_000,
    'offered/s': 10_000,
    'p50 ms': 60,
    'p99 ms': 110,
  },
  {
    system: 'walcast',
    subscribers: 1000,
    channels: 1,
    'rows/s': 100,
    'deliveries/s': 100_000,
    'offered/s': 100_000,
    'p50 ms': 9,
    'p99 ms': 35,
  },
];

test('fan-out: a p99 bar (with its p50 tick) per system and cell, and throughput points against offered load', () => {
  const charts = chartsFor({ scenario: 'fanout', mode: 'quick', startedAt: '2026-11-30T00:00:00Z', rows: fanout });
  assert.deepEqual(
    charts.map((c) => c.name),
    ['fanout-latency', 'fanout-throughput'],
  );
  const latency = charts[0]!.svg;
  assert.match(latency, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(latency, /<\/svg>\n$/);
  // Three measured cells of two systems (one missing: polling did not run at 1000 subscribers).
  assert.equal(latency.match(/<title>walcast: /g)?.length, 2);
  assert.equal(latency.match(/<title>polling: /g)?.length, 1);
  assert.match(latency, /<title>polling: 110 ms<\/title>/);
  assert.match(latency, /100×100\/s 1ch/);
  const throughput = charts[1]!.svg;
  assert.match(throughput, /<title>walcast: 100k at 100k<\/title>/);
  assert.match(throughput, /<title>polling: 9k at 10k<\/title>/);
});

test('ingest: walcast against pg_recvlogical, rows/s per backlog', () => {
  const rows = [
    { backlog: '10 × 1-row txns', 'walcast rows/s': 1000, 'walcast txn/s': 1000, 'pg_recvlogical txn/s': 500 },
  ];
  const [chart] = chartsFor({ scenario: 'ingest', mode: 'quick', startedAt: '2026-11-30', rows });
  assert.match(chart!.svg, /<title>walcast: 1k rows\/s<\/title>/);
  assert.match(chart!.svg, /<title>pg_recvlogical: 500 rows\/s<\/title>/);
  assert.deepEqual(chartsFor({ scenario: 'connections', mode: 'quick', startedAt: '', rows: [] }), []);
});

test('the tables bench/README.md reports parse back into rows', () => {
  const rows = rowsFromMarkdown(read('bench/README.md'), '### 2. Fan-out');
  const first = rows[0]!;
  assert.equal(first.system, 'walcast');
  assert.equal(typeof first['deliveries/s'], 'number');
  assert.ok(rows.length > 10);
});

test('bench/charts/ is drawn from the run bench/README.md reports (run tsx bench/charts.ts after updating it)', () => {
  const readme = read('bench/README.md');
  const date = /on (\d{4}-\d{2}-\d{2}), [\d:]+ UTC/.exec(readme)![1]!;
  for (const [scenario, heading] of [
    ['ingest', '### 1. Ingest'],
    ['fanout', '### 2. Fan-out'],
  ] as const) {
    for (const chart of chartsFor({
      scenario,
      mode: 'full',
      startedAt: date,
      rows: rowsFromMarkdown(readme, heading),
    })) {
      assert.equal(read(`bench/charts/${chart.name}.svg`), chart.svg, `bench/charts/${chart.name}.svg is current`);
    }
  }
});
