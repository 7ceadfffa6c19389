import fs from 'node:fs';
import type { Config } from '../config/env';
import { catalogPath, qualified } from '../lake/lakehouse';
import { isS3 } from '../lake/storage';
import { queryRows } from '../lake/duckdb';
import { withLakeReader } from '../lake/reader';
import type { RunSummary, StepMetrics } from '../activities';
import { planModels } from '../lake/incremental';
import type { StalePartition } from '../lake/incremental';
import { GOLD_MARTS, SILVER_MODELS } from '../lake/tables';

export interface QualityReport {
  runId: string;
  workflowId?: string;
  status?: string;
  steps: StepMetrics[];
  highlights: string[];
}

/** Latest run records from the lake's `meta.runs` on any backend, newest first (the latest row per run id). */
export async function listRuns(config: Config): Promise<RunSummary[]> {
  // A read command never creates a lake: no catalog yet means no runs.
  if (!isS3(config.lakeRoot) && !fs.existsSync(catalogPath(config.lakeRoot))) return [];
  return withLakeReader(config, config.lakeRoot, async (conn, lake) => {
    const rows = await queryRows(
      conn,
      `select summary from ${qualified(lake, 'meta', 'runs')}
       qualify row_number() over (partition by run_id order by recorded_at desc) = 1
       order by started_at desc`,
    );
    return rows.map((r) => JSON.parse(String(r.summary)) as RunSummary);
  });
}

/**
 * The quality report of one run (default: the latest): every step's persisted metrics from
 * the lake's `meta.step_metrics`, plus highlights (quarantine and anomaly rates) an operator reads first.
 */
export async function qualityReport(config: Config, runId?: string): Promise<QualityReport> {
  const runs = await listRuns(config);
  const run = runId ? runs.find((r) => r.runId === runId) : runs[0];
  const id = runId ?? run?.runId;
  if (!id) throw new Error(`no runs recorded in the lake ${config.lakeRoot} — run \`cpa run\` first`);
  // Only committed run records count: a run whose record was never committed (a crash mid-write) is unknown.
  if (!run)
    throw new Error(`no run ${id} recorded in the lake ${config.lakeRoot} — \`cpa status\` lists the recorded ones`);
  const steps = await withLakeReader(config, config.lakeRoot, async (conn, lake) =>
    (
      await queryRows(
        conn,
        `select metrics from ${qualified(lake, 'meta', 'step_metrics')} where run_id = $run
         qualify row_number() over (partition by step order by recorded_at desc) = 1`,
        { run: id },
      )
    ).map((r) => JSON.parse(String(r.metrics)) as StepMetrics),
  );
  const order = (s: StepMetrics): number => ['bronze', 'silver', 'quality', 'gold', 'serving'].indexOf(s.layer);
  steps.sort((a, b) => order(a) - order(b) || (a.step < b.step ? -1 : 1));
  const highlights: string[] = [];
  for (const s of steps) {
    const q = Object.values(s.quarantined).reduce((a, b) => a + b, 0);
    if (s.layer === 'silver' && s.rowsIn > 0) {
      highlights.push(`${s.step}: ${((q / s.rowsIn) * 100).toFixed(2)}% quarantined (${q} of ${s.rowsIn})`);
    }
    if (s.step === 'silver.usage_events' && s.rowsOut > 0) {
      highlights.push(
        `silver.usage_events: anomaly rate ${(((s.extra.anomaly_any ?? 0) / s.rowsOut) * 100).toFixed(2)}% ` +
          `(zscore ${s.extra.anomaly_zscore ?? 0}, mad ${s.extra.anomaly_mad ?? 0}, pctl ${s.extra.anomaly_pctl ?? 0})`,
      );
    }
  }
  return { runId: id, workflowId: run?.workflowId, status: run?.status, steps, highlights };
}

export interface StaleTable {
  table: string;
  considered: number;
  stale: StalePartition[];
}

/**
 * `cpa status --stale`: per model (silver, then gold, in dependency order), the partitions the next run would
 * recompute now and why (`new`, `code`, `range`, or the input whose version changed). Downstream partitions whose
 * inputs the next run changes become stale during that run; they are not listed until then.
 */
export async function staleReport(config: Config, table?: string): Promise<StaleTable[]> {
  const models = [...SILVER_MODELS, ...GOLD_MARTS].filter(
    (m) => !table || table === m.table || table === `${m.layer}.${m.table}`,
  );
  if (table && models.length === 0) throw new Error(`unknown table ${table} (a silver or gold table of the registry)`);
  if (!isS3(config.lakeRoot) && !fs.existsSync(catalogPath(config.lakeRoot))) {
    throw new Error(`no lake at ${config.lakeRoot}`);
  }
  return withLakeReader(config, config.lakeRoot, async (conn, lake) => {
    const plans = await planModels(conn, lake, config, models);
    return models.map((m) => {
      const plan = plans.get(`${m.layer}.${m.table}`)!;
      return { table: `${m.layer}.${m.table}`, considered: plan.state.considered, stale: plan.state.stale };
    });
  });
}

/** `2025-08-01..2025-08-05, 2025-08-09` — consecutive dates folded into ranges. */
export function foldPartitions(parts: string[]): string {
  const out: string[] = [];
  let start: string | undefined;
  let prev: string | undefined;
  const next = (d: string): string => new Date(Date.parse(`${d}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
  const flush = (): void => {
    if (start) out.push(start === prev ? start : `${start}..${prev}`);
  };
  for (const p of [...parts].sort()) {
    if (/^\d{4}-\d{2}-\d{2}$/.test(p) && prev && /^\d{4}-\d{2}-\d{2}$/.test(prev) && next(prev) === p) {
      prev = p;
      continue;
    }
    flush();
    start = p;
    prev = p;
  }
  flush();
  return out.join(', ');
}
