import { ApplicationFailure } from '@temporalio/common';
import { joinUri } from '../config/env';
import { storageFor } from '../lake/storage';
import { ErrorTypes, emptyMetrics, persistMetrics } from './common';
import type { ActivityDeps, RunTarget, StepMetrics } from './common';

export interface GateResult {
  passed: boolean;
  checks: Array<{ table: string; check: string; value: number; limit: number; passed: boolean }>;
}

/**
 * The quality gate between silver and gold. Per silver table: quarantine rate (quarantined / rows in) against the
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
    const rate = m.rowsIn > 0 ? quarantined / m.rowsIn : 0;
    const limit = quality.perTable[m.table] ?? quality.maxQuarantineRate;
    const passed = rate <= limit;
    checks.push({ table: m.table, check: 'quarantine_rate', value: round6(rate), limit, passed });
    if (!passed) {
      const [topRule, topCount] = Object.entries(m.quarantined).sort((a, b) => b[1] - a[1])[0];
      failures.push(
        `silver.${m.table} quarantine rate ${pct(rate)} > limit ${pct(limit)} (top rule ${topRule}: ${topCount} rows)`,
      );
    }
    if (m.table === 'usage_events' && m.rowsOut > 0) {
      const aRate = (m.extra.anomaly_any ?? 0) / m.rowsOut;
      const aPassed = aRate <= quality.maxAnomalyRate;
      checks.push({ table: m.table, check: 'anomaly_rate', value: round6(aRate), limit: quality.maxAnomalyRate, passed: aPassed });
      if (!aPassed) failures.push(`silver.usage_events anomaly rate ${pct(aRate)} > limit ${pct(quality.maxAnomalyRate)}`);
    }
  }
  const metrics = emptyMetrics('quality.gate', 'quality', 'silver');
  metrics.extra = Object.fromEntries(checks.map((c) => [`${c.table}.${c.check}`, c.value]));
  await persistMetrics(storageFor(input.lake, deps.config), input, metrics);
  if (failures.length > 0) {
    throw ApplicationFailure.nonRetryable(`quality gate failed: ${failures.join('; ')}`, ErrorTypes.QualityGateFailed, {
      checks,
    });
  }
  return { passed: true, checks };
}

/** A run's summary as stored under `_meta/runs/` and returned by the workflow. */
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
}

/** Persists the run record (idempotent: one object per run id, replaced on retry). */
export async function recordRun(deps: ActivityDeps, summary: RunSummary): Promise<void> {
  const storage = storageFor(summary.lake, deps.config);
  await storage.writeBytes(joinUri(summary.lake, '_meta', 'runs', `${summary.runId}.json`), JSON.stringify(summary));
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;
const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
