import { loadConfig } from '../../../config/env';
import { emptyMetrics } from '../../../activities/common';
import { recordRun } from '../../../activities/quality';
import { createDuckDb } from '../../../lake/duckdb';

/**
 * Records a run with three steps on a lake: `node -r tsx/cjs record-run-child.ts <lake> <run id>`. With
 * CPA_CRASH_AT=in-transaction:step_metrics the process kills itself inside the metrics transaction (a torn write).
 */
async function main(): Promise<void> {
  const [lake, runId] = process.argv.slice(2);
  const config = loadConfig({ ...process.env, CPA_LAKE_ROOT: lake });
  const db = await createDuckDb(config, { needS3: false });
  const now = new Date().toISOString();
  await recordRun(
    { config, db },
    {
      runId,
      workflowId: `daily-pipeline/${runId}`,
      logicalDate: null,
      kind: 'manual',
      status: 'succeeded',
      startedAt: now,
      finishedAt: now,
      lake,
      landing: '',
      steps: ['a', 'b', 'c'].map((n) => emptyMetrics(`torn.${n}`, 'gold', n)),
    },
  );
  process.stdout.write('recorded\n');
  db.closeSync();
}

main().catch((e: unknown) => {
  process.stderr.write(`record-run-child: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
