import type { DuckDBConnection } from '@duckdb/node-api';
import { queryRows, sqlIdent, sqlString } from './duckdb';
import type { AttachedLake } from './lakehouse';

/**
 * Lake upkeep (`cpa lake maintain`, the `lakeMaintenance` workflow): DuckLake never deletes data on its own — every
 * replaced partition stays readable through time travel until its snapshot expires. In order:
 * 1. rewrite the data files at least half of whose rows are deleted (a month file whose days a run replaced keeps its
 *    old rows, masked by a delete file, until then: lake/lakehouse.ts `fileLayout`);
 * 2. merge adjacent small files of the same partition (many small appends, e.g. the speed layer's);
 * 3. expire snapshots older than the retention (the newest snapshot never expires);
 * 4. delete the files that expired snapshots or merges left behind, once they have been unreferenced for
 *    `graceMinutes` (a reader that started before the expiry may still be scanning them);
 * 5. delete orphaned files older than the grace: files a writer killed before its commit wrote but never committed;
 * 6. on S3, abort multipart uploads under the lake older than the grace: a writer killed mid-upload leaves one open,
 *    invisible to readers and to DuckLake's orphan clean-up, but holding storage (done by the activity).
 */
export interface MaintenanceReport {
  snapshotsBefore: number;
  snapshotsExpired: number;
  filesRewritten: number;
  filesMerged: number;
  filesDeleted: number;
  orphansDeleted: number;
  uploadsAborted?: number;
  /** Commit-fence records of retried attempts older than ATTEMPT_RECORD_DAYS (lake/attempts.ts). */
  attemptRecordsDeleted?: number;
  durationMs: number;
}

/** A data file is rewritten without its deleted rows once at least this share of them is deleted. */
export const REWRITE_DELETED_SHARE = 0.5;

export async function maintainLake(
  conn: DuckDBConnection,
  lake: AttachedLake,
  opts: { retention: string; graceMinutes?: number },
): Promise<MaintenanceReport> {
  const started = Date.now();
  const db = sqlString(lake.alias);
  const grace = Math.max(0, Math.trunc(opts.graceMinutes ?? 60));
  const count = async (sql: string): Promise<number> => (await queryRows(conn, sql)).length;
  const [{ n: before }] = await queryRows(
    conn,
    `select count(*)::bigint as n from ${sqlIdent(lake.alias)}.snapshots()`,
  );
  const rewritten = await count(
    `call ducklake_rewrite_data_files(${db}, delete_threshold => ${REWRITE_DELETED_SHARE})`,
  );
  const merged = await count(`call ducklake_merge_adjacent_files(${db})`);
  const expired = await count(
    `call ducklake_expire_snapshots(${db}, older_than => now() - cast(${sqlString(opts.retention)} as interval))`,
  );
  const deleted = await count(
    `call ducklake_cleanup_old_files(${db}, older_than => now() - to_minutes(cast(${grace} as bigint)))`,
  );
  const orphans = await count(
    `call ducklake_delete_orphaned_files(${db}, older_than => now() - to_minutes(cast(${grace} as bigint)))`,
  );
  return {
    snapshotsBefore: Number(before),
    snapshotsExpired: expired,
    filesRewritten: rewritten,
    filesMerged: merged,
    filesDeleted: deleted,
    orphansDeleted: orphans,
    durationMs: Date.now() - started,
  };
}
