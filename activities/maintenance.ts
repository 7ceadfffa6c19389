import { maintainLake as maintain } from '../lake/maintenance';
import type { MaintenanceReport } from '../lake/maintenance';
import { S3Storage, storageFor } from '../lake/storage';
import { ATTEMPT_RECORD_DAYS, pruneAttempts } from '../lake/attempts';
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
  const graceMinutes = input.graceMinutes ?? 60;
  const report = await withLake(deps, input.lake, (conn, lake) =>
    maintain(conn, lake, { retention: input.retention ?? deps.config.snapshotRetention, graceMinutes }),
  );
  // The commit fence's records of retried attempts (lake/attempts.ts) outlive their runs only by this much.
  report.attemptRecordsDeleted = await pruneAttempts(
    deps.config,
    input.lake,
    Date.now() - ATTEMPT_RECORD_DAYS * 86_400_000,
  );
  const storage = storageFor(input.lake, deps.config);
  if (storage instanceof S3Storage) {
    // A writer killed mid-upload leaves an open multipart upload that neither readers nor DuckLake's orphan
    // clean-up see; past the grace period it belongs to no live writer.
    const before = Date.now() - graceMinutes * 60_000;
    const stale = (await storage.listUploads(input.lake)).filter((u) => u.initiated && u.initiated.getTime() < before);
    await storage.abortUploads(stale);
    report.uploadsAborted = stale.length;
  }
  return report;
}
