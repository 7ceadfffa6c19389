import { ApplicationFailure, proxyActivities, upsertMemo, workflowInfo } from '@temporalio/workflow';
import type { Activities, GateResult, RunSummary, StepMetrics } from '../activities';
import { CSV_BRONZE_TABLES, GOLD_MARTS, SILVER_MODELS, waves } from '../lake/tables';

/** Input of {@link dailyPipeline}. `lake`/`landing` are URIs (local path or s3://); runDate is the logical date. */
export interface DailyPipelineInput {
  runDate?: string | null;
  lake: string;
  landing: string;
  kind?: 'manual' | 'scheduled' | 'backfill';
}

// Non-retryable types: contract violations, failed gates and SQL defects fail the run at once with their message.
const nonRetryableErrorTypes = ['ContractViolation', 'QualityGateFailed', 'SqlError'];

/** Transforms: long, heartbeating, retried with backoff a bounded number of times. */
const transform = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '5 minutes',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5, nonRetryableErrorTypes },
});

/** Bookkeeping: quick, retried more often. */
const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 8, nonRetryableErrorTypes },
});

/**
 * The batch layer, SPEC §9: bronze (CSV snapshots ∥ pending events files) → silver (waves from the table
 * registry) → quality gate → gold marts in parallel → run record. Every step returns its metrics, which end up in
 * the returned summary and in the UI history. Idempotent: re-running over the same landing files rewrites nothing,
 * because every output is a pure function of bronze and only changed partitions are published.
 */
export async function dailyPipeline(input: DailyPipelineInput): Promise<RunSummary> {
  const info = workflowInfo();
  const target = { lake: input.lake, landing: input.landing, runId: info.runId };
  const startedAt = new Date().toISOString();
  const steps: StepMetrics[] = [];
  let gate: GateResult | undefined;
  const base = {
    runId: info.runId,
    workflowId: info.workflowId,
    logicalDate: input.runDate ?? null,
    kind: input.kind ?? 'manual',
    startedAt,
    lake: input.lake,
    landing: input.landing,
  };
  upsertMemo({ logicalDate: input.runDate ?? 'all', kind: base.kind, lake: input.lake });
  try {
    const bronze = await Promise.all([
      ...CSV_BRONZE_TABLES.map((table) => transform.ingestCsvSource({ ...target, table })),
      transform.ingestEventFiles({ ...target }),
    ]);
    steps.push(...bronze);

    const silver: StepMetrics[] = [];
    for (const wave of waves(SILVER_MODELS)) {
      silver.push(...(await Promise.all(wave.map((m) => transform.buildSilver({ ...target, table: m.table })))));
    }
    steps.push(...silver);

    gate = await quick.qualityGate({ ...target, silver });

    for (const wave of waves(GOLD_MARTS)) {
      steps.push(...(await Promise.all(wave.map((m) => transform.buildGold({ ...target, mart: m.table })))));
    }
  } catch (err) {
    const summary: RunSummary = {
      ...base,
      status: 'failed',
      finishedAt: new Date().toISOString(),
      steps,
      gate,
      error: failureMessage(err),
    };
    await quick.recordRun(summary);
    upsertMemo({ status: 'failed' });
    throw err;
  }
  const summary: RunSummary = { ...base, status: 'succeeded', finishedAt: new Date().toISOString(), steps, gate };
  await quick.recordRun(summary);
  upsertMemo({ status: 'succeeded' });
  return summary;
}

function failureMessage(err: unknown): string {
  let e: unknown = err;
  // ActivityFailure wraps the ApplicationFailure that carries the real message.
  while (e instanceof Error && (e as { cause?: unknown }).cause) e = (e as { cause?: unknown }).cause;
  if (e instanceof ApplicationFailure || e instanceof Error) return e.message;
  return String(e);
}
