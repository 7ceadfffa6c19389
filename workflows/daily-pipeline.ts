import {
  ApplicationFailure,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/workflow';
import { causes, failureHeadline, step } from './failures';
import type { Activities, ChunkPlan, GateResult, RunSummary, StepMetrics, WavePlan } from '../activities';
import { CSV_BRONZE_TABLES, GOLD_MARTS, SILVER_BESIDE_EVENTS, SILVER_MODELS, waves } from '../lake/tables';
import type { ModelSpec } from '../lake/tables';
import { mergeChunkMetrics } from '../lake/step-metrics';
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

/**
 * Transforms: long, heartbeating, retried with backoff a bounded number of times. Ten attempts at 2 s → 1 min span
 * about five minutes, so storage (S3, the catalog) down for a while is waited out (SPEC §12); five attempts spanned
 * 30 s and a 30 s MinIO outage failed the run (tests/stack/outage.test.ts).
 */
const transformOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 10,
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
 * The quality report: the activity never fails (it returns its error), so retries only cover a lost worker; two
 * attempts, then the run goes on without a report rather than waiting.
 */
const reporting = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { initialInterval: '1s', maximumAttempts: 2 },
});

/**
 * Serving load: Cassandra may be down for a while, so more attempts with a longer ceiling; a missing Cassandra config,
 * a refused statement or a reconciliation mismatch fail at once (non-retryable). Keepalive heartbeats. `cpa serving
 * load` (workflows/serving-load.ts) uses the same profile.
 */
export const servingActivityOptions: ActivityOptions = {
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
};
const serving = proxyActivities<Activities>(servingActivityOptions);

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
  const notes: string[] = [];
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

  /**
   * Runs the waves (lake/tables.ts `waves`) of a layer's `models` (all of them, or a part whose other inputs of the
   * layer are built already). One planning step plans them all; a later wave is planned
   * again only when an earlier wave of this run changed a partition (its inputs moved), so a run with nothing new
   * plans each layer once.
   */
  async function layer(
    name: 'silver' | 'gold',
    build: (table: string, plan: WavePlan, chunk?: ChunkPlan) => Promise<StepMetrics>,
    models: ModelSpec[] = name === 'silver' ? SILVER_MODELS : GOLD_MARTS,
  ): Promise<StepMetrics[]> {
    const out: StepMetrics[] = [];
    const all = waves(models);
    let plan: WavePlan | undefined;
    let changed = false;
    for (const [i, wave] of all.entries()) {
      if (!plan || changed) {
        const tables = all.slice(i).flatMap((w) => w.map((m) => m.table));
        plan = await step(quick.planWave, `plan ${name}: ${tables.join(', ')}`, [
          { ...target, layer: name, tables, force: input.force },
        ]);
      }
      const mine = new Set(wave.map((m) => m.table));
      const built = await Promise.all(plan.run.filter((t) => mine.has(t)).map((t) => inChunks(t, plan!, build)));
      changed ||= built.some((m) => m.partitionsChanged > 0);
      out.push(...ordered(wave, [...built, ...plan.skipped.filter((m) => mine.has(m.table))]));
    }
    return out;
  }
  try {
    const force = input.force;
    const buildSilver = (table: string, plan: WavePlan, chunk?: ChunkPlan): Promise<StepMetrics> =>
      step(transform.buildSilver, stepSummary('silver', table, plan.scope, chunk), [
        { ...target, table, force, ...(chunk ? { units: chunk.units } : {}) },
      ]);
    // Every step is named in the UI's timeline by what it does to which table (SPEC §13).
    const csv = Promise.all(
      CSV_BRONZE_TABLES.map((table) => step(transform.ingestCsvSource, `bronze.${table}`, [{ ...target, table }])),
    );
    const events = step(eventsWriter(info.taskQueue).ingestEventFiles, 'bronze.usage_events (new files)', [
      { ...target },
    ]);
    // The silver models that read no events run as soon as the CSV snapshots are in bronze, beside bronze events.
    const beside = patched('silver-beside-bronze-events');
    const early = beside ? csv.then(() => layer('silver', buildSilver, SILVER_BESIDE_EVENTS)) : Promise.resolve([]);
    const [csvSteps, eventSteps, earlySilver] = await Promise.all([csv, events, early]);
    steps.push(...csvSteps, eventSteps);
    if (input.runDate) {
      // A date with no usage events (a feed that delivered nothing, a schedule ahead of its data) says so.
      const data = await step(quick.dateData, `data for ${input.runDate}`, [{ lake: input.lake, date: input.runDate }]);
      if (data.usageEvents === 0) {
        notes.push(`no usage events landed for ${input.runDate}: its partitions stay empty`);
        upsertMemo({ notes });
      }
    }

    // Each layer is planned first (SPEC §9a): only models with stale partitions run an activity.
    const rest = beside ? SILVER_MODELS.filter((m) => !SILVER_BESIDE_EVENTS.includes(m)) : SILVER_MODELS;
    const silver = [...earlySilver, ...(await layer('silver', buildSilver, rest))];
    steps.push(...silver);
    showDetails({ ...base, status: 'running', finishedAt: '', steps });

    gate = await step(quick.qualityGate, 'quality gate (silver → gold)', [{ ...target, silver }]);

    steps.push(
      ...(await layer('gold', (mart, plan, chunk) =>
        step(transform.buildGold, stepSummary('gold', mart, plan.scope, chunk), [
          { ...target, mart, force, ...(chunk ? { units: chunk.units } : {}) },
        ]),
      )),
    );

    // Serving reloads exactly the partitions gold rewrote (changedPartitions), then reconciles with gold.
    if (input.serve) {
      steps.push(
        await step(serving.loadServing, 'serving: changed gold partitions → Cassandra', [
          { ...target, gold: steps.filter((s) => s.layer === 'gold') },
        ]),
      );
    }
  } catch (err) {
    const failed: RunSummary = {
      ...base,
      status: 'failed',
      finishedAt: new Date().toISOString(),
      steps,
      gate: gate ?? failedGate(err),
      error: failureMessage(err),
      ...(notes.length > 0 ? { notes } : {}),
    };
    const summary = await withReport(failed);
    await step(quick.recordRun, 'run record (failed)', [summary]);
    if (input.serve) await recordServingRun(summary);
    upsertMemo({ status: 'failed' });
    showDetails(summary);
    throw err;
  }
  const done = await withReport({
    ...base,
    status: 'succeeded',
    finishedAt: new Date().toISOString(),
    steps,
    gate,
    ...(notes.length > 0 ? { notes } : {}),
  });
  // The record as stored names the lake snapshots the run committed.
  const summary = (await step(quick.recordRun, 'run record', [done])) ?? done;
  if (input.serve) await recordServingRun(summary);
  upsertMemo({ status: 'succeeded' });
  showDetails(summary);
  return summary;
}

/**
 * Writes the run's HTML quality report (SPEC §13) before the run record, so the record points at it. A report that
 * cannot be written never fails the run: the reason is recorded in the summary instead.
 */
async function withReport(summary: RunSummary): Promise<RunSummary> {
  // A run started by a worker without this step replays without it (no non-determinism on upgrade).
  if (!patched('quality-report')) return summary;
  try {
    const res = await reporting.writeQualityReport.executeWithOptions(
      { summary: `quality report → _meta/reports/${summary.runId}.html` },
      [summary],
    );
    return { ...summary, report: res?.error ? { error: res.error } : { uri: res?.uri } };
  } catch (err) {
    log.warn('quality report not written', { error: failureMessage(err) });
    return { ...summary, report: { error: `quality report not written: ${failureMessage(err)}` } };
  }
}

/** The checks of a gate that failed the run: they travel in the failure's details (activities/quality.ts). */
function failedGate(err: unknown): GateResult | undefined {
  // The gate's own failure is inside the step failure (workflows/failures.ts) and the activity failure.
  for (const cur of causes(err)) {
    if (!(cur instanceof ApplicationFailure) || cur.type !== 'QualityGateFailed') continue;
    const details = cur.details?.[0] as { checks?: GateResult['checks'] } | undefined;
    if (Array.isArray(details?.checks)) return { passed: false, checks: details.checks };
  }
  return undefined;
}

/** `silver.billing` or `gold.cost_anomaly_mart 2025-08-01..2025-08-31 (31)`: the table and what the step computes. */
function stepSummary(layer: string, table: string, scope?: Record<string, string>, chunk?: ChunkPlan): string {
  const units = chunk?.scope ?? scope?.[table];
  return units && units !== 'all' ? `${layer}.${table} ${units}` : `${layer}.${table}`;
}

/**
 * Builds a table: one activity, or, when its plan is several chunks (a big silver build), one activity per chunk in
 * ascending order — each committed before the next starts (a later chunk reads the earlier days' published rows as
 * its baseline) and taken by whichever worker polls first — with the figures merged into the table's one step.
 */
async function inChunks(
  table: string,
  plan: WavePlan,
  build: (table: string, plan: WavePlan, chunk?: ChunkPlan) => Promise<StepMetrics>,
): Promise<StepMetrics> {
  const chunks = plan.chunks?.[table];
  // A run started by a worker that built a chunked table in one activity replays that way.
  if (!chunks || chunks.length < 2 || !patched('chunk-activities')) return build(table, plan);
  const parts: StepMetrics[] = [];
  for (const chunk of chunks) parts.push(await build(table, plan, chunk));
  return mergeChunkMetrics(parts);
}

/** A run summary, or the run so far (status `running`). */
type RunView = Omit<RunSummary, 'status'> & { status: string };

/** Sets the run's details; a defect in rendering them must never fail the workflow task (the run would hang). */
function showDetails(summary: RunView): void {
  try {
    setCurrentDetails(runDetails(summary));
  } catch (err) {
    log.warn('run details not rendered', { error: failureMessage(err) });
  }
}

/** The run's details in the UI (markdown): a table of steps, the gate checks, the failure if any. */
export function runDetails(summary: RunView): string {
  const cell = (v: unknown) => String(v).replace(/\|/g, '\\|');
  const lines = [
    `**${summary.status}** — ${summary.kind} run, logical date ${summary.logicalDate ?? 'all'}, lake \`${summary.lake}\``,
  ];
  if (summary.error) lines.push('', `Failure: ${cell(summary.error)}`);
  for (const n of summary.notes ?? []) lines.push('', `Note: ${cell(n)}`);
  lines.push(
    '',
    '| step | rows in | rows out | quarantined | partitions recomputed / changed | s |',
    '|---|---:|---:|---|---:|---:|',
  );
  for (const s of summary.steps) {
    const q = Object.entries(s.quarantined)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => `${r} ${n}`)
      .join(', ');
    lines.push(
      `| ${cell(s.step)} | ${s.rowsIn} | ${s.rowsOut} | ${cell(q || '0')} | ${s.partitionsRecomputed} / ${s.partitionsChanged} | ${(s.durationMs / 1000).toFixed(1)} |`,
    );
  }
  if (summary.gate && Array.isArray(summary.gate.checks)) {
    lines.push('', `Quality gate: **${summary.gate.passed ? 'passed' : 'failed'}**`);
    for (const c of summary.gate.checks) {
      lines.push(`- ${cell(c.table)} ${cell(c.check)}: ${c.value} (limit ${c.limit}) ${c.passed ? 'ok' : 'FAILED'}`);
    }
  }
  if (summary.report?.uri)
    lines.push('', `Quality report: \`${summary.report.uri}\` (\`cpa report --run ${summary.runId}\`)`);
  else if (summary.report?.error) lines.push('', `Quality report: ${cell(summary.report.error)}`);
  else lines.push('', 'Quality report: `cpa report --run ' + summary.runId + '`');
  return lines.join('\n');
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

/** The run's one-line reason: `<step>: <root cause>` (workflows/failures.ts). */
function failureMessage(err: unknown): string {
  return failureHeadline(err);
}
