import type { Command } from 'commander';
import Table from 'cli-table3';
import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../../config/env';
import type { CommandKit } from '../kit';
import { openSession } from '../run';
import { PipelineFailed } from '../kit';
import { followResult } from '../../worker/follow';
import { backfillWorkflowId, progressQuery } from '../../workflows/backfill';
import { BACKFILL_DEFAULTS } from '../../workflows/names';
import type { BackfillInput, BackfillProgress, BackfillReport, backfill } from '../../workflows/backfill';

/**
 * Starts (or attaches to) the `backfill` workflow for a range and follows it: the `progress` query is polled and
 * printed while it runs, then the report lists every date with its status. An unreachable server is retried up to
 * CPA_CLI_OUTAGE_SECONDS (worker/follow.ts), then OutcomeUnknown.
 */
export async function runBackfill(
  client: Client,
  config: Config,
  input: BackfillInput,
  onProgress?: (p: BackfillProgress) => void,
): Promise<BackfillReport> {
  const workflowId = backfillWorkflowId(input.from, input.to);
  const handle: WorkflowHandleWithFirstExecutionRunId<typeof backfill> = await client.workflow.start('backfill', {
    taskQueue: config.temporal.taskQueue,
    workflowId,
    args: [input],
    // A backfill of the same range already running is attached to; a finished one is started afresh.
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    memo: { from: input.from, to: input.to, kind: 'backfill' },
  });
  let stop = false;
  const poll = (async () => {
    let last = '';
    while (!stop && onProgress) {
      await new Promise((r) => setTimeout(r, 1000));
      if (stop) break;
      try {
        // Without a run id the query goes to the latest run, i.e. follows continue-as-new.
        // Bounded: during an outage the SDK would retry one query for ~20 s and hold up the exit.
        const p = await client.withDeadline(Date.now() + 2000, () =>
          client.workflow.getHandle(workflowId).query(progressQuery),
        );
        const key = `${p.done}|${p.running.join(',')}|${p.workflowRuns}`;
        if (key !== last) {
          last = key;
          onProgress(p);
        }
      } catch {
        /* progress is best effort (e.g. between two runs of a continue-as-new) */
      }
    }
  })();
  try {
    return await followResult<BackfillReport>(client, config, workflowId, handle.firstExecutionRunId);
  } catch (e) {
    // A backfill with failed dates ends FAILED; its report is the failure's details.
    const report = backfillReportOf(e);
    if (report) return report;
    throw e;
  } finally {
    stop = true;
    await poll;
  }
}

/** The report a failed backfill carries (ApplicationFailure 'BackfillFailed', details[0]), if `e` is one. */
export function backfillReportOf(e: unknown): BackfillReport | undefined {
  let cur: unknown = e;
  while (cur instanceof Error) {
    if (cur instanceof ApplicationFailure && cur.type === 'BackfillFailed') {
      return cur.details?.[0] as BackfillReport | undefined;
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export function reportTable(report: BackfillReport): string {
  const t = new Table({
    style: { head: [], border: [] },
    head: ['date', 'status', 'workflow id', 'seconds', 'recomputed', 'changed', 'reason'],
  });
  for (const r of report.results) {
    t.push([
      r.date,
      r.status,
      r.workflowId,
      (r.durationMs / 1000).toFixed(2),
      r.recomputed ?? '',
      r.changed ?? '',
      (r.reason ?? '').length > 70 ? `${(r.reason ?? '').slice(0, 69)}…` : (r.reason ?? ''),
    ]);
  }
  return t.toString();
}

/** `cpa backfill --from --to [--parallel n]`. */
export function register(program: Command, kit: CommandKit): void {
  program
    .command('backfill')
    .description('run dailyPipeline for every date of a range (child workflows, bounded parallelism, continue-as-new)')
    .requiredOption('--from <YYYY-MM-DD>', 'first logical date', kit.isoDate)
    .requiredOption('--to <YYYY-MM-DD>', 'last logical date (included)', kit.isoDate)
    .option(
      '--parallel <n>',
      `child runs in flight (1..${BACKFILL_DEFAULTS.maxParallel}); on one lake the lake lease serialises their writes`,
      kit.integer,
      BACKFILL_DEFAULTS.parallel,
    )
    .option(
      '--batch-size <n>',
      'dates per workflow run before continue-as-new',
      kit.integer,
      BACKFILL_DEFAULTS.batchSize,
    )
    .option('--landing <dir>', 'landing root (path or s3://bucket/prefix)')
    .option('--lake <dir>', 'lake root (path or s3://bucket/prefix)')
    .option('--with-worker', 'also run an in-process worker when TEMPORAL_ADDRESS is set')
    .option('--json', 'print the report as JSON')
    .action(
      async (opts: {
        from: string;
        to: string;
        parallel: number;
        batchSize: number;
        landing?: string;
        lake?: string;
        withWorker?: boolean;
        json?: boolean;
      }) => {
        if (opts.to < opts.from) throw new PipelineFailed(`--to ${opts.to} is before --from ${opts.from}`);
        if (opts.parallel < 1 || opts.parallel > BACKFILL_DEFAULTS.maxParallel) {
          throw new PipelineFailed(`--parallel must be 1..${BACKFILL_DEFAULTS.maxParallel}`);
        }
        if (opts.batchSize < 1) throw new PipelineFailed('--batch-size must be at least 1');
        const cfg = kit.config({ CPA_LAKE_ROOT: opts.lake as never, CPA_LANDING_ROOT: opts.landing as never });
        await kit.checkStorage(cfg, { landing: true, write: true, sources: true });
        const session = await openSession(cfg, { withWorker: opts.withWorker });
        const started = Date.now();
        try {
          const report = await runBackfill(
            session.client,
            cfg,
            {
              from: opts.from,
              to: opts.to,
              lake: cfg.lakeRoot,
              landing: cfg.landingRoot,
              parallel: opts.parallel,
              batchSize: opts.batchSize,
              serve: Boolean(cfg.cassandra),
            },
            opts.json
              ? undefined
              : (p) => {
                  const secs = ((Date.now() - started) / 1000).toFixed(1);
                  process.stderr.write(
                    `[${secs}s] backfill ${p.from}..${p.to}: ${p.done}/${p.total} done (${p.succeeded} succeeded, ${p.failed} failed)` +
                      `${p.running.length ? `; running ${p.running.join(', ')}` : ''}; workflow run ${p.workflowRuns}\n`,
                  );
                },
          );
          if (opts.json) console.log(JSON.stringify(report, null, 2));
          else {
            console.log(reportTable(report));
            const secs = ((Date.parse(report.finishedAt) - Date.parse(report.startedAt)) / 1000).toFixed(2);
            console.log(
              `${backfillWorkflowId(report.from, report.to)}: ${report.succeeded}/${report.total} succeeded, ${report.failed} failed ` +
                `in ${secs}s over ${report.workflowRuns} workflow run(s); lake ${cfg.lakeRoot}`,
            );
          }
          if (report.failed > 0) {
            const failed = report.results.filter((r) => r.status === 'failed');
            throw new PipelineFailed(
              `backfill ${report.from}..${report.to}: ${failed.length} of ${report.total} dates failed: ` +
                failed.map((r) => `${r.date} (${(r.reason ?? '').split('\n')[0]})`).join('; '),
            );
          }
        } finally {
          await session.close();
        }
      },
    );
}
