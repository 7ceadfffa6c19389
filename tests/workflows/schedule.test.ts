import fs from 'node:fs';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import type { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import type { RunSummary } from '../../activities';
import { createDuckDb } from '../../lake/duckdb';
import { createWorker } from '../../worker/main';
import type { PipelineWorkers } from '../../worker/main';
import {
  SCHEDULE_ID,
  applySchedule,
  describeSchedule,
  pauseSchedule,
  scheduledRunResult,
  triggerSchedule,
} from '../../worker/schedules';
import { localDate, scheduledLogicalDate } from '../../workflows/logical-date';
import { CpaSearchAttributes } from '../../workflows/run-context';
import { REFERENCE_LANDING, cpa, tmpDir, quietTemporalCli } from '../support/env';
import { listUntil, searchAttributeKeys } from '../support/temporal';

/**
 * The daily schedule on a real Temporal dev server (local `temporal` binary) with the custom search attributes
 * registered, and the real worker (createWorker) over the reference dataset.
 */
describe('daily-pipeline schedule', () => {
  let env: TestWorkflowEnvironment;
  let config: Config;
  let db: DuckDBInstance;
  let worker: PipelineWorkers;
  let running: Promise<void>;
  const lake = tmpDir('sched-lake');
  const target = (timeZone: string) => ({
    timeZone,
    lake,
    landing: REFERENCE_LANDING,
    taskQueue: config.temporal.taskQueue,
  });

  beforeAll(async () => {
    // A server of its own, not the jest run's shared one: the one schedule `daily-pipeline` (listed as the only one),
    // and the ids its runs get (`daily-pipeline/scheduled-<time>`) are fixed.
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
  });

  afterAll(async () => {
    worker?.shutdown();
    await running;
    db?.closeSync();
    await env?.teardown();
  });

  it('applies the spec and policies, and a second apply updates the one schedule in place (keeping pause)', async () => {
    expect(await applySchedule(env.client, target('Asia/Tokyo'))).toBe('created');
    const d = await env.client.schedule.getHandle(SCHEDULE_ID).describe();
    expect(d.spec.timezone).toBe('Asia/Tokyo');
    expect(d.spec.calendars).toHaveLength(1);
    expect(d.spec.calendars![0].hour).toEqual([{ start: 2, end: 2, step: 1 }]);
    expect(d.spec.calendars![0].minute).toEqual([{ start: 0, end: 0, step: 1 }]);
    expect(d.policies).toMatchObject({ overlap: 'BUFFER_ONE', catchupWindow: 86_400_000, pauseOnFailure: false });
    expect(d.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'dailyPipeline',
      workflowId: 'daily-pipeline/scheduled',
      taskQueue: config.temporal.taskQueue,
      args: [{ lake, landing: REFERENCE_LANDING, kind: 'scheduled', timeZone: 'Asia/Tokyo', serve: false }],
    });
    // Every next action is 02:00 on the schedule's wall clock (17:00 UTC the day before, for Tokyo).
    for (const t of d.info.nextActionTimes) expect(t.toISOString().slice(11)).toBe('17:00:00.000Z');

    await pauseSchedule(env.client, 'maintenance');
    expect(await applySchedule(env.client, target('Europe/Madrid'))).toBe('updated');
    const ids: string[] = [];
    for await (const s of env.client.schedule.list()) ids.push(s.scheduleId);
    expect(ids).toEqual([SCHEDULE_ID]);
    const view = await describeSchedule(env.client);
    expect(view.spec).toEqual({ calendars: ['every day at 02:00'], timeZone: 'Europe/Madrid' });
    expect(view.paused).toBe(true);
    expect(view.note).toBe('maintenance');
    expect(view.policies).toEqual({ overlap: 'BUFFER_ONE', catchupWindow: '1 day', pauseOnFailure: false });
    for (const r of view.nextRuns) {
      expect(r.localTime.slice(11)).toBe('02:00');
      expect(r.logicalDate).toBe(scheduledLogicalDate(new Date(r.scheduledAt), 'Europe/Madrid'));
    }

    // The CLI shows the same through `cpa schedule describe` against this server.
    const out = cpa(['schedule', 'describe', '--json'], { TEMPORAL_ADDRESS: env.connection.options.address as string });
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(out.stdout)).toMatchObject({
      scheduleId: SCHEDULE_ID,
      paused: true,
      policies: view.policies,
      spec: view.spec,
    });
  });

  it('a run the schedule starts at 02:00 Tokyo on 2025-08-02 processes logical date 2025-08-01', async () => {
    await applySchedule(env.client, target('Asia/Tokyo'));
    const handle = env.client.schedule.getHandle(SCHEDULE_ID);
    await handle.unpause();
    // A schedule backfill takes the action for a past scheduled time: 2025-08-01T17:00Z = 2025-08-02 02:00 JST.
    await handle.backfill({
      start: new Date('2025-08-01T16:59:00Z'),
      end: new Date('2025-08-01T17:01:00Z'),
      overlap: ScheduleOverlapPolicy.ALLOW_ALL,
    });
    const [found] = await listUntil(env.client, `WorkflowId = 'daily-pipeline/scheduled-2025-08-01T17:00:00Z'`, 1);
    expect(found).toBeDefined();
    const wf = env.client.workflow.getHandle(found.workflowId);
    const summary = (await wf.result()) as RunSummary;
    expect(summary).toMatchObject({ status: 'succeeded', logicalDate: '2025-08-01', kind: 'scheduled' });
    expect(summary.steps.find((s) => s.step === 'bronze.usage_events')?.rowsOut).toBe(43200);
    const d = await wf.describe();
    expect(d.typedSearchAttributes.get(CpaSearchAttributes.logicalDate)).toBe('2025-08-01');
    expect(d.typedSearchAttributes.get(CpaSearchAttributes.runKind)).toBe('scheduled');
    expect(d.typedSearchAttributes.get(CpaSearchAttributes.status)).toBe('succeeded');
    expect(d.memo).toMatchObject({
      logicalDate: '2025-08-01',
      kind: 'scheduled',
      status: 'succeeded',
      scheduledAt: '2025-08-01T17:00:00.000Z',
    });
    // What an operator types in the Web UI's filter finds it.
    const hits = await listUntil(
      env.client,
      `CpaLogicalDate = "2025-08-01" AND CpaRunKind = "scheduled" AND CpaStatus = "succeeded"`,
      1,
    );
    expect(hits.map((h) => h.workflowId)).toEqual([found.workflowId]);
    // The lease is released at the end.
    expect(fs.existsSync(path.join(lake, '_meta', 'locks', 'lake.json'))).toBe(false);
  });

  it('trigger runs the action now: it processes yesterday (schedule time zone) and, over the same landing, writes nothing', async () => {
    const before = scheduledLogicalDate(new Date(), 'Asia/Tokyo');
    const run = await triggerSchedule(env.client);
    expect(run.workflowId).toMatch(/^daily-pipeline\/scheduled-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const summary = await scheduledRunResult(env.client, config, run);
    const after = scheduledLogicalDate(new Date(), 'Asia/Tokyo');
    const scheduledAt = (
      await env.client.workflow.getHandle(run.workflowId, run.runId).describe()
    ).typedSearchAttributes.get(defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME))!;
    expect(summary.logicalDate).toBe(scheduledLogicalDate(scheduledAt, 'Asia/Tokyo'));
    expect([before, after]).toContain(summary.logicalDate);
    expect(summary.logicalDate! < localDate(new Date(), 'Asia/Tokyo')).toBe(true);
    expect(summary.status).toBe('succeeded');
    expect(summary.steps.filter((s) => s.partitionsWritten > 0)).toEqual([]);
    const view = await describeSchedule(env.client);
    expect(view.recentActions.map((a) => a.workflowId)).toContain(run.workflowId);
    expect(view.recentActions.find((a) => a.workflowId === run.workflowId)?.status).toBe('COMPLETED');
  });
});

describe('dailyPipeline on a server without the custom search attributes', () => {
  it('still runs, and stays findable by memo', async () => {
    // Its own server, started without the search attributes the shared one registers.
    const env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: quietTemporalCli() }, extraArgs: ['--log-level', 'error'] },
    });
    const lake = tmpDir('no-sa-lake');
    const config = loadConfig({ CPA_LAKE_ROOT: lake, CPA_LANDING_ROOT: REFERENCE_LANDING });
    const db = await createDuckDb(config);
    try {
      const { worker } = await createWorker(config, env.nativeConnection, { db });
      const summary = await worker.runUntil(
        env.client.workflow.execute('dailyPipeline', {
          taskQueue: config.temporal.taskQueue,
          workflowId: 'daily-pipeline/2025-08-05',
          args: [{ runDate: '2025-08-05', lake, landing: REFERENCE_LANDING, kind: 'manual' }],
        }) as Promise<RunSummary>,
      );
      expect(summary).toMatchObject({ status: 'succeeded', logicalDate: '2025-08-05' });
      const d = await env.client.workflow.getHandle('daily-pipeline/2025-08-05').describe();
      expect(d.memo).toMatchObject({ logicalDate: '2025-08-05', kind: 'manual', status: 'succeeded', lake });
      expect(d.typedSearchAttributes.get(CpaSearchAttributes.logicalDate)).toBeUndefined();
    } finally {
      db.closeSync();
      await env.teardown();
    }
  });
});
