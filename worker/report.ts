import type { Config } from '../config/env';
import { joinUri } from '../config/env';
import { storageFor } from '../lake/storage';
import type { RunSummary, StepMetrics } from '../activities';

export interface QualityReport {
  runId: string;
  workflowId?: string;
  status?: string;
  steps: StepMetrics[];
  highlights: string[];
}

/** Latest run records from `_meta/runs/` on any backend, newest first. */
export async function listRuns(config: Config): Promise<RunSummary[]> {
  const storage = storageFor(config.lakeRoot, config);
  const objs = await storage.list(joinUri(config.lakeRoot, '_meta', 'runs'));
  const runs = await Promise.all(
    objs.filter((o) => o.key.endsWith('.json')).map(async (o) => JSON.parse((await storage.readBytes(o.uri)).toString('utf8')) as RunSummary),
  );
  return runs.sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1));
}

/**
 * The quality report of one run (default: the latest): every step's persisted metrics from
 * `_meta/quality/run_id=<id>/`, plus highlights (quarantine and anomaly rates) an operator reads first.
 */
export async function qualityReport(config: Config, runId?: string): Promise<QualityReport> {
  const storage = storageFor(config.lakeRoot, config);
  const runs = await listRuns(config);
  const run = runId ? runs.find((r) => r.runId === runId) : runs[0];
  const id = runId ?? run?.runId;
  if (!id) throw new Error(`no runs recorded under ${config.lakeRoot}/_meta/runs — run \`cpa run\` first`);
  const objs = await storage.list(joinUri(config.lakeRoot, '_meta', 'quality', `run_id=${id}`));
  const steps = await Promise.all(
    objs.map(async (o) => JSON.parse((await storage.readBytes(o.uri)).toString('utf8')) as StepMetrics),
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
