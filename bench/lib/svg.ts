// Two chart kinds as plain SVG text (no browser, no dependency): grouped bars
// and lines, each on a linear or log-10 value axis. Enough for the bench's
// pictures; the numbers themselves stay in the JSON and the tables.

export interface BarGroup {
  label: string;
  /** One bar per series; null: no value (drawn as nothing). */
  values: (number | null)[];
  /** Optional second value per series, drawn as a tick across the bar (p50 on a p99 bar). */
  marks?: (number | null)[];
}

export interface BarChart {
  title: string;
  subtitle?: string;
  unit: string;
  series: string[];
  groups: BarGroup[];
  log?: boolean;
  /** Says what the tick across a bar is. */
  markLabel?: string;
}

export interface LineSeries {
  name: string;
  points: { x: number; y: number }[];
  dashed?: boolean;
  /** Points without a connecting line (cells that are not a sequence). */
  markersOnly?: boolean;
}

export interface LineChart {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  log?: boolean;
}

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#64748b'];
const FONT = 'font-family="system-ui, sans-serif"';
const PAD = { left: 70, right: 20, top: 50 };

/** Maps values to pixels, linear or log-10, over rounded bounds. */
function scale(values: number[], pixels: number, log: boolean): { at: (v: number) => number; ticks: number[] } {
  const positive = values.filter((v) => v > 0);
  if (log && positive.length) {
    const lo = 10 ** Math.floor(Math.log10(Math.min(...positive)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...positive)));
    const span = Math.log10(hi) - Math.log10(lo) || 1;
    const ticks: number[] = [];
    for (let t = lo; t <= hi * 1.001; t *= 10) ticks.push(t);
    return { at: (v) => ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / span) * pixels, ticks };
  }
  const max = Math.max(...values, 0) || 1;
  const step = 10 ** Math.floor(Math.log10(max));
  const top = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = 0; t <= top * 1.001; t += top / 5) ticks.push(t);
  return { at: (v) => (v / top) * pixels, ticks };
}

export function formatNumber(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function frame(width: number, height: number, title: string, subtitle: string | undefined, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${PAD.left}" y="18" font-size="15" font-weight="600">${escapeXml(title)}</text>`,
    subtitle ? `<text x="${PAD.left}" y="34" font-size="11" fill="#555">${escapeXml(subtitle)}</text>` : '',
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

const LEGEND_ITEM = 130;
const LEGEND_ROW = 16;

/** Legend rows needed for `count` entries across `width` pixels. */
function legendRows(count: number, width: number): number {
  return Math.ceil(count / Math.max(1, Math.floor(width / LEGEND_ITEM)));
}

function legend(series: string[], x: number, y: number, width: number): string[] {
  const perRow = Math.max(1, Math.floor(width / LEGEND_ITEM));
  return series.map((name, i) => {
    const lx = x + (i % perRow) * LEGEND_ITEM;
    const ly = y + Math.floor(i / perRow) * LEGEND_ROW;
    return (
      `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>` +
      `<text x="${lx + 16}" y="${ly}">${escapeXml(name)}</text>`
    );
  });
}

function valueAxis(ticks: number[], at: (v: number) => number, x: number, bottom: number, width: number): string[] {
  return ticks.flatMap((t) => {
    const y = bottom - at(t);
    return [
      `<line x1="${x}" x2="${x + width}" y1="${y}" y2="${y}" stroke="#e5e7eb"/>`,
      `<text x="${x - 6}" y="${y + 4}" text-anchor="end">${formatNumber(t)}</text>`,
    ];
  });
}

export function barChart(spec: BarChart): string {
  const longest = Math.max(...spec.groups.map((g) => g.label.length));
  const groupWidth = Math.max(60, spec.series.length * 18 + 20, longest * 6 + 14);
  const plotW = spec.groups.length * groupWidth;
  const plotH = 260;
  const width = Math.max(PAD.left + plotW + PAD.right, 560);
  const rows = legendRows(spec.series.length, width - PAD.left);
  const height = PAD.top + plotH + 40 + rows * LEGEND_ROW + (spec.markLabel ? LEGEND_ROW : 0);
  const bottom = PAD.top + plotH;
  const all = spec.groups.flatMap((g) => [...g.values, ...(g.marks ?? [])]).filter((v): v is number => v !== null);
  const { at, ticks } = scale(all, plotH, spec.log ?? false);
  const body = valueAxis(ticks, at, PAD.left, bottom, plotW);
  body.push(
    `<text x="16" y="${PAD.top + plotH / 2}" transform="rotate(-90 16 ${PAD.top + plotH / 2})" text-anchor="middle">${escapeXml(spec.unit)}</text>`,
  );
  const barW = (groupWidth - 20) / spec.series.length;
  spec.groups.forEach((g, gi) => {
    const gx = PAD.left + gi * groupWidth + 10;
    g.values.forEach((v, si) => {
      if (v === null) return;
      const h = at(v);
      const x = gx + si * barW;
      body.push(
        `<rect x="${x}" y="${bottom - h}" width="${barW - 2}" height="${h}" fill="${COLORS[si % COLORS.length]}"><title>${escapeXml(`${spec.series[si]}: ${formatNumber(v)} ${spec.unit}`)}</title></rect>`,
      );
      const mark = g.marks?.[si];
      if (mark !== null && mark !== undefined) {
        body.push(
          `<line x1="${x}" x2="${x + barW - 2}" y1="${bottom - at(mark)}" y2="${bottom - at(mark)}" stroke="#111" stroke-width="2"/>`,
        );
      }
    });
    body.push(
      `<text x="${gx + (groupWidth - 20) / 2}" y="${bottom + 16}" text-anchor="middle" font-size="11">${escapeXml(g.label)}</text>`,
    );
  });
  body.push(`<line x1="${PAD.left}" x2="${PAD.left + plotW}" y1="${bottom}" y2="${bottom}" stroke="#111"/>`);
  body.push(...legend(spec.series, PAD.left, bottom + 44, width - PAD.left));
  if (spec.markLabel)
    body.push(`<text x="${PAD.left}" y="${height - 6}" font-size="11">${escapeXml(spec.markLabel)}</text>`);
  return frame(width, height, spec.title, spec.subtitle, body);
}

export function lineChart(spec: LineChart): string {
  const plotW = 520;
  const plotH = 300;
  const width = PAD.left + plotW + PAD.right;
  const height = PAD.top + plotH + 56 + legendRows(spec.series.length, plotW) * LEGEND_ROW;
  const bottom = PAD.top + plotH;
  const points = spec.series.flatMap((s) => s.points);
  const xs = scale(
    points.map((p) => p.x),
    plotW,
    spec.log ?? false,
  );
  const ys = scale(
    points.map((p) => p.y),
    plotH,
    spec.log ?? false,
  );
  const body = valueAxis(ys.ticks, ys.at, PAD.left, bottom, plotW);
  for (const t of xs.ticks) {
    body.push(`<text x="${PAD.left + xs.at(t)}" y="${bottom + 16}" text-anchor="middle">${formatNumber(t)}</text>`);
  }
  body.push(`<line x1="${PAD.left}" x2="${PAD.left + plotW}" y1="${bottom}" y2="${bottom}" stroke="#111"/>`);
  body.push(
    `<text x="${PAD.left + plotW / 2}" y="${bottom + 36}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`,
  );
  body.push(
    `<text x="16" y="${PAD.top + plotH / 2}" transform="rotate(-90 16 ${PAD.top + plotH / 2})" text-anchor="middle">${escapeXml(spec.yLabel)}</text>`,
  );
  spec.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const sorted = [...s.points].sort((a, b) => a.x - b.x);
    const path = sorted
      .map((p) => `${(PAD.left + xs.at(p.x)).toFixed(1)},${(bottom - ys.at(p.y)).toFixed(1)}`)
      .join(' ');
    const dash = s.dashed ? ' stroke-dasharray="5 4"' : '';
    if (!s.markersOnly) body.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const p of sorted) {
      body.push(
        `<circle cx="${(PAD.left + xs.at(p.x)).toFixed(1)}" cy="${(bottom - ys.at(p.y)).toFixed(1)}" r="${s.markersOnly ? 4 : 2}" fill="${color}" fill-opacity="0.8"><title>${escapeXml(`${s.name}: ${formatNumber(p.y)} at ${formatNumber(p.x)}`)}</title></circle>`,
      );
    }
  });
  body.push(
    ...legend(
      spec.series.map((s) => s.name),
      PAD.left,
      bottom + 60,
      plotW,
    ),
  );
  return frame(width, height, spec.title, spec.subtitle, body);
}
