import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities, MaintenanceReport } from '../activities';
import { withLakeLease } from './lake-lease';
import { eventsTaskQueue } from './task-queues';
import { HEARTBEAT_TIMEOUT } from './timeouts';

/** Input of {@link lakeMaintenance}: the lake, and optionally another retention than CPA_LAKE_SNAPSHOT_RETENTION. */
export interface LakeMaintenanceInput {
  lake: string;
  retention?: string;
  graceMinutes?: number;
}

/**
 * Lake upkeep (SPEC §2): expire old snapshots, merge small files, delete files no snapshot references. It holds the
 * lake lease, so it never rewrites files under a running pipeline, and runs on the single-writer events queue, so it
 * never overlaps streaming ingestion either. Scheduled daily at 03:00 by `cpa schedule apply` (schedule
 * `lake-maintenance`); `cpa lake maintain` starts it by hand.
 */
export async function lakeMaintenance(input: LakeMaintenanceInput): Promise<MaintenanceReport> {
  const { maintainLake } = proxyActivities<Activities>({
    taskQueue: eventsTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
  });
  return withLakeLease(input.lake, () => maintainLake(input));
}
