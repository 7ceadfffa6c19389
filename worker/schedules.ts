import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import type {
  Client,
  ScheduleDescription,
  ScheduleOptions,
  ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import type { Config } from '../config/env';
import { MAINTENANCE_SCHEDULE_ID, SCHEDULE_ID } from '../workflows/names';
import type { RunSummary } from '../activities';
import type { DailyPipelineInput, dailyPipeline } from '../workflows';
import { localDate, scheduledLogicalDate } from '../workflows/logical-date';
import { followResult } from './follow';

/**
 * The daily schedule (SPEC §9), id `daily-pipeline`: dailyPipeline every day at 02:00 in CPA_SCHEDULE_TIMEZONE.
 * The action carries no date: the workflow derives its logical date from the server-set TemporalScheduledStartTime
 * (the day before the scheduled start's local date), so a caught-up or buffered run still processes the day it was
 * scheduled for, and `trigger` processes yesterday. Policies are explained in docs/decisions.md.
 */

export { SCHEDULE_ID, MAINTENANCE_SCHEDULE_ID } from '../workflows/names';
/** Temporal appends `-<scheduled time, RFC 3339>`: `daily-pipeline/scheduled-2025-08-02T00:00:00Z`. */
export const SCHEDULED_WORKFLOW_ID = 'daily-pipeline/scheduled';
export const SCHEDULE_POLICY = {
  hour: 2,
  minute: 0,
  /** A run still going at the next 02:00 (or a trigger): queue one, drop further ones; runs never overlap. */
  overlap: ScheduleOverlapPolicy.BUFFER_ONE,
  /** After a Temporal server outage, missed 02:00 actions of the last day are still taken; older ones are not. */
  catchupWindow: '1 day',
  /** A failed run does not pause the schedule: the next day's run recomputes everything anyway. */
  pauseOnFailure: false,
} as const;

export interface ScheduleTarget {
  timeZone: string;
  lake: string;
  landing: string;
  taskQueue: string;
  /** Scheduled runs load the serving layer (when Cassandra is configured where `apply` runs). */
  serve?: boolean;
}

export function scheduleTarget(config: Config): ScheduleTarget {
  return {
    timeZone: config.schedule.timeZone,
    lake: config.lakeRoot,
    landing: config.landingRoot,
    taskQueue: config.temporal.taskQueue,
    serve: Boolean(config.cassandra),
  };
}

type Action = ScheduleOptionsStartWorkflowAction<typeof dailyPipeline>;

function definition(t: ScheduleTarget): Omit<ScheduleOptions<Action>, 'scheduleId' | 'state'> {
  const input: DailyPipelineInput = {
    lake: t.lake,
    landing: t.landing,
    kind: 'scheduled',
    timeZone: t.timeZone,
    serve: t.serve ?? false,
  };
  return {
    spec: {
      calendars: [
        { hour: SCHEDULE_POLICY.hour, minute: SCHEDULE_POLICY.minute, comment: 'daily batch: yesterday, closed' },
      ],
      timezone: t.timeZone,
    },
    action: {
      type: 'startWorkflow',
      workflowType: 'dailyPipeline',
      workflowId: SCHEDULED_WORKFLOW_ID,
      taskQueue: t.taskQueue,
      args: [input],
      memo: { kind: 'scheduled', schedule: SCHEDULE_ID },
    },
    policies: {
      overlap: SCHEDULE_POLICY.overlap,
      catchupWindow: SCHEDULE_POLICY.catchupWindow,
      pauseOnFailure: SCHEDULE_POLICY.pauseOnFailure,
    },
  };
}

/**
 * Creates the schedule, or updates it in place when it exists (spec, action and policies replaced; the paused state
 * and its note are the operator's and are kept). Running it twice leaves one schedule with the latest settings.
 */
export async function applySchedule(client: Client, target: ScheduleTarget): Promise<'created' | 'updated'> {
  const def = definition(target);
  const handle = client.schedule.getHandle(SCHEDULE_ID);
  let exists = true;
  try {
    await handle.describe();
  } catch (e) {
    if (!(e instanceof ScheduleNotFoundError)) throw e;
    exists = false;
  }
  if (!exists) {
    try {
      await client.schedule.create({
        scheduleId: SCHEDULE_ID,
        ...def,
        state: { paused: false, note: 'created by cpa schedule apply' },
      });
      return 'created';
    } catch (e) {
      if (!(e instanceof ScheduleAlreadyRunning)) throw e; // created concurrently: update it instead
    }
  }
  await handle.update<typeof dailyPipeline>((prev) => ({
    ...def,
    state: { paused: prev.state.paused, note: prev.state.note, remainingActions: prev.state.remainingActions },
  }));
  return 'updated';
}

/**
 * Creates or updates the `lake-maintenance` schedule beside the daily one (same time zone and lake). Overlaps are
 * skipped: a maintenance still running at the next 03:00 makes the next one unnecessary.
 */
export async function applyMaintenanceSchedule(client: Client, target: ScheduleTarget): Promise<'created' | 'updated'> {
  const def = {
    spec: { calendars: [{ hour: 3, minute: 0, comment: 'lake upkeep' }], timezone: target.timeZone },
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'lakeMaintenance',
      workflowId: 'lake-maintenance/scheduled',
      taskQueue: target.taskQueue,
      args: [{ lake: target.lake }],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day', pauseOnFailure: false },
  };
  const handle = client.schedule.getHandle(MAINTENANCE_SCHEDULE_ID);
  try {
    await handle.describe();
  } catch (e) {
    if (!(e instanceof ScheduleNotFoundError)) throw e;
    try {
      await client.schedule.create({ scheduleId: MAINTENANCE_SCHEDULE_ID, ...def, state: { paused: false } });
      return 'created';
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    }
  }
  await handle.update((prev) => ({ ...def, state: { paused: prev.state.paused, note: prev.state.note } }));
  return 'updated';
}

export interface ScheduledRun {
  scheduledAt: string;
  /** The scheduled time on the schedule's wall clock, e.g. `2025-08-02 02:00`. */
  localTime: string;
  takenAt?: string;
  logicalDate: string;
  workflowId?: string;
  runId?: string;
  status?: string;
}

/** What `cpa schedule describe` prints (and `--json` returns). */
export interface ScheduleView {
  scheduleId: string;
  paused: boolean;
  note?: string;
  spec: { calendars: string[]; timeZone: string };
  action: { workflowType: string; workflowIdPrefix: string; taskQueue: string; input: unknown };
  policies: { overlap: string; catchupWindow: string; pauseOnFailure: boolean };
  nextRuns: ScheduledRun[];
  recentActions: ScheduledRun[];
  runningWorkflowIds: string[];
  actionsTaken: number;
  createdAt: string;
}

function ranges(rs: Array<{ start: number; end?: number; step?: number }>): string {
  return rs
    .map((r) => {
      const end = r.end ?? r.start;
      const base = end === r.start ? String(r.start).padStart(2, '0') : `${r.start}-${end}`;
      return r.step && r.step > 1 ? `${base}/${r.step}` : base;
    })
    .join(',');
}

function wallClock(t: Date, timeZone: string): string {
  const time = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).format(t);
  return `${localDate(t, timeZone)} ${time}`;
}

function duration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} day${ms === 86_400_000 ? '' : 's'}`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  return `${ms / 1000} s`;
}

export async function describeSchedule(client: Client): Promise<ScheduleView> {
  const d: ScheduleDescription = await client.schedule.getHandle(SCHEDULE_ID).describe();
  const tz = d.spec.timezone ?? 'UTC';
  const action = d.action.type === 'startWorkflow' ? d.action : undefined;
  const recent = await Promise.all(
    d.info.recentActions.map(async (a): Promise<ScheduledRun> => {
      const { workflowId, firstExecutionRunId } = a.action.workflow;
      let status: string | undefined;
      try {
        status = (await client.workflow.getHandle(workflowId, firstExecutionRunId).describe()).status.name;
      } catch {
        status = 'unknown';
      }
      return {
        scheduledAt: a.scheduledAt.toISOString(),
        localTime: wallClock(a.scheduledAt, tz),
        takenAt: a.takenAt.toISOString(),
        logicalDate: scheduledLogicalDate(a.scheduledAt, tz),
        workflowId,
        runId: firstExecutionRunId,
        status,
      };
    }),
  );
  return {
    scheduleId: d.scheduleId,
    paused: d.state.paused,
    note: d.state.note,
    spec: {
      calendars: (d.spec.calendars ?? []).map((c) => {
        const days = ranges((c.dayOfWeek ?? []) as never);
        return `${days === '' || days === 'SUNDAY-SATURDAY' ? 'every day' : `days ${days}`} at ${ranges(c.hour)}:${ranges(c.minute)}`;
      }),
      timeZone: tz,
    },
    action: {
      workflowType: action?.workflowType ?? '?',
      workflowIdPrefix: action?.workflowId ?? '?',
      taskQueue: action?.taskQueue ?? '?',
      input: action?.args?.[0],
    },
    policies: {
      overlap: d.policies.overlap ?? 'SKIP',
      catchupWindow: duration(d.policies.catchupWindow),
      pauseOnFailure: d.policies.pauseOnFailure,
    },
    nextRuns: d.info.nextActionTimes.map((t) => ({
      scheduledAt: t.toISOString(),
      localTime: wallClock(t, tz),
      logicalDate: scheduledLogicalDate(t, tz),
    })),
    recentActions: recent.reverse(),
    runningWorkflowIds: d.info.runningActions.map((a) => a.workflow.workflowId),
    actionsTaken: d.info.numActionsTaken,
    createdAt: d.info.createdAt.toISOString(),
  };
}

/** Runs the schedule's action now (processing yesterday); returns the started workflow once the server reports it. */
export async function triggerSchedule(
  client: Client,
  timeoutMs = 30_000,
): Promise<{ workflowId: string; runId: string }> {
  const handle = client.schedule.getHandle(SCHEDULE_ID);
  const seen = (d: ScheduleDescription): string[] => [
    ...d.info.recentActions.map((a) => a.action.workflow.firstExecutionRunId),
    ...d.info.runningActions.map((a) => a.workflow.firstExecutionRunId),
  ];
  const before = new Set(seen(await handle.describe()));
  // ALLOW_ALL: an operator's trigger always starts a run; the lake lease makes it wait for a running one.
  await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = await handle.describe();
    const started = [
      ...d.info.runningActions.map((a) => a.workflow),
      ...d.info.recentActions.map((a) => a.action.workflow),
    ].find((w) => !before.has(w.firstExecutionRunId));
    if (started) return { workflowId: started.workflowId, runId: started.firstExecutionRunId };
    if (Date.now() > deadline)
      throw new Error(`schedule ${SCHEDULE_ID} was triggered but no run appeared within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Waits for a run the schedule started (following retries) and returns its summary; an unreachable server is retried
 * up to CPA_CLI_OUTAGE_SECONDS (worker/follow.ts), then OutcomeUnknown.
 */
export async function scheduledRunResult(
  client: Client,
  config: Config,
  run: { workflowId: string; runId: string },
): Promise<RunSummary> {
  return followResult<RunSummary>(client, config, run.workflowId, run.runId);
}

export async function pauseSchedule(client: Client, note?: string): Promise<void> {
  await client.schedule.getHandle(SCHEDULE_ID).pause(note ?? 'paused by cpa schedule pause');
}

export async function unpauseSchedule(client: Client, note?: string): Promise<void> {
  await client.schedule.getHandle(SCHEDULE_ID).unpause(note ?? 'unpaused by cpa schedule unpause');
}
