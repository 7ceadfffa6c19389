import { maintainLake as maintain } from '../lake/maintenance';
import type { MaintenanceReport } from '../lake/maintenance';
import { S3Storage, storageFor } from '../lake/storage';
import { withLake } from './common';
import type { ActivityDeps } from './common';

export type { MaintenanceReport };

export interface MaintainLakeInput {
  lake: string;
  /** Snapshots older than this expire (a DuckDB interval, e.g. '7 days'); default CPA_LAKE_SNAPSHOT_RETENTION. */
  retention?: string;
  /** Unreferenced and orphaned files younger than this are kept for readers still scanning them (default 60). */
  graceMinutes?: number;
}

/** Lake upkeep as one activity (lake/maintenance.ts): expire snapshots, merge small files, delete unreferenced files. */
export async function maintainLake(deps: ActivityDeps, input: MaintainLakeInput): Promise<MaintenanceReport> {
  return withLake(deps, input.lake, (conn, lake) =>
    maintain(conn, lake, {
      retention: input.retention ?? deps.config.snapshotRetention,
      graceMinutes: input.graceMinutes,
    }),
  );
}
