import { ApplicationFailure, log, proxyActivities, upsertMemo, workflowInfo } from '@temporalio/workflow';
import type { Activities, GateResult, RunSummary, StepMetrics } from '../activities';
import { CSV_BRONZE_TABLES, GOLD_MARTS, SILVER_MODELS, waves } from '../lake/tables';
import { withLakeLease } from './lake-lease';
import { makeFindable, resolveRun, RunStatuses } from './run-context';
import { eventsTaskQueue } from './task-queues';
import { HEARTBEAT_TIMEOUT } from './timeouts';

/** Input of {@link dailyPipeline}. `lake`/`landing` are URIs (local path or s3://); runDate is the logical date. */
export interface DailyPipelineInput {
  runDate?: string | null;
  lake: string;
  landing: string;
  kind?: 'manual' | 'scheduled' | 'backfill';
  /** The schedule's IANA time zone: without runDate, a scheduled run processes the local day before its start. */
  timeZone?: string;
  /** Load the serving layer (Cassandra) after gold; the CLI sets it when CPA_CASSANDRA_CONTACT_POINTS is configured. */
  serve?: boolean;
  /**
   * Recompute the silver and gold partitions of these dates whether stale or not (a backfill, SPEC §9a); what
   * depends on them follows when their content changed.
   */
  force?: { from: string; to: string };
}

// Non-retryable types: contract violations, failed gates and SQL defects fail the run at once with their message.
const nonRetryableErrorTypes = ['ContractViolation', 'QualityGateFailed', 'SqlError'];

/** Transforms: long, heartbeating, retried with backoff a bounded number of times. */
const transformOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 5,
    nonRetryableErrorTypes,
  },
} as const;
const transform = proxyActivities<Activities>(transformOptions);

/**
 * Bronze events writes go to the single-writer events queue (task-queues.ts) so they never overlap with streaming
 * ingestion (ingestEventFile); same timeouts and retries as the transforms.
 */
function eventsWriter(taskQueue: string) {
  return proxyActivities<Activities>({ ...transformOptions, taskQueue: eventsTaskQueue(taskQueue) });
}

/** Bookkeeping: quick, retried more often; heartbeats too, so a killed worker's plan or record is retried at once. */
const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    maximumAttempts: 8,
    nonRetryableErrorTypes,
  },
});

/**
 * Serving load: Cassandra may be down for a while, so more attempts with a longer ceiling; a missing Cassandra config,
 * a refused statement or a reconciliation mismatch fail at once (non-retryable). Keepalive heartbeats.
 */
const serving = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 10,
    nonRetryableErrorTypes: [
      ...nonRetryableErrorTypes,
      'ServingNotConfigured',
      'CassandraRejected',
      'ReconciliationFailed',
    ],
  },
});

/**
 * Entry point: resolves the logical date (explicit runDate; for a scheduled run the day before the scheduled start's
 * local date, see run-context.ts), makes the run findable (CpaLogicalDate / CpaRunKind / CpaStatus + memo), and runs
 * the pipeline holding the lake lease, so concurrent runs on one lake (schedule, backfill, manual) take turns.
 */
export async function dailyPipeline(input: DailyPipelineInput): Promise<RunSummary> {
  const run = resolveRun(input);
  const mark = await makeFindable({
    logicalDate: run.logicalDate ?? 'all',
    kind: run.kind,
    memo: { lake: input.lake, ...(run.scheduledAt ? { scheduledAt: run.scheduledAt.toISOString() } : {}) },
  });
  try {
    const resolved = { ...input, runDate: run.logicalDate, kind: run.kind };
    const summary = await withLakeLease(input.lake, () => pipeline(resolved), input.landing);
    mark(RunStatuses.succeeded);
    return summary;
  } catch (err) {
    mark(RunStatuses.failed, { error: failureMessage(err) });
    throw err;
  }
}

/**
 * The batch layer, SPEC §9: bronze (CSV snapshots ∥ pending events files) → silver (waves from the table
 * registry) → quality gate → gold marts in parallel → run record. Every step returns its metrics, which end up in
 * the returned summary and in the UI history. Idempotent: re-running over the same landing files rewrites nothing,
 * because every output is a pure function of bronze and only changed partitions are published.
 */
async function pipeline(input: DailyPipelineInput): Promise<RunSummary> {
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
      eventsWriter(info.taskQueue).ingestEventFiles({ ...target }),
    ]);
    steps.push(...bronze);

    // Each wave is planned first (SPEC §9a): only models with stale partitions run an activity.
    const force = input.force;
    const silver: StepMetrics[] = [];
    for (const wave of waves(SILVER_MODELS)) {
      const plan = await quick.planWave({ ...target, layer: 'silver', tables: wave.map((m) => m.table), force });
      const built = await Promise.all(plan.run.map((table) => transform.buildSilver({ ...target, table, force })));
      silver.push(...ordered(wave, [...built, ...plan.skipped]));
    }
    steps.push(...silver);

    gate = await quick.qualityGate({ ...target, silver });

    for (const wave of waves(GOLD_MARTS)) {
      const plan = await quick.planWave({ ...target, layer: 'gold', tables: wave.map((m) => m.table), force });
      const built = await Promise.all(plan.run.map((mart) => transform.buildGold({ ...target, mart, force })));
      steps.push(...ordered(wave, [...built, ...plan.skipped]));
    }

    // Serving reloads exactly the partitions gold rewrote (changedPartitions), then reconciles with gold.
    if (input.serve) {
      steps.push(await serving.loadServing({ ...target, gold: steps.filter((s) => s.layer === 'gold') }));
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
    if (input.serve) await recordServingRun(summary);
    upsertMemo({ status: 'failed' });
    throw err;
  }
  const done: RunSummary = { ...base, status: 'succeeded', finishedAt: new Date().toISOString(), steps, gate };
  // The record as stored names the lake snapshots the run committed.
  const summary = (await quick.recordRun(done)) ?? done;
  if (input.serve) await recordServingRun(summary);
  upsertMemo({ status: 'succeeded' });
  return summary;
}

/** Step metrics in the registry's order of the wave (built and skipped models interleaved). */
function ordered(wave: Array<{ table: string }>, steps: StepMetrics[]): StepMetrics[] {
  return wave.map((m) => steps.find((s) => s.table === m.table)).filter((s): s is StepMetrics => s !== undefined);
}

/** pipeline_runs mirrors the lake's run record; once its retries are spent it is skipped (the lake record is the truth). */
async function recordServingRun(summary: RunSummary): Promise<void> {
  try {
    await quick.recordServingRun(summary);
  } catch (err) {
    log.warn('run summary not written to pipeline_runs', { runId: summary.runId, error: failureMessage(err) });
  }
}

function failureMessage(err: unknown): string {
  let e: unknown = err;
  // ActivityFailure wraps the ApplicationFailure that carries the real message.
  while (e instanceof Error && (e as { cause?: unknown }).cause) e = (e as { cause?: unknown }).cause;
  if (e instanceof ApplicationFailure || e instanceof Error) return e.message;
  return String(e);
}
