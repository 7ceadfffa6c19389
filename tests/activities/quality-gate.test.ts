import type { ApplicationFailure } from '@temporalio/common';
import { emptyMetrics } from '../../activities/common';
import type { StepMetrics } from '../../activities/common';
import { qualityGate } from '../../activities/quality';
import { loadConfig } from '../../config/env';

/**
 * The gate between silver and gold judges what the run computed (SPEC §9a): a partition-scoped step reads the
 * window days around the partitions it recomputes, so its rates are over the rows of those partitions only.
 */
describe('quality gate', () => {
  const config = loadConfig({
    CPA_LAKE_ROOT: '/tmp/unused',
    CPA_QUALITY_MAX_QUARANTINE_RATE: '0.05',
    CPA_QUALITY_MAX_ANOMALY_RATE: '0.2',
  });
  const deps = { config, db: undefined as never };
  const target = { lake: '/tmp/unused', landing: '/tmp/unused', runId: 'r' };

  function step(opts: { rowsIn: number; computed?: number; kept?: number; quarantined?: number; anomalies?: number }) {
    const m: StepMetrics = emptyMetrics('silver.usage_events', 'silver', 'usage_events');
    m.rowsIn = opts.rowsIn;
    m.rowsOut = 1_000_000;
    if (opts.computed !== undefined) m.extra.rows_computed = opts.computed;
    if (opts.kept !== undefined) m.extra.rows_kept = opts.kept;
    if (opts.quarantined) m.quarantined = { negative_cost: opts.quarantined };
    m.extra.anomaly_any = opts.anomalies ?? 0;
    return m;
  }

  async function failure(silver: StepMetrics[]): Promise<ApplicationFailure | undefined> {
    return qualityGate(deps, { ...target, silver }).then(
      () => undefined,
      (e: unknown) => e as ApplicationFailure,
    );
  }

  it('passes a clean run and reports each check', async () => {
    const r = await qualityGate(deps, {
      ...target,
      silver: [step({ rowsIn: 1000, computed: 1000, kept: 990, quarantined: 10 })],
    });
    expect(r.passed).toBe(true);
    expect(r.checks.map((c) => [c.check, c.value])).toEqual([
      ['quarantine_rate', 0.01],
      ['anomaly_rate', 0],
    ]);
  });

  it('fails a new day with 10 % bad rows though the window it read (29 days) dilutes them to 0.3 %', async () => {
    const e = await failure([step({ rowsIn: 29_000, computed: 1000, kept: 900, quarantined: 100 })]);
    expect(e?.type).toBe('QualityGateFailed');
    expect(e?.nonRetryable).toBe(true);
    expect(e?.message).toBe(
      'quality gate failed: silver.usage_events quarantine rate 10.00% > limit 5.00% (top rule negative_cost: 100 rows)',
    );
  });

  it('judges the anomaly rate over the kept rows of the recomputed partitions, not the whole table', async () => {
    const e = await failure([step({ rowsIn: 29_000, computed: 1000, kept: 1000, anomalies: 300 })]);
    expect(e?.message).toBe('quality gate failed: silver.usage_events anomaly rate 30.00% > limit 20.00%');
  });

  it('a step that recomputed nothing passes', async () => {
    const r = await qualityGate(deps, { ...target, silver: [step({ rowsIn: 0, computed: 0, kept: 0 })] });
    expect(r.passed).toBe(true);
  });
});
