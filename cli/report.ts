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
  logicalDate?: string | null;
  kind?: string;
  startedAt?: string;
  error?: string;
  notes?: string[];
  /** The quality gate's checks (absent when the run failed before the gate). */
  gate?: RunSummary['gate'];
  /** The run's HTML report (`cpa report`). */
  report?: RunSummary['report'];
  steps: StepMetrics[];
  highlights: string[];
}

/** One logical date's latest run, as `cpa status` shows it. */
export interface DateStatus {
  /** The run's logical date: a date, `all` (no date) or a backfill's `<from>..<to>`. */
  logicalDate: string;
  workflowId: string;
  runId: string;
  kind: string;
  status: string;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  steps: number;
  /** Partitions whose content the run changed (SPEC §9a), over all steps. */
  partitionsChanged: number;
  /** Runs recorded for the date (the latest is shown). */
  runs: number;
  error?: string;
  notes?: string[];
  snapshots?: RunSummary['snapshots'];
  report?: RunSummary['report'];
}

/** A run record as a `cpa status` row. */
export function dateStatus(r: RunSummary, runs = 1): DateStatus {
  return {
    logicalDate: r.logicalDate ?? 'all',
    workflowId: r.workflowId,
    runId: r.runId,
    kind: r.kind,
    status: r.status,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    seconds: Math.round(Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000,
    steps: r.steps.length,
    partitionsChanged: r.steps.reduce((n, s) => n + (s.partitionsChanged ?? 0), 0),
    runs,
    ...(r.error ? { error: r.error } : {}),
    ...(r.notes ? { notes: r.notes } : {}),
    ...(r.snapshots ? { snapshots: r.snapshots } : {}),
    ...(r.report ? { report: r.report } : {}),
  };
}

/**
 * Current state per logical date: the latest run of each date (by start time), newest date first — a date whose
 * failed run was re-run successfully shows the success. `date` lists every run of that date instead; `failed` keeps
 * the dates whose latest run failed.
 */
export function statusByDate(runs: RunSummary[], opts: { date?: string; failed?: boolean } = {}): DateStatus[] {
  const newest = [...runs].sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
  if (opts.date) {
    const of = newest.filter((r) => (r.logicalDate ?? 'all') === opts.date);
    return of.map((r) => dateStatus(r, of.length)).filter((d) => !opts.failed || d.status === 'failed');
  }
  const byDate = new Map<string, RunSummary[]>();
  for (const r of newest) {
    const d = r.logicalDate ?? 'all';
    byDate.set(d, [...(byDate.get(d) ?? []), r]);
  }
  return [...byDate.entries()]
    .map(([, rs]) => dateStatus(rs[0], rs.length))
    .filter((d) => !opts.failed || d.status === 'failed')
    .sort((a, b) => (a.logicalDate < b.logicalDate ? 1 : a.logicalDate > b.logicalDate ? -1 : 0));
}

/** Which run `cpa quality` / `cpa report` mean: a run id, the latest run of a workflow id or of a date, or the latest. */
export interface RunSelector {
  runId?: string;
  workflowId?: string;
  date?: string;
}

/** The run a selector names, newest first among matches; an error naming what was asked when there is none. */
export function selectRun(runs: RunSummary[], sel: RunSelector, lakeRoot: string): RunSummary {
  const newest = [...runs].sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
  if (newest.length === 0) throw new Error(`no runs recorded in the lake ${lakeRoot} — run \`cpa run\` first`);
  const hint = '— `cpa status` lists the recorded ones';
  if (sel.runId) {
    const r = newest.find((x) => x.runId === sel.runId);
    if (!r) throw new Error(`no run ${sel.runId} recorded in the lake ${lakeRoot} ${hint}`);
    return r;
  }
  if (sel.workflowId) {
    const r = newest.find((x) => x.workflowId === sel.workflowId);
    if (!r) throw new Error(`no run of workflow ${sel.workflowId} recorded in the lake ${lakeRoot} ${hint}`);
    return r;
  }
  if (sel.date) {
    const r = newest.find((x) => (x.logicalDate ?? 'all') === sel.date);
    if (!r) throw new Error(`no run for date ${sel.date} recorded in the lake ${lakeRoot} ${hint}`);
    return r;
  }
  return newest[0];
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
export async function qualityReport(config: Config, sel: RunSelector | string = {}): Promise<QualityReport> {
  const runs = await listRuns(config);
  // Only committed run records count: a run whose record was never committed (a crash mid-write) is unknown.
  const run = selectRun(runs, typeof sel === 'string' ? { runId: sel } : sel, config.lakeRoot);
  const id = run.runId;
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
  return {
    runId: id,
    workflowId: run.workflowId,
    status: run.status,
    logicalDate: run.logicalDate ?? 'all',
    kind: run.kind,
    startedAt: run.startedAt,
    ...(run.error ? { error: run.error } : {}),
    ...(run.notes ? { notes: run.notes } : {}),
    ...(run.gate ? { gate: run.gate } : {}),
    ...(run.report ? { report: run.report } : {}),
    steps,
    highlights,
  };
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
