/**
 * The per-run data-quality report (SPEC §13) as one self-contained HTML page: inline CSS, charts drawn as inline
 * SVG, no script, no font, no image and no link that would need the network. A pure function of its data (the run
 * record, the history of runs, quarantine samples) so it renders the same in an activity, the CLI and a unit test.
 * Every string that comes from data is escaped: rule details and raw records are untrusted input.
 */

/** A step's metrics as the run record stores them (structurally `StepMetrics` of activities/common.ts). */
export interface ReportStep {
  step: string;
  layer: string;
  table: string;
  rowsIn: number;
  rowsOut: number;
  quarantined: Record<string, number>;
  nullRates: Record<string, number>;
  partitionsConsidered?: number;
  partitionsRecomputed?: number;
  partitionsChanged?: number;
  durationMs: number;
  extra: Record<string, number>;
}

/** A run record (structurally `RunSummary` of activities/quality.ts). */
export interface ReportRun {
  runId: string;
  workflowId: string;
  logicalDate: string | null;
  kind: string;
  status: string;
  startedAt: string;
  finishedAt: string;
  lake: string;
  steps: ReportStep[];
  gate?: {
    passed: boolean;
    checks: Array<{ table: string; check: string; value: number; limit: number; passed: boolean }>;
  };
  error?: string;
  snapshots?: { first: number; last: number; count: number };
}

/** One quarantined record: where it came from, why, and its raw record (PII already hashed). */
export interface SampleRow {
  sourceFile: string | null;
  sourceLine: number | null;
  detail: string | null;
  raw: string | null;
}

/** Whole-table anomaly figures read from the lake when the report was made. */
export interface TableAnomalies {
  table: string;
  rows: number;
  anomalies: number;
}

export interface ReportData {
  run: ReportRun;
  /** Runs oldest first, the reported run included (charts and the history table). */
  history: ReportRun[];
  /** `samples[table][rule]`: up to {@link SAMPLE_ROWS} quarantined rows. */
  samples: Record<string, Record<string, SampleRow[]>>;
  anomalies: TableAnomalies[];
  generatedAt: string;
  /** Where the page is written (shown in its footer). */
  location?: string;
}

/** Sample rows per rule: enough to see what the rule caught, few enough to keep the page small. */
export const SAMPLE_ROWS = 5;

/** Escapes text for HTML content and double- or single-quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const esc = escapeHtml;
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const pct = (x: number | null | undefined, dp = 2): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '—' : `${(x * 100).toFixed(dp)}%`;
const secs = (ms: number): string => (ms / 1000).toFixed(2);
const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

/** Quarantined share of what a step judged in this run (the gate's definition); null when it judged nothing. */
export function quarantineRate(s: ReportStep): number | null {
  const judged = s.extra.rows_computed ?? s.rowsIn;
  return judged > 0 ? sum(s.quarantined) / judged : null;
}

/** Event-level anomaly rate of silver.usage_events in a run (flagged / kept rows it computed). */
export function eventAnomalyRate(run: ReportRun): number | null {
  const s = run.steps.find((x) => x.step === 'silver.usage_events');
  if (!s) return null;
  const kept = s.extra.rows_kept ?? s.rowsOut;
  return kept > 0 && s.rowsIn > 0 ? (s.extra.anomaly_any ?? 0) / kept : null;
}

/** Day-level anomaly rate of gold.cost_anomaly_mart in a run (flagged / rows it recomputed). */
export function dayAnomalyRate(run: ReportRun): number | null {
  const s = run.steps.find((x) => x.step === 'gold.cost_anomaly_mart');
  if (!s || s.rowsIn === 0 || s.extra.anomaly_days === undefined || s.rowsOut === 0) return null;
  return s.extra.anomaly_days / s.rowsOut;
}

const runSeconds = (r: ReportRun): number | null => {
  const d = (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000;
  return Number.isFinite(d) && d >= 0 ? d : null;
};

// --- SVG charts -----------------------------------------------------------------------------------------------

export interface Series {
  name: string;
  /** One value per x label; null = no point (the step did not run). */
  values: Array<number | null>;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];

/** Round upper bound for an axis: 1, 2 or 5 × 10^k at or above `max`. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

/**
 * A line chart (points and lines per series, a legend, four y gridlines) as an inline `<svg>` with a `<title>` for
 * screen readers. One run alone still draws: its points without lines.
 */
export function lineChart(opts: {
  id: string;
  title: string;
  labels: string[];
  series: Series[];
  format: (v: number) => string;
}): string {
  const W = 560;
  const H = 240;
  const left = 64;
  const right = 12;
  const top = 28;
  const bottom = 44;
  const legendRows = Math.ceil(opts.series.length / 3);
  const height = H + legendRows * 16;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const n = opts.labels.length;
  const all = opts.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const yMax = niceMax(Math.max(0, ...all));
  const x = (i: number): number => left + (n <= 1 ? plotW / 2 : (i * plotW) / (n - 1));
  const y = (v: number): number => top + plotH - (v / yMax) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg class="chart" id="${esc(opts.id)}" role="img" aria-labelledby="${esc(opts.id)}-t" viewBox="0 0 ${W} ${height}" width="${W}" height="${height}" xmlns="http://www.w3.org/2000/svg">`,
    `<title id="${esc(opts.id)}-t">${esc(opts.title)}</title>`,
    `<text x="${left}" y="16" class="ct">${esc(opts.title)}</text>`,
  );
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    const yy = y(v).toFixed(1);
    parts.push(
      `<line x1="${left}" x2="${W - right}" y1="${yy}" y2="${yy}" class="grid"/>`,
      `<text x="${left - 6}" y="${yy}" class="yl" text-anchor="end" dominant-baseline="middle">${esc(opts.format(v))}</text>`,
    );
  }
  // At most ~8 x labels, so long histories stay readable.
  const every = Math.max(1, Math.ceil(n / 8));
  opts.labels.forEach((l, i) => {
    if (i % every !== 0 && i !== n - 1) return;
    // The outermost labels hang inwards, so they are not cut at the chart's edges.
    const anchor = n > 1 && i === 0 ? 'start' : n > 1 && i === n - 1 ? 'end' : 'middle';
    parts.push(
      `<text x="${x(i).toFixed(1)}" y="${top + plotH + 16}" class="xl" text-anchor="${anchor}">${esc(l)}</text>`,
    );
  });
  opts.series.forEach((s, si) => {
    const color = PALETTE[si % PALETTE.length];
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2" class="series"/>`);
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      parts.push(
        `<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${color}"><title>${esc(`${s.name} · ${opts.labels[i]}: ${opts.format(v)}`)}</title></circle>`,
      );
    });
    const lx = left + (si % 3) * 170;
    const ly = H + Math.floor(si / 3) * 16 - 10;
    parts.push(
      `<rect x="${lx}" y="${ly - 8}" width="10" height="10" fill="${color}"/>`,
      `<text x="${lx + 14}" y="${ly}" class="lg">${esc(s.name)}</text>`,
    );
  });
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" class="axis"/>`);
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}" class="axis"/>`);
  parts.push('</svg>');
  return parts.join('');
}

// --- page -----------------------------------------------------------------------------------------------------

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.raw{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}.raw{white-space:pre-wrap;word-break:break-all;max-width:560px}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.muted{color:#57606a}
.meta td:first-child{font-weight:600;background:#eef1f4}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fff;border:1px solid #d0d7de}
.chart .ct{font-weight:600;font-size:13px}.chart .grid{stroke:#e5e8eb}.chart .axis{stroke:#8c959f}
.chart text{font-size:11px;fill:#1b1f24}.chart .yl,.chart .xl{fill:#57606a}
.nz{font-weight:600}nav a{margin-right:12px}
.err{background:#ffebe9;border:1px solid #ff8182;padding:8px 12px}
`;

function table(head: string[], rows: string[][], cls = ''): string {
  const h = head.map((c) => `<th>${esc(c)}</th>`).join('');
  const b = rows.map((r) => `<tr>${r.join('')}</tr>`).join('\n');
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${h}</tr></thead><tbody>\n${b}\n</tbody></table>`;
}
const td = (v: unknown): string => `<td>${esc(v)}</td>`;
const tdn = (v: string): string => `<td class="n">${esc(v)}</td>`;

function stepsSection(run: ReportRun): string {
  const rows = run.steps.map((s) => {
    const q = Object.entries(s.quarantined)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => `${r} ${int(n)}`)
      .join(', ');
    return [
      td(s.step),
      tdn(int(s.rowsIn)),
      tdn(int(s.rowsOut)),
      td(q || '0'),
      tdn(pct(s.layer === 'silver' || s.layer === 'bronze' ? quarantineRate(s) : null)),
      tdn(String(s.partitionsConsidered ?? 0)),
      tdn(String(s.partitionsRecomputed ?? 0)),
      tdn(String(s.partitionsChanged ?? 0)),
      tdn(secs(s.durationMs)),
    ];
  });
  return (
    `<section id="tables"><h2>Tables: rows and partitions</h2>` +
    `<p class="muted">Rows in = rows the step read; rows out = rows of the table it published; quarantine rate = ` +
    `quarantined ÷ rows judged in this run. Partitions: considered, recomputed (stale or forced), changed (published).</p>` +
    table(
      [
        'step',
        'rows in',
        'rows out',
        'quarantined',
        'quarantine rate',
        'partitions considered',
        'recomputed',
        'changed',
        'seconds',
      ],
      rows,
      'steps',
    ) +
    `</section>`
  );
}

function quarantineSection(data: ReportData): string {
  const parts: string[] = [];
  for (const s of data.run.steps) {
    const rules = Object.entries(s.quarantined).filter(([, n]) => n > 0);
    if (rules.length === 0) continue;
    const judged = s.extra.rows_computed ?? s.rowsIn;
    parts.push(`<h3>${esc(s.step)}</h3>`);
    parts.push(
      table(
        ['rule', 'rows', 'share of rows judged'],
        rules.map(([r, n]) => [td(r), tdn(int(n)), tdn(pct(judged > 0 ? n / judged : null))]),
        'rules',
      ),
    );
    for (const [rule] of rules) {
      const sample = data.samples[s.table]?.[rule] ?? [];
      if (sample.length === 0) continue;
      parts.push(
        `<details open><summary>${esc(rule)}: ${sample.length} sample row${sample.length === 1 ? '' : 's'}</summary>` +
          table(
            ['source file', 'line', 'detail', 'raw record'],
            sample.map((r) => [
              td(r.sourceFile ?? ''),
              tdn(r.sourceLine === null ? '' : String(r.sourceLine)),
              td(r.detail ?? ''),
              `<td class="raw">${esc(r.raw ?? '')}</td>`,
            ]),
            'samples',
          ) +
          `</details>`,
      );
    }
  }
  return (
    `<section id="quarantine"><h2>Quarantine per rule</h2>` +
    `<p class="muted">Up to ${SAMPLE_ROWS} sample rows per rule from <code>quarantine.&lt;table&gt;</code>; e-mail ` +
    `addresses appear as their salted SHA-256, as in silver.</p>` +
    (parts.length ? parts.join('\n') : '<p>No row was quarantined in this run.</p>') +
    `</section>`
  );
}

function nullRatesSection(run: ReportRun): string {
  const rows: string[][] = [];
  for (const s of run.steps) {
    const cols = Object.entries(s.nullRates);
    if (cols.length === 0) continue;
    const cells = cols
      .map(([c, r]) => `<span class="${r > 0 ? 'nz' : ''}">${esc(c)} ${esc(pct(r))}</span>`)
      .join(' · ');
    rows.push([td(s.step), `<td>${cells}</td>`, tdn(pct(Math.max(...cols.map(([, r]) => r))))]);
  }
  return (
    `<section id="null-rates"><h2>Null rates of key columns</h2>` +
    `<p class="muted">Key columns per table (the registry's <code>keyColumns</code>), over the rows each step built.</p>` +
    (rows.length
      ? table(['table', 'columns', 'worst'], rows, 'nulls')
      : '<p>No step computed null rates in this run (nothing was recomputed).</p>') +
    `</section>`
  );
}

function anomalySection(data: ReportData): string {
  const run = data.run;
  const ev = run.steps.find((s) => s.step === 'silver.usage_events');
  const day = run.steps.find((s) => s.step === 'gold.cost_anomaly_mart');
  const rows: string[][] = [];
  if (ev && ev.rowsIn > 0) {
    const kept = ev.extra.rows_kept ?? ev.rowsOut;
    rows.push([
      td('silver.usage_events (events of this run)'),
      tdn(int(kept)),
      tdn(int(ev.extra.anomaly_any ?? 0)),
      tdn(pct(eventAnomalyRate(run))),
      td(
        `zscore ${ev.extra.anomaly_zscore ?? 0}, robust z ${ev.extra.anomaly_mad ?? 0}, pctl ${ev.extra.anomaly_pctl ?? 0}`,
      ),
    ]);
  }
  if (day && day.rowsIn > 0 && day.extra.anomaly_days !== undefined) {
    rows.push([
      td('gold.cost_anomaly_mart (days of this run)'),
      tdn(int(day.rowsOut)),
      tdn(int(day.extra.anomaly_days)),
      tdn(pct(dayAnomalyRate(run))),
      td('any method'),
    ]);
  }
  for (const a of data.anomalies) {
    rows.push([
      td(`${a.table} (whole table)`),
      tdn(int(a.rows)),
      tdn(int(a.anomalies)),
      tdn(pct(a.rows > 0 ? a.anomalies / a.rows : null)),
      td('any method'),
    ]);
  }
  return (
    `<section id="anomalies"><h2>Anomaly rates</h2>` +
    `<p class="muted">A detector that flags a large share of rows is broken, not a finding (SPEC §5).</p>` +
    (rows.length
      ? table(['table', 'rows', 'flagged', 'rate', 'methods'], rows, 'anomalies')
      : '<p>No anomaly figures.</p>') +
    `</section>`
  );
}

function gateSection(run: ReportRun): string {
  const g = run.gate;
  if (!g || !Array.isArray(g.checks)) {
    return `<section id="gate"><h2>Quality gate</h2><p>The gate did not report checks for this run${run.error ? ' (the run failed before or at the gate)' : ''}.</p></section>`;
  }
  return (
    `<section id="gate"><h2>Quality gate: <span class="${g.passed ? 'ok' : 'bad'}">${g.passed ? 'passed' : 'failed'}</span></h2>` +
    table(
      ['table', 'check', 'value', 'limit', 'result'],
      g.checks.map((c) => [
        td(c.table),
        td(c.check),
        tdn(pct(c.value, 3)),
        tdn(pct(c.limit, 3)),
        `<td class="${c.passed ? 'ok' : 'bad'}">${c.passed ? 'ok' : 'FAILED'}</td>`,
      ]),
      'gate',
    ) +
    `</section>`
  );
}

const runLabel = (r: ReportRun): string => `${r.startedAt.slice(5, 10)} ${r.startedAt.slice(11, 16)}`;

function historySection(data: ReportData): string {
  const runs = data.history;
  const labels = runs.map(runLabel);
  const silverTables = [
    ...new Set(runs.flatMap((r) => r.steps.filter((s) => s.layer === 'silver').map((s) => s.table))),
  ].sort();
  const quarantine = lineChart({
    id: 'chart-quarantine',
    title: 'Quarantine rate per silver table',
    labels,
    series: silverTables.map((t) => ({
      name: t,
      values: runs.map((r) => {
        const s = r.steps.find((x) => x.layer === 'silver' && x.table === t);
        return s ? quarantineRate(s) : null;
      }),
    })),
    format: (v) => pct(v, 2),
  });
  const anomaly = lineChart({
    id: 'chart-anomaly',
    title: 'Anomaly rate',
    labels,
    series: [
      { name: 'events (silver)', values: runs.map(eventAnomalyRate) },
      { name: 'days (gold)', values: runs.map(dayAnomalyRate) },
    ],
    format: (v) => pct(v, 2),
  });
  const layerRows = (r: ReportRun, layer: string, key: 'rowsIn' | 'rowsOut'): number =>
    r.steps.filter((s) => s.layer === layer).reduce((a, s) => a + s[key], 0);
  const rows = lineChart({
    id: 'chart-rows',
    title: 'Rows per run',
    labels,
    series: [
      { name: 'bronze rows in', values: runs.map((r) => layerRows(r, 'bronze', 'rowsIn')) },
      { name: 'silver rows in', values: runs.map((r) => layerRows(r, 'silver', 'rowsIn')) },
      { name: 'gold rows in', values: runs.map((r) => layerRows(r, 'gold', 'rowsIn')) },
    ],
    format: (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : v >= 10_000 ? `${(v / 1000).toFixed(1)}k` : int(v)),
  });
  const duration = lineChart({
    id: 'chart-duration',
    title: 'Run duration (seconds)',
    labels,
    series: [
      { name: 'wall clock', values: runs.map(runSeconds) },
      { name: 'activity time', values: runs.map((r) => r.steps.reduce((a, s) => a + s.durationMs, 0) / 1000) },
    ],
    format: (v) => v.toFixed(1),
  });
  const list = table(
    ['started', 'workflow id', 'kind', 'status', 'seconds', 'quarantined', 'event anomaly rate'],
    [...runs].reverse().map((r) => {
      const current = r.runId === data.run.runId;
      return [
        td(r.startedAt),
        `<td>${current ? '<strong>' : ''}${esc(r.workflowId)}${current ? '</strong> (this run)' : ''}</td>`,
        td(r.kind),
        `<td class="${r.status === 'succeeded' ? 'ok' : 'bad'}">${esc(r.status)}</td>`,
        tdn(runSeconds(r)?.toFixed(2) ?? '—'),
        tdn(int(r.steps.reduce((a, s) => a + sum(s.quarantined), 0))),
        tdn(pct(eventAnomalyRate(r))),
      ];
    }),
    'runs',
  );
  return (
    `<section id="history"><h2>Across runs (${runs.length})</h2>` +
    `<div class="charts">${quarantine}${anomaly}${rows}${duration}</div>` +
    `<h3>Runs, newest first</h3>${list}</section>`
  );
}

/** The whole page. Deterministic for given data (no clock read here: `generatedAt` is data). */
export function renderQualityReport(data: ReportData): string {
  const r = data.run;
  const seconds = runSeconds(r);
  const meta = table(
    ['', ''],
    [
      [td('run id'), `<td><code>${esc(r.runId)}</code></td>`],
      [td('workflow id'), `<td><code>${esc(r.workflowId)}</code></td>`],
      [td('kind / logical date'), td(`${r.kind} / ${r.logicalDate ?? 'all'}`)],
      [td('status'), `<td class="${r.status === 'succeeded' ? 'ok' : 'bad'}">${esc(r.status)}</td>`],
      [td('started / finished'), td(`${r.startedAt} / ${r.finishedAt}`)],
      [td('duration'), td(seconds === null ? '—' : `${seconds.toFixed(2)} s`)],
      [td('lake'), `<td><code>${esc(r.lake)}</code></td>`],
      [
        td('lake snapshots'),
        td(r.snapshots ? `${r.snapshots.first}–${r.snapshots.last} (${r.snapshots.count})` : 'not recorded yet'),
      ],
    ],
    'meta',
  ).replace('<thead><tr><th></th><th></th></tr></thead>', '');
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    // No network, ever: the page may be opened from a bucket or a mail attachment.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>Data quality — ${esc(r.workflowId)}</title>`,
    `<style>${CSS}</style></head><body><main>`,
    `<h1>Data-quality report — ${esc(r.workflowId)}</h1>`,
    `<p class="muted">Cloud Provider Analytics · generated ${esc(data.generatedAt)}</p>`,
    r.error ? `<p class="err"><strong>Run failed:</strong> ${esc(r.error)}</p>` : '',
    meta,
    `<nav>${[
      ['history', 'across runs'],
      ['tables', 'tables'],
      ['quarantine', 'quarantine'],
      ['null-rates', 'null rates'],
      ['anomalies', 'anomalies'],
      ['gate', 'gate'],
    ]
      .map(([id, label]) => `<a href="#${id}">${label}</a>`)
      .join('')}</nav>`,
    // The charts first: an operator looks at the trend before the detail of one run.
    historySection(data),
    stepsSection(r),
    quarantineSection(data),
    nullRatesSection(r),
    anomalySection(data),
    gateSection(r),
    `<footer class="muted"><p>${data.location ? `Written to <code>${esc(data.location)}</code>. ` : ''}` +
      `Regenerate with <code>cpa report --run ${esc(r.runId)}</code>.</p></footer>`,
    '</main></body></html>',
    '',
  ].join('\n');
}
