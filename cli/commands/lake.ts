import type { Command } from 'commander';
import Table from 'cli-table3';
import type { Config } from '../../config/env';
import { queryRows } from '../../lake/duckdb';
import { attachSpec, currentSnapshot, LAKE_SCHEMAS, qualified } from '../../lake/lakehouse';
import { withLakeReader } from '../../lake/reader';
import type { MaintenanceReport } from '../../activities';
import type { LakeMaintenanceInput } from '../../workflows';
import type { CommandKit } from '../kit';
import { openSession } from '../run';
import { PipelineFailed } from '../kit';
import { rootMessage } from '../../workflows/failures';
import { followResult, Interrupted, OutcomeUnknown } from '../../worker/follow';

/**
 * `cpa lake maintain`: runs the `lakeMaintenance` workflow (the one the 03:00 schedule starts) on the embedded or
 * configured Temporal, like `cpa run`, and prints what it did. There is no second runner: the CLI only starts and
 * waits for the workflow.
 */
export function register(program: Command, kit: CommandKit): void {
  const lake = program.command('lake').description('the lake itself: the DuckLake catalog, snapshots and upkeep');
  lake
    .command('info')
    .description('how to attach the lake from any DuckDB, its current snapshot and its tables with row counts')
    .option('--lake <dir>', 'lake root (default CPA_LAKE_ROOT)')
    .option('--json', 'JSON output')
    .action(async (opts: { lake?: string; json?: boolean }) => {
      const cfg = kit.config({ CPA_LAKE_ROOT: opts.lake as never });
      await kit.checkStorage(cfg);
      const info = await lakeInfo(cfg);
      if (opts.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      console.log(`-- attach read-only from any DuckDB with the ducklake extension:\n${info.attach}`);
      console.log(`current snapshot ${info.snapshot}; ${info.tables.length} tables`);
      const t = new Table({ style: { head: [], border: [] }, head: ['table', 'rows'] });
      for (const r of info.tables) t.push([r.table, r.rows]);
      console.log(t.toString());
    });
  lake
    .command('maintain')
    .description(
      'expire old snapshots, merge small files, delete files no snapshot references (workflow lakeMaintenance)',
    )
    .option('--lake <dir>', 'lake root (default CPA_LAKE_ROOT)')
    .option(
      '--retention <interval>',
      "snapshots older than this expire, e.g. '7 days' (default CPA_LAKE_SNAPSHOT_RETENTION)",
    )
    .option(
      '--grace-minutes <n>',
      'keep unreferenced files younger than this for readers still scanning them',
      kit.integer,
      60,
    )
    .option('--json', 'JSON output')
    .action(async (opts: { lake?: string; retention?: string; graceMinutes: number; json?: boolean }) => {
      const cfg = kit.config({
        CPA_LAKE_ROOT: opts.lake as never,
        CPA_LAKE_SNAPSHOT_RETENTION: opts.retention as never,
      });
      await kit.checkStorage(cfg, { write: true });
      const session = await openSession(cfg);
      try {
        const input: LakeMaintenanceInput = {
          lake: cfg.lakeRoot,
          retention: cfg.snapshotRetention,
          graceMinutes: opts.graceMinutes,
        };
        const workflowId = `lake-maintenance/manual`;
        let report: MaintenanceReport;
        try {
          const handle = await session.client.workflow.start('lakeMaintenance', {
            taskQueue: cfg.temporal.taskQueue,
            workflowId,
            args: [input],
            workflowIdConflictPolicy: 'USE_EXISTING',
            workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          });
          // Rides out a server outage up to CPA_CLI_OUTAGE_SECONDS, then OutcomeUnknown (exit 3).
          report = await followResult<MaintenanceReport>(session.client, cfg, workflowId, handle.firstExecutionRunId, {
            embedded: session.endpoint.started,
          });
        } catch (e) {
          if (e instanceof OutcomeUnknown || e instanceof Interrupted) throw e;
          throw new PipelineFailed(`${workflowId} failed: ${rootMessage(e)}`);
        }
        if (opts.json)
          console.log(JSON.stringify({ lake: cfg.lakeRoot, retention: cfg.snapshotRetention, ...report }, null, 2));
        else {
          console.log(
            `lake ${cfg.lakeRoot}: expired ${report.snapshotsExpired} of ${report.snapshotsBefore} snapshots ` +
              `(older than ${cfg.snapshotRetention}), rewrote ${report.filesRewritten} file(s) without their deleted rows, ` +
              `merged ${report.filesMerged} file group(s), deleted ` +
              `${report.filesDeleted} unreferenced and ${report.orphansDeleted} orphaned file(s)` +
              (report.uploadsAborted ? `, aborted ${report.uploadsAborted} stale multipart upload(s)` : '') +
              ` in ` +
              `${(report.durationMs / 1000).toFixed(2)}s`,
          );
        }
      } finally {
        await session.close();
      }
    });
}

/** What `cpa lake info` prints: the ATTACH statement (catalog password masked), the snapshot, tables and rows. */
async function lakeInfo(cfg: Config): Promise<{
  lake: string;
  attach: string;
  snapshot: number;
  tables: Array<{ table: string; rows: number }>;
}> {
  const spec = attachSpec(cfg, cfg.lakeRoot);
  const options = ['READ_ONLY', ...spec.options.filter((o) => o.startsWith('METADATA_SCHEMA'))].join(', ');
  const target = spec.target.replace(/password=\S+/, 'password=***');
  const attach = `ATTACH '${target}' AS lake (${options});`;
  return withLakeReader(cfg, cfg.lakeRoot, async (conn, lake) => {
    const tables = await queryRows(
      conn,
      `select schema_name, table_name from duckdb_tables() where database_name = $db order by 1, 2`,
      { db: lake.alias },
    );
    const out: Array<{ table: string; rows: number }> = [];
    for (const t of tables) {
      const schema = String(t.schema_name);
      if (!(LAKE_SCHEMAS as readonly string[]).includes(schema)) continue;
      const [r] = await queryRows(
        conn,
        `select count(*)::bigint as n from ${qualified(lake, schema, String(t.table_name))}`,
      );
      out.push({ table: `${schema}.${String(t.table_name)}`, rows: Number(r.n) });
    }
    return { lake: cfg.lakeRoot, attach, snapshot: await currentSnapshot(conn, lake), tables: out };
  });
}
