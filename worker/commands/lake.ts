import type { Command } from 'commander';
import type { MaintenanceReport } from '../../activities';
import type { LakeMaintenanceInput } from '../../workflows';
import type { CommandKit } from '../cli';
import { openSession, PipelineFailed, rootMessage } from '../run';

/**
 * `cpa lake maintain`: runs the `lakeMaintenance` workflow (the one the 03:00 schedule starts) on the embedded or
 * configured Temporal, like `cpa run`, and prints what it did. There is no second runner: the CLI only starts and
 * waits for the workflow.
 */
export function register(program: Command, kit: CommandKit): void {
  const lake = program.command('lake').description('the lake itself: upkeep of the DuckLake (snapshots, files)');
  lake
    .command('maintain')
    .description('expire old snapshots, merge small files, delete files no snapshot references (workflow lakeMaintenance)')
    .option('--lake <dir>', 'lake root (default CPA_LAKE_ROOT)')
    .option('--retention <interval>', "snapshots older than this expire, e.g. '7 days' (default CPA_LAKE_SNAPSHOT_RETENTION)")
    .option('--grace-minutes <n>', 'keep unreferenced files younger than this for readers still scanning them', kit.integer, 60)
    .option('--json', 'JSON output')
    .action(async (opts: { lake?: string; retention?: string; graceMinutes: number; json?: boolean }) => {
      const cfg = kit.config({
        CPA_LAKE_ROOT: opts.lake as never,
        CPA_LAKE_SNAPSHOT_RETENTION: opts.retention as never,
      });
      await kit.checkStorage(cfg, { write: true });
      const session = await openSession(cfg);
      try {
        const input: LakeMaintenanceInput = { lake: cfg.lakeRoot, retention: cfg.snapshotRetention, graceMinutes: opts.graceMinutes };
        const workflowId = `lake-maintenance/manual`;
        let report: MaintenanceReport;
        try {
          report = (await session.client.workflow.execute('lakeMaintenance', {
            taskQueue: cfg.temporal.taskQueue,
            workflowId,
            args: [input],
            workflowIdConflictPolicy: 'USE_EXISTING',
            workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          })) as MaintenanceReport;
        } catch (e) {
          throw new PipelineFailed(`${workflowId} failed: ${rootMessage(e)}`);
        }
        if (opts.json) console.log(JSON.stringify({ lake: cfg.lakeRoot, retention: cfg.snapshotRetention, ...report }, null, 2));
        else {
          console.log(
            `lake ${cfg.lakeRoot}: expired ${report.snapshotsExpired} of ${report.snapshotsBefore} snapshots ` +
              `(older than ${cfg.snapshotRetention}), merged ${report.filesMerged} file group(s), deleted ` +
              `${report.filesDeleted} unreferenced and ${report.orphansDeleted} orphaned file(s) in ` +
              `${(report.durationMs / 1000).toFixed(2)}s`,
          );
        }
      } finally {
        await session.close();
      }
    });
}
