/**
 * Ids and limits that the CLI shows before it talks to anything (help texts, option defaults): pure constants, so
 * `cpa --help` loads neither the Temporal SDK nor the workflow code.
 */

/** The daily 02:00 dailyPipeline schedule (worker/schedules.ts). */
export const SCHEDULE_ID = 'daily-pipeline';
/** The lake upkeep schedule: `lakeMaintenance` daily at 03:00, after the 02:00 run. */
export const MAINTENANCE_SCHEDULE_ID = 'lake-maintenance';

/** Backfill parallelism, batch size and range limits (workflows/backfill.ts). */
export const BACKFILL_DEFAULTS = { parallel: 1, batchSize: 30, maxDays: 3660, maxParallel: 16 } as const;

/** `cpa serving load`'s workflow id: one per keyspace, so two loads of one keyspace are one workflow (serving-load.ts). */
export function servingLoadWorkflowId(keyspace: string): string {
  return `serving-load/${keyspace}`;
}
