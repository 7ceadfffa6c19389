import type { Command } from 'commander';
import { ScheduleNotFoundError } from '@temporalio/client';
import type { Client } from '@temporalio/client';
import type { Config } from '../../config/env';
import type { CommandKit } from '../kit';
import { PipelineFailed } from '../kit';
import { rootMessage } from '../../workflows/failures';
import { OutcomeUnknown } from '../../worker/follow';
import { MAINTENANCE_SCHEDULE_ID, SCHEDULE_ID } from '../../workflows/names';
import {
  applyMaintenanceSchedule,
  applySchedule,
  describeSchedule,
  pauseSchedule,
  scheduleTarget,
  scheduledRunResult,
  triggerSchedule,
  unpauseSchedule,
} from '../../worker/schedules';
import type { ScheduleView } from '../../worker/schedules';
import { clientFor, isServerUp } from '../../worker/temporal';

/**
 * A schedule lives in a Temporal server that outlives the CLI: TEMPORAL_ADDRESS, or the `cpa dev` server on
 * CPA_DEV_PORT. An ephemeral embedded server would forget it on exit, so none is started here.
 */
async function withClient<T>(cfg: Config, fn: (client: Client) => Promise<T>): Promise<T> {
  const address = cfg.temporal.address ?? `127.0.0.1:${cfg.temporal.devPort}`;
  if (!(await isServerUp(cfg, address, 3000))) {
    throw new PipelineFailed(
      `no Temporal server answers at ${address}: start one with \`npx cpa dev\` (or set TEMPORAL_ADDRESS) — a schedule needs a server that keeps running`,
    );
  }
  const { client, close } = await clientFor(cfg, address);
  try {
    return await fn(client);
  } catch (e) {
    if (e instanceof ScheduleNotFoundError) {
      throw new PipelineFailed(
        `schedule ${SCHEDULE_ID} does not exist on ${address}: create it with \`npx cpa schedule apply\``,
      );
    }
    throw e;
  } finally {
    await close();
  }
}

function printView(v: ScheduleView): void {
  const input = (v.action.input ?? {}) as { lake?: string; landing?: string };
  console.log(`schedule ${v.scheduleId}: ${v.paused ? 'PAUSED' : 'active'}${v.note ? ` (note: ${v.note})` : ''}`);
  console.log(`  spec:      ${v.spec.calendars.join('; ')} (${v.spec.timeZone}); logical date = the day before`);
  console.log(
    `  action:    start ${v.action.workflowType} on task queue ${v.action.taskQueue}, workflow id ${v.action.workflowIdPrefix}-<scheduled time>`,
  );
  console.log(`             lake ${input.lake ?? '?'}, landing ${input.landing ?? '?'}`);
  console.log(
    `  policies:  overlap ${v.policies.overlap}, catch-up window ${v.policies.catchupWindow}, pause on failure ${v.policies.pauseOnFailure ? 'yes' : 'no'}`,
  );
  console.log(
    `  actions:   ${v.actionsTaken} taken since ${v.createdAt}; running: ${v.runningWorkflowIds.join(', ') || 'none'}`,
  );
  console.log('  next runs:');
  for (const r of v.nextRuns.slice(0, 5))
    console.log(`    ${r.localTime} ${v.spec.timeZone} (${r.scheduledAt})  → logical date ${r.logicalDate}`);
  console.log('  recent actions:');
  if (v.recentActions.length === 0) console.log('    none');
  for (const r of v.recentActions) {
    console.log(`    ${r.localTime} (taken ${r.takenAt})  ${r.workflowId}  ${r.status}  logical date ${r.logicalDate}`);
  }
}

/** `cpa schedule apply|describe|trigger|pause|unpause` — the daily 02:00 dailyPipeline schedule (worker/schedules.ts). */
export function register(program: Command, kit: CommandKit): void {
  const schedule = program
    .command('schedule')
    .description(`manage the daily 02:00 dailyPipeline schedule (id ${SCHEDULE_ID})`);

  schedule
    .command('apply')
    .description('create the schedule, or update it in place (idempotent; keeps the paused state)')
    .option('--timezone <tz>', 'IANA time zone of 02:00 (default CPA_SCHEDULE_TIMEZONE, else UTC)')
    .option('--lake <dir>', 'lake root the scheduled runs write (default CPA_LAKE_ROOT)')
    .option('--landing <dir>', 'landing root the scheduled runs read (default CPA_LANDING_ROOT)')
    .option('--json', 'print the schedule as JSON')
    .action(async (opts: { timezone?: string; lake?: string; landing?: string; json?: boolean }) => {
      const cfg = kit.config({
        CPA_SCHEDULE_TIMEZONE: opts.timezone as never,
        CPA_LAKE_ROOT: opts.lake as never,
        CPA_LANDING_ROOT: opts.landing as never,
      });
      await withClient(cfg, async (client) => {
        const outcome = await applySchedule(client, scheduleTarget(cfg));
        const maintenance = await applyMaintenanceSchedule(client, scheduleTarget(cfg));
        const view = await describeSchedule(client);
        if (opts.json) console.log(JSON.stringify({ outcome, maintenance, ...view }, null, 2));
        else {
          console.log(`${outcome} schedule ${SCHEDULE_ID}`);
          console.log(`${maintenance} schedule ${MAINTENANCE_SCHEDULE_ID} (lakeMaintenance daily at 03:00)`);
          printView(view);
        }
      });
    });

  schedule
    .command('describe')
    .description('show spec, policies, paused state, next runs and recent actions')
    .option('--json', 'JSON output')
    .action(async (opts: { json?: boolean }) => {
      await withClient(kit.config(), async (client) => {
        const view = await describeSchedule(client);
        if (opts.json) console.log(JSON.stringify(view, null, 2));
        else printView(view);
      });
    });

  schedule
    .command('trigger')
    .description("run the schedule's action now (logical date: yesterday in the schedule's time zone)")
    .option('--wait', 'wait for the run to finish and print its outcome (needs a worker: `cpa dev` or `cpa worker`)')
    .option('--json', 'JSON output')
    .action(async (opts: { wait?: boolean; json?: boolean }) => {
      const cfg = kit.config();
      await withClient(cfg, async (client) => {
        const run = await triggerSchedule(client);
        if (!opts.wait) {
          if (opts.json) console.log(JSON.stringify(run));
          else console.log(`triggered ${SCHEDULE_ID}: started ${run.workflowId} (run ${run.runId})`);
          return;
        }
        process.stderr.write(`triggered ${SCHEDULE_ID}: waiting for ${run.workflowId}\n`);
        try {
          const summary = await scheduledRunResult(client, cfg, run);
          if (opts.json) console.log(JSON.stringify(summary, null, 2));
          else {
            const written = summary.steps.reduce((n, s) => n + s.partitionsWritten, 0);
            console.log(
              `${run.workflowId} ${summary.status}: logical date ${summary.logicalDate}, ${summary.steps.length} steps, ${written} partitions written`,
            );
            for (const n of summary.notes ?? []) console.log(`note: ${n}`);
          }
        } catch (e) {
          if (e instanceof OutcomeUnknown) throw e;
          throw new PipelineFailed(`${run.workflowId} failed: ${rootMessage(e)}`);
        }
      });
    });

  schedule
    .command('pause')
    .description('pause the schedule (no 02:00 runs until unpaused)')
    .option('--note <text>', 'why (shown in describe and the Web UI)')
    .action(async (opts: { note?: string }) => {
      await withClient(kit.config(), async (client) => {
        await pauseSchedule(client, opts.note);
        console.log(`paused schedule ${SCHEDULE_ID}`);
      });
    });

  schedule
    .command('unpause')
    .description('resume the schedule (runs missed while paused are not replayed: use `cpa backfill`)')
    .option('--note <text>', 'note to record')
    .action(async (opts: { note?: string }) => {
      await withClient(kit.config(), async (client) => {
        await unpauseSchedule(client, opts.note);
        console.log(`unpaused schedule ${SCHEDULE_ID}`);
      });
    });
}
