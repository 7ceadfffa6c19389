import {
  ApplicationFailure,
  continueAsNew,
  defineQuery,
  executeChild,
  ParentClosePolicy,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { RunSummary } from '../activities';
import { dailyPipeline } from './daily-pipeline';
import { BACKFILL_DEFAULTS } from './names';
import { dateRange, daysInRange, isIsoDate } from './logical-date';
import { failureHeadline } from './failures';
import { makeFindable, RunKinds, RunStatuses } from './run-context';

/** Input of {@link backfill}. `carried` is internal: the progress a continued-as-new run starts from. */
export interface BackfillInput {
  from: string;
  to: string;
  lake: string;
  landing: string;
  /** Child runs in flight at once (default 1; on one lake the lake lease serialises their writes anyway). */
  parallel?: number;
  /** Dates handled per workflow run before continuing as new, so a long range never bloats one history (default 30). */
  batchSize?: number;
  /** Passed to every child: load the serving layer after gold (the CLI sets it when Cassandra is configured). */
  serve?: boolean;
  carried?: BackfillCarry;
}

export interface BackfillCarry {
  results: BackfillDateResult[];
  /** Index (into the date range) of the next date to start. */
  next: number;
  /** Workflow runs so far (1 = no continue-as-new yet). */
  runs: number;
  startedAt: string;
}

/** The outcome of one date: every date of the range gets exactly one. */
export interface BackfillDateResult {
  date: string;
  status: 'succeeded' | 'failed';
  workflowId: string;
  runId?: string;
  /** Why it failed: the root cause's message (e.g. the contract violation naming file, line and column). */
  reason?: string;
  durationMs: number;
  partitionsWritten?: number;
  /** Silver and gold partitions the date's run recomputed, and how many of them changed (SPEC §9a). */
  recomputed?: number;
  changed?: number;
}

export interface BackfillProgress {
  from: string;
  to: string;
  total: number;
  done: number;
  succeeded: number;
  failed: number;
  running: string[];
  /** Workflow runs so far (continue-as-new generations). */
  workflowRuns: number;
  results: BackfillDateResult[];
}

export interface BackfillReport extends BackfillProgress {
  startedAt: string;
  finishedAt: string;
}

/** The backfill's live progress: the CLI polls it, the Web UI's Queries tab shows it. */
export const progressQuery = defineQuery<BackfillProgress>('progress');

export { BACKFILL_DEFAULTS };

/** `backfill/2025-08-01..2025-08-07`: one backfill per range; re-running a finished one starts it afresh. */
export function backfillWorkflowId(from: string, to: string): string {
  return `backfill/${from}..${to}`;
}

function validate(input: BackfillInput): { parallel: number; batchSize: number } {
  const bad = (msg: string): ApplicationFailure =>
    ApplicationFailure.nonRetryable(`backfill: ${msg}`, 'InvalidArgument');
  if (!isIsoDate(input.from) || !isIsoDate(input.to))
    throw bad(`dates must be YYYY-MM-DD (got ${input.from}, ${input.to})`);
  if (input.to < input.from) throw bad(`--to ${input.to} is before --from ${input.from}`);
  const days = daysInRange(input.from, input.to);
  if (days > BACKFILL_DEFAULTS.maxDays)
    throw bad(`${days} days is more than ${BACKFILL_DEFAULTS.maxDays}; split the range`);
  const parallel = input.parallel ?? BACKFILL_DEFAULTS.parallel;
  const batchSize = input.batchSize ?? BACKFILL_DEFAULTS.batchSize;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > BACKFILL_DEFAULTS.maxParallel) {
    throw bad(`parallel must be 1..${BACKFILL_DEFAULTS.maxParallel}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) throw bad('batchSize must be a positive integer');
  return { parallel, batchSize };
}

/**
 * SPEC §9 backfill(from, to): dailyPipeline for every date of the range as child workflows `daily-pipeline/<date>`
 * (kind 'backfill'), at most `parallel` in flight. After `batchSize` dates (or when the server suggests it) the
 * workflow continues as new carrying the results, so a year-long range never bloats one history. A failed child is
 * recorded with its reason and the others go on; the result lists every date with its status — nothing is skipped.
 * Idempotent: each child recomputes from bronze and publishes only changed partitions, so re-running a backfill over
 * the same landing changes nothing in gold. Children are cancelled if the backfill is (they then release the lease).
 */
export async function backfill(input: BackfillInput): Promise<BackfillReport> {
  const { parallel, batchSize } = validate(input);
  const dates = dateRange(input.from, input.to);
  const carried: BackfillCarry = input.carried ?? {
    results: [],
    next: 0,
    runs: 1,
    startedAt: new Date().toISOString(),
  };
  const results = [...carried.results];
  const running = new Set<string>();
  const progress = (): BackfillProgress => ({
    from: input.from,
    to: input.to,
    total: dates.length,
    done: results.length,
    succeeded: results.filter((r) => r.status === 'succeeded').length,
    failed: results.filter((r) => r.status === 'failed').length,
    running: [...running].sort(),
    workflowRuns: carried.runs,
    results: [...results].sort((a, b) => (a.date < b.date ? -1 : 1)),
  });
  setHandler(progressQuery, progress);
  const mark = await makeFindable({
    logicalDate: `${input.from}..${input.to}`,
    kind: RunKinds.backfill,
    memo: { lake: input.lake, from: input.from, to: input.to, total: dates.length, parallel },
  });
  const memoProgress = (): void => {
    const p = progress();
    upsertMemo({ done: p.done, succeeded: p.succeeded, failed: p.failed, workflowRuns: p.workflowRuns });
  };

  const runDate = async (date: string): Promise<void> => {
    const workflowId = `daily-pipeline/${date}`;
    const started = Date.now();
    running.add(date);
    try {
      const summary: RunSummary = await executeChild(dailyPipeline, {
        workflowId,
        args: [
          {
            runDate: date,
            lake: input.lake,
            landing: input.landing,
            kind: RunKinds.backfill,
            serve: input.serve,
            force: { from: date, to: date },
          },
        ],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        staticSummary: `backfill run · ${date} · ${input.lake}`,
      });
      results.push({
        date,
        status: 'succeeded',
        workflowId,
        runId: summary.runId,
        durationMs: Date.now() - started,
        partitionsWritten: summary.steps.reduce((n, s) => n + s.partitionsWritten, 0),
        recomputed: modelSteps(summary).reduce((n, s) => n + (s.partitionsRecomputed ?? 0), 0),
        changed: modelSteps(summary).reduce((n, s) => n + (s.partitionsChanged ?? 0), 0),
      });
    } catch (err) {
      // A child that could not start (e.g. a manual run of that date is in progress) fails the date the same way.
      results.push({
        date,
        status: 'failed',
        workflowId,
        reason: failureHeadline(err),
        durationMs: Date.now() - started,
      });
    } finally {
      running.delete(date);
      memoProgress();
    }
  };

  // A bounded pool: `parallel` lanes take the next date until this run's batch is used up.
  const end = Math.min(dates.length, carried.next + batchSize);
  let next = carried.next;
  const lane = async (): Promise<void> => {
    while (next < end && !(next > carried.next && workflowInfo().continueAsNewSuggested)) await runDate(dates[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, end - next) }, lane));

  if (next < dates.length) {
    await continueAsNew<typeof backfill>({ ...input, carried: { ...carried, results, next, runs: carried.runs + 1 } });
  }
  const report: BackfillReport = { ...progress(), startedAt: carried.startedAt, finishedAt: new Date().toISOString() };
  if (report.failed > 0) {
    mark(RunStatuses.failed);
    // The backfill ends FAILED (in the UI too), naming the dates; the report rides along as the failure's details.
    const failed = report.results.filter((r) => r.status === 'failed');
    throw ApplicationFailure.nonRetryable(
      `backfill ${input.from}..${input.to}: ${failed.length} of ${report.total} dates failed: ` +
        failed.map((r) => `${r.date} (${r.reason ?? 'failed'})`).join('; '),
      'BackfillFailed',
      report,
    );
  }
  mark(RunStatuses.succeeded);
  return report;
}

function modelSteps(summary: RunSummary): RunSummary['steps'] {
  return summary.steps.filter((s) => s.layer === 'silver' || s.layer === 'gold');
}
