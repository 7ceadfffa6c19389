import crypto from 'node:crypto';
import { DuckDBInstance } from '@duckdb/node-api';
import { maskRaw, reportUri } from '../../lake/report-data';
import { escapeHtml, lineChart, renderQualityReport } from '../../lake/report-html';
import type { ReportData, ReportRun, ReportStep } from '../../lake/report-html';

const step = (over: Partial<ReportStep> & Pick<ReportStep, 'step' | 'layer' | 'table'>): ReportStep => ({
  rowsIn: 0,
  rowsOut: 0,
  quarantined: {},
  nullRates: {},
  partitionsConsidered: 0,
  partitionsRecomputed: 0,
  partitionsChanged: 0,
  durationMs: 0,
  extra: {},
  ...over,
});

function run(i: number, over: Partial<ReportRun> = {}): ReportRun {
  const started = new Date(Date.UTC(2025, 7, 1 + i, 2, 0, 0));
  return {
    runId: `run-${i}`,
    workflowId: `daily-pipeline/2025-08-0${1 + i}`,
    logicalDate: `2025-08-0${1 + i}`,
    kind: 'scheduled',
    status: 'succeeded',
    startedAt: started.toISOString(),
    finishedAt: new Date(started.getTime() + 4000 + i * 1000).toISOString(),
    lake: '/lake',
    steps: [
      step({
        step: 'bronze.usage_events',
        layer: 'bronze',
        table: 'usage_events',
        rowsIn: 1000,
        rowsOut: 990,
        quarantined: { malformed_json: 10 },
      }),
      step({
        step: 'silver.usage_events',
        layer: 'silver',
        table: 'usage_events',
        rowsIn: 990,
        rowsOut: 950,
        quarantined: { negative_cost: 30 + i, unknown_service: 10 },
        nullRates: { org_id: 0, region: 0.0123 },
        partitionsConsidered: 10,
        partitionsRecomputed: 2,
        partitionsChanged: 1,
        durationMs: 1500,
        extra: {
          rows_computed: 990,
          rows_kept: 950,
          anomaly_any: 19,
          anomaly_zscore: 7,
          anomaly_mad: 12,
          anomaly_pctl: 3,
        },
      }),
      step({
        step: 'silver.users',
        layer: 'silver',
        table: 'users',
        rowsIn: 40,
        rowsOut: 39,
        quarantined: { invalid_email: 1 },
      }),
      step({
        step: 'gold.cost_anomaly_mart',
        layer: 'gold',
        table: 'cost_anomaly_mart',
        rowsIn: 950,
        rowsOut: 120,
        extra: { anomaly_days: 4 },
      }),
    ],
    gate: {
      passed: true,
      checks: [
        { table: 'usage_events', check: 'quarantine_rate', value: 0.04, limit: 0.05, passed: true },
        { table: 'usage_events', check: 'anomaly_rate', value: 0.02, limit: 0.1, passed: true },
      ],
    },
    ...over,
  };
}

function data(runs: ReportRun[], over: Partial<ReportData> = {}): ReportData {
  return {
    run: runs[runs.length - 1],
    history: runs,
    samples: {
      usage_events: {
        negative_cost: [
          { sourceFile: 'events/part_0001.jsonl', sourceLine: 7, detail: 'cost_usd_increment -3.2', raw: '{"a":1}' },
        ],
      },
      users: {
        invalid_email: [
          { sourceFile: 'users.csv', sourceLine: 3, detail: 'email is not a valid address', raw: '{"email":"ab"}' },
        ],
      },
    },
    anomalies: [{ table: 'gold.cost_anomaly_mart', rows: 1000, anomalies: 34 }],
    generatedAt: '2025-08-04T02:00:10.000Z',
    location: '/lake/_meta/reports/run-2.html',
    ...over,
  };
}

/** The `<section id=…>` ids of a page. */
const sections = (html: string): string[] => [...html.matchAll(/<section id="([a-z-]+)"/g)].map((m) => m[1]);

describe('quality report renderer', () => {
  it('has every section, four SVG charts with lines over a multi-run history, and no way to the network', () => {
    const html = renderQualityReport(data([run(0), run(1), run(2)]));
    expect(sections(html).sort()).toEqual(['anomalies', 'gate', 'history', 'null-rates', 'quarantine', 'tables']);
    const charts = [...html.matchAll(/<svg class="chart" id="([a-z-]+)"[\s\S]*?<\/svg>/g)];
    expect(charts.map((c) => c[1])).toEqual(['chart-quarantine', 'chart-anomaly', 'chart-rows', 'chart-duration']);
    for (const [svg] of charts) {
      expect(svg).toMatch(/<path d="M[\d.]+,[\d.]+L/); // a line through the runs
      expect((svg.match(/<circle /g) ?? []).length).toBeGreaterThanOrEqual(3);
    }
    // Per table: rows, quarantine per rule with samples, null rates, anomaly rates, gate checks, partitions.
    expect(html).toContain('<td>silver.usage_events</td><td class="n">990</td><td class="n">950</td>');
    expect(html).toContain('<td>negative_cost</td><td class="n">32</td>');
    expect(html).toContain('events/part_0001.jsonl');
    expect(html).toContain('region 1.23%');
    expect(html).toContain(
      '<td>gold.cost_anomaly_mart (whole table)</td><td class="n">1,000</td><td class="n">34</td><td class="n">3.40%</td>',
    );
    expect(html).toContain(
      '<td>silver.usage_events (events of this run)</td><td class="n">950</td><td class="n">19</td><td class="n">2.00%</td>',
    );
    expect(html).toContain('Quality gate: <span class="ok">passed</span>');
    expect(html).toContain('<td>anomaly_rate</td>');
    expect(html).toMatch(/<th>recomputed<\/th><th>changed<\/th>/);
    // Three runs listed, the reported one marked.
    expect((html.match(/<tr><td>2025-08-0\dT02:00:00.000Z<\/td>/g) ?? []).length).toBe(3);
    expect(html).toContain('daily-pipeline/2025-08-03</strong> (this run)');
    // Self-contained: no script, no external resource, a CSP that forbids fetching anything.
    expect(html).not.toMatch(/<script|<link|<img|<iframe|src=|@import|url\(/i);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).toContain(`content="default-src 'none'`);
  });

  it('escapes every string that comes from data', () => {
    const evil = `<script>alert("x")</script>&'`;
    const r = run(0, { workflowId: evil, error: `bad ${evil}`, lake: evil });
    r.steps[1].quarantined = { [evil]: 3 };
    const html = renderQualityReport(
      data([r], {
        samples: {
          usage_events: { [evil]: [{ sourceFile: evil, sourceLine: 1, detail: evil, raw: `{"x":"${evil}"}` }] },
        },
      }),
    );
    expect(html).not.toContain('<script>');
    expect(html).not.toContain(`"x")`);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;');
    expect(escapeHtml(`a<b>"c"&'d'`)).toBe('a&lt;b&gt;&quot;c&quot;&amp;&#39;d&#39;');
  });

  it('draws a single run as points, and a failed run with its error and failed gate', () => {
    const failed = run(0, {
      status: 'failed',
      error: 'quality gate failed: silver.usage_events quarantine rate 9.00% > limit 5.00%',
      gate: {
        passed: false,
        checks: [{ table: 'usage_events', check: 'quarantine_rate', value: 0.09, limit: 0.05, passed: false }],
      },
    });
    const html = renderQualityReport(data([failed]));
    expect(html).toContain('<p class="err"><strong>Run failed:</strong> quality gate failed');
    expect(html).toContain('Quality gate: <span class="bad">failed</span>');
    expect(html).toContain('<td class="bad">FAILED</td>');
    const svg = html.match(/<svg class="chart" id="chart-duration"[\s\S]*?<\/svg>/)![0];
    expect(svg).not.toMatch(/<path d="[^"]*L/);
    expect(svg).toContain('<circle ');
    // Steps that did not run leave gaps, not zeros: a null point draws nothing.
    const gap = lineChart({
      id: 'g',
      title: 't',
      labels: ['a', 'b', 'c'],
      series: [{ name: 's', values: [0.1, null, 0.2] }],
      format: String,
    });
    expect((gap.match(/<circle /g) ?? []).length).toBe(2);
    expect(gap).not.toMatch(/<path d="[^"]*L/);
  });

  it('hashes e-mail addresses in raw records exactly as silver does (salted SHA-256 of the trimmed lower-case address)', async () => {
    const salt = 'pepper';
    const masked = JSON.parse(maskRaw('{"user_id":"u1","email":"  Ada@Example.COM "}', salt)!) as Record<
      string,
      string
    >;
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const [row] = (
      await conn.runAndReadAll(`select sha256($salt || lower(trim($email))) as h`, {
        salt,
        email: '  Ada@Example.COM ',
      })
    ).getRowObjectsJson();
    conn.closeSync();
    db.closeSync();
    expect(masked).toEqual({ user_id: 'u1', email: row.h });
    // Already hashed (silver's quarantine stores the hash): left alone.
    expect(maskRaw(JSON.stringify({ email: row.h }), salt)).toBe(JSON.stringify({ email: row.h }));
    // A line that is not JSON: any address in it is hashed too.
    const line = maskRaw('{"email": "bob@example.org", broken', salt)!;
    expect(line).not.toContain('bob@example.org');
    expect(line).toContain(crypto.createHash('sha256').update(`${salt}bob@example.org`).digest('hex'));
    expect(reportUri('s3://bucket/lake/', 'a/../b')).toBe('s3://bucket/lake/_meta/reports/a_.._b.html');
  });
});
