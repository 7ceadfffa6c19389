import { ApplicationFailure } from '@temporalio/common';
import { round6 } from '../lake/decimal';
import { lakeWrite, qualified, runSnapshots } from '../lake/lakehouse';
import { ErrorTypes, emptyMetrics, persistMetrics, withLake } from './common';
import type { ActivityDeps, RunTarget, StepMetrics } from './common';

export interface GateResult {
  passed: boolean;
  checks: Array<{ table: string; check: string; value: number; limit: number; passed: boolean }>;
}

/**
 * The quality gate between silver and gold. Per silver table: quarantine rate (quarantined / rows the step computed,
 * i.e. of the partitions it recomputed) against the
 * table's limit (CPA_QUALITY_THRESHOLDS, else CPA_QUALITY_MAX_QUARANTINE_RATE); for usage_events also the event
 * anomaly rate against CPA_QUALITY_MAX_ANOMALY_RATE (a detector that flags a large share of events is broken).
 * Crossing a limit fails the run, non-retryable, naming the table, the rate and its top rule.
 */
export async function qualityGate(
  deps: ActivityDeps,
  input: RunTarget & { silver: StepMetrics[] },
): Promise<GateResult> {
  const { quality } = deps.config;
  const checks: GateResult['checks'] = [];
  const failures: string[] = [];
  for (const m of input.silver) {
    const quarantined = Object.values(m.quarantined).reduce((a, b) => a + b, 0);
    // Rates over what this run computed: a partition-scoped step reads window days it does not recompute.
    const computed = m.extra.rows_computed ?? m.rowsIn;
    const rate = computed > 0 ? quarantined / computed : 0;
    const limit = quality.perTable[m.table] ?? quality.maxQuarantineRate;
    const passed = rate <= limit;
    checks.push({ table: m.table, check: 'quarantine_rate', value: round6(rate), limit, passed });
    if (!passed) {
      const [topRule, topCount] = Object.entries(m.quarantined).sort((a, b) => b[1] - a[1])[0];
      failures.push(
        `silver.${m.table} quarantine rate ${pct(rate)} > limit ${pct(limit)} (top rule ${topRule}: ${topCount} rows)`,
      );
    }
    const kept = m.extra.rows_kept ?? m.rowsOut;
    if (m.table === 'usage_events' && kept > 0) {
      const aRate = (m.extra.anomaly_any ?? 0) / kept;
      const aPassed = aRate <= quality.maxAnomalyRate;
      checks.push({
        table: m.table,
        check: 'anomaly_rate',
        value: round6(aRate),
        limit: quality.maxAnomalyRate,
        passed: aPassed,
      });
      if (!aPassed)
        failures.push(`silver.usage_events anomaly rate ${pct(aRate)} > limit ${pct(quality.maxAnomalyRate)}`);
    }
  }
  if (failures.length > 0) {
    throw ApplicationFailure.nonRetryable(`quality gate failed: ${failures.join('; ')}`, ErrorTypes.QualityGateFailed, {
      checks,
    });
  }
  return { passed: true, checks };
}

/** A run's summary as stored in `meta.runs` and returned by the workflow. */
export interface RunSummary {
  runId: string;
  workflowId: string;
  logicalDate: string | null;
  kind: string;
  status: 'succeeded' | 'failed';
  startedAt: string;
  finishedAt: string;
  lake: string;
  landing: string;
  steps: StepMetrics[];
  gate?: GateResult;
  error?: string;
  /** The lake snapshots this run committed (first and last id), for time travel: `AT (VERSION => id)`. */
  snapshots?: { first: number; last: number; count: number };
  /** What an operator should know about a run that succeeded, e.g. `no usage events landed for 2025-08-02`. */
  notes?: string[];
  /** The run's HTML quality report (`<lake>/_meta/reports/<runId>.html`), or why it could not be written. */
  report?: { uri?: string; error?: string };
}

/** The gate's checks as a step of the quality report (`quality.gate`: one figure per table and check). */
export function gateMetrics(gate: GateResult): StepMetrics {
  const metrics = emptyMetrics('quality.gate', 'quality', 'silver');
  metrics.extra = Object.fromEntries(gate.checks.map((c) => [`${c.table}.${c.check}`, c.value]));
  return metrics;
}

/**
 * Persists the run record as a row of `meta.runs` with the snapshot range the run committed, and every step's
 * metrics (and the gate's) as rows of `meta.step_metrics`, in one transaction: one commit per run instead of one per
 * step (steps report their metrics to the workflow, which has them all here). Idempotent: a retry appends the same
 * rows again and readers take the latest per run id and step.
 */
export async function recordRun(deps: ActivityDeps, summary: RunSummary): Promise<RunSummary> {
  return withLake(deps, summary.lake, async (conn, lake) => {
    const ids = await runSnapshots(conn, lake, summary.runId);
    const record: RunSummary =
      ids.length > 0
        ? { ...summary, snapshots: { first: ids[0], last: ids[ids.length - 1], count: ids.length } }
        : summary;
    await lakeWrite(conn, lake, async () => async () => {
      await conn.run(
        `insert into ${qualified(lake, 'meta', 'runs')}
       values ($run, $wf, $kind, $date, $status, $started::timestamptz, $finished::timestamptz, $first, $last, $summary, now())`,
        {
          run: record.runId,
          wf: record.workflowId,
          kind: record.kind,
          date: record.logicalDate,
          status: record.status,
          started: record.startedAt,
          finished: record.finishedAt,
          first: record.snapshots?.first ?? null,
          last: record.snapshots?.last ?? null,
          summary: JSON.stringify(record),
        },
      );
      const steps = [...record.steps, ...(record.gate ? [gateMetrics(record.gate)] : [])];
      for (const m of steps) await persistMetrics(conn, lake, record, m);
    });
    return record;
  });
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
