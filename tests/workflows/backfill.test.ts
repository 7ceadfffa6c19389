import fs from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { GOLD_COLUMNS } from '../../config/contracts';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import { createActivities } from '../../activities';
import type { RunSummary } from '../../activities';
import { emptyMetrics } from '../../activities/common';
import { goldDigest as digest } from '../support/lake-sql';
import { createDuckDb } from '../../lake/duckdb';
import { createWorker } from '../../worker/main';
import type { PipelineWorkers } from '../../worker/main';
import { backfillReportOf, runBackfill } from '../../cli/commands/backfill';
import { backfillWorkflowId, progressQuery } from '../../workflows/backfill';
import type { BackfillInput, BackfillProgress, BackfillReport } from '../../workflows/backfill';
import { CpaSearchAttributes } from '../../workflows/run-context';
import { REFERENCE_LANDING, temporalTestServer, tmpDir, quietTemporalCli } from '../support/env';
import { listUntil, searchAttributeKeys } from '../support/temporal';
import { withWorkerPair } from '../support/workers';

/** Per mart: row count and the sum of row hashes, through the catalog (as tests/e2e/reference.test.ts does). */
const goldDigest = (lake: string): Promise<Record<string, string>> => digest(lake, Object.keys(GOLD_COLUMNS));

const DATES = ['2025-08-01', '2025-08-02', '2025-08-03', '2025-08-04', '2025-08-05', '2025-08-06', '2025-08-07'];

/**
 * The backfill over the reference dataset on a real dev server (search attributes registered) with the real worker:
 * seven child runs, continue-as-new, progress while it runs, findability, and a re-run that leaves gold unchanged.
 */
describe('backfill over the reference dataset', () => {
  let env: TestWorkflowEnvironment;
  let config: Config;
  let db: Awaited<ReturnType<typeof createDuckDb>>;
  let worker: PipelineWorkers;
  let running: Promise<void>;
  const lake = tmpDir('backfill-lake');
  let first: BackfillReport;
  const seen: BackfillProgress[] = [];
  const input = (): BackfillInput => ({
    from: '2025-08-01',
    to: '2025-08-07',
    lake,
    landing: REFERENCE_LANDING,
    parallel: 2,
    batchSize: 3,
  });

  beforeAll(async () => {
    // A server of its own, not the jest run's shared one: the workflow names its children `daily-pipeline/<date>` and
    // itself `backfill/<range>` (no per-test prefix possible), and the assertions list runs by date server-wide.
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: quietTemporalCli() },
        extraArgs: ['--log-level', 'error'],
        searchAttributes: searchAttributeKeys,
      },
    });
    config = loadConfig({ CPA_LAKE_ROOT: lake, CPA_LANDING_ROOT: REFERENCE_LANDING });
    db = await createDuckDb(config);
    ({ worker } = await createWorker(config, env.nativeConnection, { db }));
    running = worker.run();
    first = await runBackfill(env.client, config, input(), (p) => seen.push(p));
  }, 300_000);

  afterAll(async () => {
    worker?.shutdown();
    await running;
    db?.closeSync();
    await env?.teardown();
  });

  it('runs the seven dates as child runs daily-pipeline/<date>, all succeeded, over several workflow runs', async () => {
    expect(first.results.map((r) => [r.date, r.status, r.workflowId])).toEqual(
      DATES.map((d) => [d, 'succeeded', `daily-pipeline/${d}`]),
    );
    expect(first).toMatchObject({ total: 7, done: 7, succeeded: 7, failed: 0, running: [] });
    // batchSize 3 → 3 + 3 + 1 dates: two continue-as-new.
    expect(first.workflowRuns).toBe(3);
    // Gold was written once (by whichever child got the lake lease first); the others recomputed the same bytes.
    expect(first.results.filter((r) => (r.partitionsWritten ?? 0) > 0)).toHaveLength(1);
    for (const d of DATES) {
      const summary = (await env.client.workflow.getHandle(`daily-pipeline/${d}`).result()) as RunSummary;
      expect(summary).toMatchObject({ status: 'succeeded', logicalDate: d, kind: 'backfill' });
    }
    expect(fs.existsSync(path.join(lake, '_meta', 'locks', 'lake.json'))).toBe(false);
  }, 300_000);

  it('showed its progress through the query while it ran', () => {
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.some((p) => p.done < p.total && p.running.length > 0)).toBe(true);
    expect(Math.max(...seen.map((p) => p.running.length))).toBeLessThanOrEqual(2);
    expect(seen.some((p) => p.workflowRuns > 1)).toBe(true);
    for (let i = 1; i < seen.length; i++) expect(seen[i].done).toBeGreaterThanOrEqual(seen[i - 1].done);
  });

  it('is findable in the UI by date, kind and status, and the backfill itself by its range', async () => {
    const children = await listUntil(
      env.client,
      `WorkflowType = "dailyPipeline" AND CpaRunKind = "backfill" AND CpaStatus = "succeeded"`,
      7,
    );
    expect(children.map((c) => c.workflowId).sort()).toEqual(DATES.map((d) => `daily-pipeline/${d}`));
    const one = await listUntil(env.client, `CpaLogicalDate = "2025-08-03"`, 1);
    expect(one.map((c) => c.workflowId)).toEqual(['daily-pipeline/2025-08-03']);
    const parent = await env.client.workflow.getHandle(backfillWorkflowId('2025-08-01', '2025-08-07')).describe();
    expect(parent.typedSearchAttributes.get(CpaSearchAttributes.logicalDate)).toBe('2025-08-01..2025-08-07');
    expect(parent.typedSearchAttributes.get(CpaSearchAttributes.status)).toBe('succeeded');
    const parents = await listUntil(
      env.client,
      `WorkflowType = "backfill" AND CpaLogicalDate = "2025-08-01..2025-08-07" AND ExecutionStatus = "Completed"`,
      1,
    );
    expect(parents.map((c) => c.workflowId)).toEqual(['backfill/2025-08-01..2025-08-07']);
    expect(parent.memo).toMatchObject({
      from: '2025-08-01',
      to: '2025-08-07',
      total: 7,
      done: 7,
      succeeded: 7,
      failed: 0,
    });
    // The final run's query still answers after completion.
    const p = await env.client.workflow.getHandle(backfillWorkflowId('2025-08-01', '2025-08-07')).query(progressQuery);
    expect(p.done).toBe(7);
  });

  it('re-running the backfill recomputes the dates (forced), changes nothing in gold, which equals a from-scratch run', async () => {
    const before = await goldDigest(lake);
    const again = await runBackfill(env.client, config, input());
    expect(again.results.map((r) => [r.date, r.status, r.partitionsWritten, r.changed])).toEqual(
      DATES.map((d) => [d, 'succeeded', 0, 0]),
    );
    // A forced backfill recomputes each date's silver and gold partitions (the date and the windows ending
    // at it) though nothing is stale, and reports it.
    for (const r of again.results) expect(r.recomputed).toBeGreaterThanOrEqual(5);
    expect(await goldDigest(lake)).toEqual(before);

    const scratch = tmpDir('backfill-scratch');
    await env.client.workflow.execute('dailyPipeline', {
      taskQueue: config.temporal.taskQueue,
      workflowId: 'daily-pipeline/all',
      args: [{ runDate: null, lake: scratch, landing: REFERENCE_LANDING }],
    });
    expect(await goldDigest(scratch)).toEqual(before);
  }, 300_000);
});

/**
 * Backfill semantics with fake pipeline steps on the time-skipping test server: continue-as-new with a small batch,
 * a failing child reported (not skipped), bounded parallelism, and the real lake lease keeping runs on one lake apart.
 */
describe('backfill semantics (time-skipping server, fake steps)', () => {
  let env: TestWorkflowEnvironment;
  const taskQueue = 'test-backfill';
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused' });

  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: temporalTestServer() } },
    });
  });

  afterAll(async () => {
    await env?.teardown();
  });

  /** Real lease activities (on a temp lake) and fake, instant pipeline steps that record who is writing when. */
  function fakeActivities(opts: { failDate?: string; stepMs?: number }) {
    const real = createActivities({ config, db: undefined as never });
    // In-flight steps per run: two keys at once would mean two runs writing the same lake.
    const writers = new Map<string, number>();
    let maxWriters = 0;
    const started: string[] = [];
    const step =
      (name: string) =>
      async (input?: { table?: string }): Promise<unknown> => {
        const wf = Context.current().info.workflowExecution!.workflowId;
        if (name === 'ingestCsvSource' && !started.includes(wf)) started.push(wf);
        const failing = name === 'ingestCsvSource' && input?.table === 'billing';
        if (opts.failDate && wf === `daily-pipeline/${opts.failDate}` && failing) {
          throw ApplicationFailure.nonRetryable(
            `billing_monthly.csv line 6 column 4 (subtotal): not-a-number`,
            'ContractViolation',
          );
        }
        writers.set(wf, (writers.get(wf) ?? 0) + 1);
        maxWriters = Math.max(maxWriters, writers.size);
        await new Promise((r) => setTimeout(r, opts.stepMs ?? 5));
        if (writers.get(wf) === 1) writers.delete(wf);
        else writers.set(wf, writers.get(wf)! - 1);
        return name === 'recordRun' ? undefined : emptyMetrics(`fake.${name}`, 'silver', name);
      };
    const fakes = Object.fromEntries(
      ['ingestCsvSource', 'ingestEventFiles', 'buildSilver', 'qualityGate', 'buildGold', 'recordRun'].map((n) => [
        n,
        step(n),
      ]),
    );
    // Every model of a wave runs (as if all were stale).
    const planWave = async (input: { tables: string[] }) => ({ run: input.tables, skipped: [] });
    // Every date has data (the real activity reads bronze, which these fake steps never write).
    const dateData = async () => ({ usageEvents: 1 });
    return { activities: { ...real, ...fakes, planWave, dateData }, maxWriters: () => maxWriters, started };
  }

  const run = <T>(activities: object, fn: () => Promise<T>): Promise<T> =>
    withWorkerPair(env.nativeConnection, taskQueue, activities, fn);

  it('continues as new after each small batch and reports a failing child with its reason, the others going on', async () => {
    const lake = tmpDir('bf-fake');
    const fake = fakeActivities({ failDate: '2025-08-03' });
    const failure = await run(fake.activities, () =>
      env.client.workflow
        .execute('backfill', {
          taskQueue,
          workflowId: 'backfill/2025-08-01..2025-08-05',
          args: [
            {
              from: '2025-08-01',
              to: '2025-08-05',
              lake,
              landing: '/nonexistent',
              parallel: 2,
              batchSize: 2,
            } satisfies BackfillInput,
          ],
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        ),
    );
    // A backfill with a failed date ends FAILED, naming the dates; the full report is the failure's details.
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(String((failure as WorkflowFailedError).cause?.message)).toBe(
      'backfill 2025-08-01..2025-08-05: 1 of 5 dates failed: 2025-08-03 (bronze.billing: billing_monthly.csv line 6 column 4 (subtotal): not-a-number)',
    );
    const report = backfillReportOf(failure)!;
    expect(report.workflowRuns).toBe(3);
    expect(report.results.map((r) => [r.date, r.status])).toEqual([
      ['2025-08-01', 'succeeded'],
      ['2025-08-02', 'succeeded'],
      ['2025-08-03', 'failed'],
      ['2025-08-04', 'succeeded'],
      ['2025-08-05', 'succeeded'],
    ]);
    // The reason names the step, then the root cause (SPEC §13).
    expect(report.results[2].reason).toBe(
      'bronze.billing: billing_monthly.csv line 6 column 4 (subtotal): not-a-number',
    );
    expect(report).toMatchObject({ total: 5, done: 5, succeeded: 4, failed: 1 });
    // Each run of the chain holds at most one batch of children: its history stays small.
    const handle = env.client.workflow.getHandle('backfill/2025-08-01..2025-08-05');
    const desc = await handle.describe();
    expect(desc.status.name).toBe('FAILED');
    expect(desc.historyLength).toBeLessThan(60);
    // The failed child run is there to inspect, failed with the same reason.
    await expect(env.client.workflow.getHandle('daily-pipeline/2025-08-03').result()).rejects.toThrow();
    expect(fs.existsSync(path.join(lake, '_meta', 'locks', 'lake.json'))).toBe(false);
  });

  it('keeps children on one lake apart with the lease: --parallel 3 never has two runs writing at once', async () => {
    const lake = tmpDir('bf-lease');
    const fake = fakeActivities({ stepMs: 30 });
    const report = await run(
      fake.activities,
      () =>
        env.client.workflow.execute('backfill', {
          taskQueue,
          workflowId: 'backfill/2025-09-01..2025-09-04',
          args: [
            {
              from: '2025-09-01',
              to: '2025-09-04',
              lake,
              landing: '/nonexistent',
              parallel: 3,
            } satisfies BackfillInput,
          ],
        }) as Promise<BackfillReport>,
    );
    expect(report.succeeded).toBe(4);
    expect(fake.maxWriters()).toBe(1);
    expect(fake.started).toHaveLength(4);
  });

  it('rejects a bad range with a clear, non-retryable reason', async () => {
    const err = await run(fakeActivities({}).activities, () =>
      env.client.workflow
        .execute('backfill', {
          taskQueue,
          workflowId: 'backfill/bad',
          args: [{ from: '2025-08-07', to: '2025-08-01', lake: '/tmp/x', landing: '/tmp/y' } satisfies BackfillInput],
        })
        .then(
          () => undefined,
          (e: unknown) => e as Error,
        ),
    );
    expect(String((err as { cause?: Error })?.cause?.message)).toContain('--to 2025-08-01 is before --from 2025-08-07');
  });
});
