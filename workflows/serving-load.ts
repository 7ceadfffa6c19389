import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities, ServingReport } from '../activities';
import { servingActivityOptions } from './daily-pipeline';
import { withLakeLease } from './lake-lease';

/** Input of {@link servingLoad}: the lake to load from (its landing only for the lease's preflight) and what to load. */
export interface ServingLoadInput {
  lake: string;
  landing: string;
  /** Reload every row of every table (`--full`). */
  full?: boolean;
  /** Only these serving tables (`--table`); default all. */
  tables?: string[];
}

const serving = proxyActivities<Activities>(servingActivityOptions);

/**
 * `cpa serving load` (SPEC §8): loads gold into Cassandra — the partitions changed since the last load, or everything
 * with `full` — and reconciles, as the daily pipeline's serving step does and with its retry profile (Cassandra may be
 * down a while: 10 attempts, backoff to a minute; a missing config, a refused statement or a mismatch fail at once).
 * One loader at a time: it holds the lake lease, like dailyPipeline, backfill's children and lakeMaintenance, so it
 * waits for a pipeline run on the same lake (whose serving step runs under that lease) and the pipeline waits for it;
 * the CLI starts it under the id `serving-load/<keyspace>` (cli/commands/serving.ts), so two loads of one keyspace
 * on one Temporal namespace are one workflow. Idempotent: a re-load writes the same rows under the same keys.
 */
export async function servingLoad(input: ServingLoadInput): Promise<ServingReport> {
  const { runId } = workflowInfo();
  const what = input.full ? 'every row' : 'changed gold partitions';
  const scope = input.tables && input.tables.length > 0 ? ` (${input.tables.join(', ')})` : '';
  return withLakeLease(
    input.lake,
    () =>
      serving.loadServingReport.executeWithOptions({ summary: `serving: ${what} → Cassandra${scope}` }, [
        { lake: input.lake, landing: input.landing, runId, full: input.full, tables: input.tables },
      ]),
    input.landing,
  );
}
