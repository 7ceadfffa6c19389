import fs from 'node:fs';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { loadConfig } from '../../config/env';
import { createActivities } from '../../activities';
import type { RunSummary } from '../../activities';
import { createDuckDb } from '../../lake/duckdb';
import { registryTableNames } from '../../activities/models';
import { runRecords, withLakeSql } from '../support/lake-sql';
import { dailyPipeline } from '../../workflows';
import { rootMessage } from '../../workflows/failures';
import { REFERENCE_LANDING, tmpDir } from '../support/env';
import { sharedTestEnv, uniqueName } from '../support/temporal';
import { withWorkerPair } from '../support/workers';

/**
 * dailyPipeline on a real Temporal dev server (the local `temporal` binary, never a download) with the real
 * activities, plus injected faults: a transient one that a retry absorbs, and a contract violation that must fail
 * the run at once with a message naming file, line and column.
 */
describe('dailyPipeline workflow', () => {
  let env: TestWorkflowEnvironment;
  // The jest run's shared dev server: this file's own task queue, and its workflow ids under the same name.
  const taskQueue = uniqueName('test-daily-pipeline');
  const id = (name: string): string => `${taskQueue}/${name}`;
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused' });

  beforeAll(async () => {
    env = await sharedTestEnv();
  });

  afterAll(async () => {
    await env?.teardown();
  });

  const withWorker = <T>(activities: object, fn: () => Promise<T>): Promise<T> =>
    withWorkerPair(env.nativeConnection, taskQueue, activities, fn);

  function copyReference(dir: string): void {
    fs.cpSync(REFERENCE_LANDING, dir, { recursive: true });
  }

  it('runs landing → bronze → silver → gate → gold and returns every step’s metrics', async () => {
    const lake = tmpDir('wf-lake');
    const db = await createDuckDb(config);
    const activities = createActivities({ config, db });
    const { summary, meta } = await withWorker(activities, async () => {
      const s = await env.client.workflow.execute(dailyPipeline, {
        taskQueue,
        workflowId: id('daily-pipeline/2025-08-31'),
        args: [{ runDate: '2025-08-31', lake, landing: REFERENCE_LANDING }],
      });
      // The UI's "current details" (answered by a worker while one polls).
      const m = await env.client.workflow
        .getHandle(id('daily-pipeline/2025-08-31'))
        .query<{ currentDetails: string }>('__temporal_workflow_metadata');
      return { summary: s, meta: m };
    });
    expect(summary.status).toBe('succeeded');
    expect(summary.logicalDate).toBe('2025-08-31');
    const steps = Object.fromEntries(summary.steps.map((s) => [s.step, s]));
    // 8 bronze, 8 silver, 6 gold marts of SPEC §6 and 4 of §6b
    expect(Object.keys(steps)).toHaveLength(8 + 8 + 6 + 4);
    expect(steps['bronze.usage_events'].rowsOut).toBe(43200);
    expect(steps['silver.usage_events'].quarantined).toEqual({ negative_cost: 211 });
    expect(steps['gold.org_daily_usage_by_service'].rowsOut).toBe(11050);
    expect(steps['gold.customer_360'].rowsOut).toBe(80);
    expect(summary.gate?.passed).toBe(true);
    // The run record is persisted for `cpa status`.
    const records = await runRecords(lake);
    expect(records.map((r) => r.runId)).toEqual([summary.runId]);
    // It names the lake snapshots the run committed, for time travel.
    expect(records[0].snapshots).toMatchObject({ first: expect.any(Number), last: expect.any(Number) });
    // The run created its tables ahead in one catalog commit (8 bronze, 8 quarantine, 8 silver, 10 gold: one schema
    // version instead of one or two per table, each of which made every connection reload the catalog); the 7 meta
    // tables come in one commit at attach. No publish created, altered or dropped a table after that.
    const ddl = (
      await withLakeSql(lake, (q) =>
        q(
          `select snapshot_id, coalesce(len(changes['tables_created']), 0) as created
           from lake.snapshots()
           where changes['tables_created'] is not null or changes['tables_altered'] is not null
              or changes['tables_dropped'] is not null
           order by snapshot_id`,
        ),
      )
    ).map((r) => ({ snapshot: Number(r.snapshot_id), created: Number(r.created) }));
    expect(ddl.map((r) => r.created)).toEqual([7, 8 + 8 + 8 + 10]);
    // The names the registry checks before its dry run are the tables it creates.
    const made = await withLakeSql(lake, (q) =>
      q(
        `select schema_name || '.' || table_name as t from duckdb_tables() where database_name = 'lake' and schema_name <> 'meta'`,
      ),
    );
    expect(made.map((r) => String(r.t)).sort()).toEqual(registryTableNames().sort());

    // SPEC §13: every step is named in the UI by its table (and partitions), and the run's details are a table.
    const handle = env.client.workflow.getHandle(id('daily-pipeline/2025-08-31'));
    const history = await handle.fetchHistory();
    const summaries = (history.events ?? [])
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => String(e.userMetadata?.summary?.data ? Buffer.from(e.userMetadata.summary.data).toString() : ''));
    expect(summaries.every((x) => x.length > 0)).toBe(true);
    expect(summaries).toEqual(
      expect.arrayContaining(['"lake lease: acquire"', '"bronze.billing"', '"quality gate (silver → gold)"']),
    );
    expect(summaries.some((x) => /^"silver\.usage_events 2025-07-03\.\.\d{4}-\d{2}-\d{2} \(\d+\)"$/.test(x))).toBe(
      true,
    );
    expect(summaries.some((x) => x.startsWith('"gold.cost_anomaly_mart'))).toBe(true);
    expect(meta.currentDetails).toContain('**succeeded**');
    expect(meta.currentDetails).toContain('| silver.usage_events | 43200 |');
    expect(meta.currentDetails).toContain('negative_cost 211');
    expect(meta.currentDetails).toContain('Quality gate: **passed**');
    expect(summary.notes).toBeUndefined();
    expect(summaries).toContain('"data for 2025-08-31"');

    // A date the landing has no events for: the run succeeds and says so (summary, details, memo).
    const empty = await withWorker(activities, async () => {
      const s = await env.client.workflow.execute(dailyPipeline, {
        taskQueue,
        workflowId: id('daily-pipeline/2030-01-01'),
        args: [{ runDate: '2030-01-01', lake, landing: REFERENCE_LANDING }],
      });
      const h = env.client.workflow.getHandle(id('daily-pipeline/2030-01-01'));
      const m = await h.query<{ currentDetails: string }>('__temporal_workflow_metadata');
      return { summary: s, details: m.currentDetails, memo: (await h.describe()).memo };
    });
    expect(empty.summary.status).toBe('succeeded');
    expect(empty.summary.notes).toEqual(['no usage events landed for 2030-01-01: its partitions stay empty']);
    expect(empty.details).toContain('Note: no usage events landed for 2030-01-01');
    expect(empty.memo).toMatchObject({ notes: empty.summary.notes });
    db.closeSync();
  });

  it('retries a transient activity failure and then succeeds', async () => {
    const lake = tmpDir('wf-retry');
    const db = await createDuckDb(config);
    const real = createActivities({ config, db });
    let orgAttempts = 0;
    const activities = {
      ...real,
      ingestCsvSource: async (input: Parameters<typeof real.ingestCsvSource>[0]) => {
        if (input.table === 'orgs' && ++orgAttempts === 1) throw new Error('ECONNRESET: storage briefly unavailable');
        return real.ingestCsvSource(input);
      },
    };
    const summary: RunSummary = await withWorker(activities, () =>
      env.client.workflow.execute(dailyPipeline, {
        taskQueue,
        workflowId: id('daily-pipeline/retry-test'),
        args: [{ runDate: null, lake, landing: REFERENCE_LANDING }],
      }),
    );
    expect(orgAttempts).toBe(2);
    expect(summary.status).toBe('succeeded');
    expect(summary.steps.find((s) => s.step === 'bronze.orgs')?.rowsOut).toBe(80);
    db.closeSync();
  });

  it('fails the run, without retrying, on a CSV that breaks its contract, naming file, line and column', async () => {
    const landing = tmpDir('wf-bad-landing');
    const lake = tmpDir('wf-bad-lake');
    copyReference(landing);
    const billing = path.join(landing, 'billing_monthly.csv');
    const lines = fs.readFileSync(billing, 'utf8').split('\n');
    lines[5] = lines[5].replace(/^([^,]*,[^,]*,[^,]*),[^,]*/, '$1,not-a-number');
    fs.writeFileSync(billing, lines.join('\n'));
    const db = await createDuckDb(config);
    const real = createActivities({ config, db });
    let billingAttempts = 0;
    const activities = {
      ...real,
      ingestCsvSource: async (input: Parameters<typeof real.ingestCsvSource>[0]) => {
        if (input.table === 'billing') billingAttempts++;
        return real.ingestCsvSource(input);
      },
    };
    const err = await withWorker(activities, () =>
      env.client.workflow
        .execute(dailyPipeline, {
          taskQueue,
          workflowId: id('daily-pipeline/bad-input'),
          args: [{ runDate: null, lake, landing }],
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        ),
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    // The run's headline (what the Web UI shows first) names the step and the root cause; its type is the root's.
    const headline = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(headline).toBeInstanceOf(ApplicationFailure);
    expect(headline.message).toMatch(
      /^bronze\.billing: billing_monthly\.csv line 6 column 4 \(subtotal\): .*not-a-number/,
    );
    expect(headline.type).toBe('ContractViolation');
    expect(rootMessage(err)).toBe(headline.message);
    // The activity's failure is kept as the cause.
    const activityFailure = headline.cause;
    expect(activityFailure).toBeInstanceOf(ActivityFailure);
    const app = (activityFailure as ActivityFailure).cause as ApplicationFailure;
    expect(app.type).toBe('ContractViolation');
    expect(app.nonRetryable).toBe(true);
    expect(app.message).toMatch(/^billing_monthly\.csv line 6 column 4 \(subtotal\): .*not-a-number/);
    expect(billingAttempts).toBe(1);
    // Nothing of the rejected file was written (the table was created ahead, empty, with the run's other tables),
    // and the failed run is recorded with its reason.
    expect(await withLakeSql(lake, (q) => q(`select count(*)::integer as n from lake.bronze.billing`))).toEqual([
      { n: 0 },
    ]);
    const [record] = (await runRecords(lake)) as unknown as RunSummary[];
    expect(record.status).toBe('failed');
    expect(record.error).toMatch(/^bronze\.billing: billing_monthly\.csv line 6 column 4/);
    db.closeSync();
  });
});
