import fs from 'node:fs';
import path from 'node:path';
import { GOLD_COLUMNS } from '../../config/contracts';
import { goldDigest as digest, withLakeSql } from '../support/lake-sql';
import { expectFiguresEqual, goldRow, lakeFigures } from '../support/figures';
import type { Figures } from '../support/figures';
import { cpa, firstRun, REFERENCE_LANDING, silverEventsQuality, tmpDir } from '../support/env';

/**
 * End to end over the real reference dataset: `cpa run` through an embedded Temporal dev server, then every figure
 * compared with tests/e2e/reference/expected.json — computed by derive.py, an independent pure-Python
 * implementation of SPEC §3–§6 (see tests/e2e/reference/README.md), not by reading the pipeline's output back.
 */
const expected = JSON.parse(fs.readFileSync(path.join(__dirname, 'reference', 'expected.json'), 'utf8')) as Figures & {
  spot_checks: Array<{ mart: string; key: Record<string, string>; row: Record<string, unknown> }>;
};

const goldDigest = (lake: string): Promise<Record<string, string>> => digest(lake, Object.keys(GOLD_COLUMNS));

describe('cpa run over the reference dataset', () => {
  const lake = tmpDir('ref-lake');
  let first: ReturnType<typeof cpa>;

  beforeAll(() => {
    first = cpa(['run', '--landing', REFERENCE_LANDING, '--lake', lake]);
  });

  it('exits 0 via the dailyPipeline workflow and prints the run summary', () => {
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('daily-pipeline/all succeeded');
    expect(first.stdout).toContain('gold.org_service_cost_summary');
  });

  it('writes the ten gold marts (SPEC §6, §6b) with their exact names and columns', async () => {
    await withLakeSql(lake, async (q) => {
      for (const [mart, cols] of Object.entries(GOLD_COLUMNS)) {
        // The data files are Parquet under <lake>/gold/<mart>/, and the catalog's table has the contract's columns.
        expect(fs.readdirSync(path.join(lake, 'gold', mart)).length).toBeGreaterThan(0);
        const desc = await q(`describe lake.gold.${mart}`);
        expect(desc.map((d) => d.column_name)).toEqual(cols);
      }
    });
  });

  it('is readable by any DuckDB: a fresh read-only attach of the catalog returns the rows `cpa query --backend duckdb` does', async () => {
    const { org, rows } = await withLakeSql(lake, async (q) => {
      const [top] = await q(
        `select org_id from lake.gold.org_daily_usage_by_service group by 1 order by count(*) desc, 1 limit 1`,
      );
      const found = await q(
        `select usage_date::varchar as usage_date, service, total_cost_usd::varchar as total_cost_usd,
                total_requests::varchar as total_requests, cpu_hours::varchar as cpu_hours,
                storage_gb_hours::varchar as storage_gb_hours, carbon_kg::varchar as carbon_kg, event_count
         from lake.gold.org_daily_usage_by_service
         where org_id = $org and usage_date between date '2025-08-01' and date '2025-08-31'
         order by usage_date, service`,
        { org: String(top.org_id) },
      );
      return { org: String(top.org_id), rows: found };
    });
    expect(rows.length).toBeGreaterThan(20);
    const r = cpa([
      'query',
      'q1',
      '--lake',
      lake,
      '--backend',
      'duckdb',
      '--org',
      org,
      '--from',
      '2025-08-01',
      '--to',
      '2025-08-31',
      '--json',
    ]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const served = (JSON.parse(r.stdout) as { rows: Array<Record<string, unknown>> }).rows.map(({ source, ...row }) => {
      expect(source).toBe('batch');
      return row;
    });
    expect(served).toEqual(rows.map((row) => ({ ...row, event_count: Number(row.event_count) })));
  });

  it('matches the independent computation: row counts, totals, quarantine per rule, anomaly counts', async () => {
    expectFiguresEqual(await lakeFigures(lake), expected);
  });

  it('matches the independently computed spot-check rows column by column', async () => {
    for (const spot of expected.spot_checks) {
      const row = await goldRow(lake, spot.mart, spot.key);
      expect({ mart: spot.mart, key: spot.key, found: row !== undefined }).toEqual({
        mart: spot.mart,
        key: spot.key,
        found: true,
      });
      for (const [col, want] of Object.entries(spot.row)) {
        const got = row![col];
        if (typeof want === 'number' && !Number.isInteger(want))
          expect(Math.abs(Number(got) - want)).toBeLessThan(2e-6);
        else if (typeof want === 'number') expect(Number(got)).toBe(want);
        else expect({ col, got }).toEqual({ col, got: want });
      }
    }
  });

  it('is idempotent: a second run rewrites nothing, gold is identical and bronze has no duplicate event_id', async () => {
    const before = await goldDigest(lake);
    const second = cpa(['run', '--landing', REFERENCE_LANDING, '--lake', lake, '--json']);
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
    const summary = JSON.parse(second.stdout) as {
      steps: Array<{ step: string; layer: string; partitionsWritten: number; partitionsRecomputed: number }>;
    };
    expect(summary.steps.filter((s) => s.partitionsWritten > 0)).toEqual([]);
    // Nothing new: no model recomputed a partition (SPEC §9a).
    const models = summary.steps.filter((s) => s.layer === 'silver' || s.layer === 'gold');
    expect(models).toHaveLength(18);
    expect(models.filter((s) => s.partitionsRecomputed > 0)).toEqual([]);
    expect(await goldDigest(lake)).toEqual(before);
    const fig = await lakeFigures(lake);
    expect(fig.bronze.usage_events.rows).toBe(fig.bronze.usage_events.distinct_event_ids);
  });

  it('reports the run through cpa status and cpa quality', () => {
    // Both runs are of no date: the per-date view shows the latest, --runs every run.
    const latest = JSON.parse(cpa(['status', '--lake', lake, '--json']).stdout) as Array<{ runs: number }>;
    expect(latest.map((r) => r.runs)).toEqual([2]);
    const status = cpa(['status', '--lake', lake, '--runs', '--json']);
    expect(status.code).toBe(0);
    const runs = JSON.parse(status.stdout) as Array<{
      workflowId: string;
      status: string;
      runId: string;
      startedAt: string;
    }>;
    expect(runs.length).toBe(2);
    expect(runs.every((r) => r.workflowId === 'daily-pipeline/all' && r.status === 'succeeded')).toBe(true);
    // The first run computed every partition and quarantined what the oracle says; the latest (a no-op) nothing.
    expect(silverEventsQuality(lake, firstRun(runs).runId).quarantined).toEqual({ negative_cost: 211 });
    expect(silverEventsQuality(lake)).toMatchObject({ quarantined: {}, partitionsRecomputed: 0 });
  });
});
