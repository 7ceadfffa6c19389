import { ingestCsvSource, ingestEventFiles } from './bronze';
import { fencedActivity, withKeepalive, withLineage } from './common';
import { holdCatalog } from '../lake/lakehouse';
import { stepLineage } from '../lake/lineage';
import type { ActivityDeps, RunTarget, StepMetrics } from './common';
import { buildGold, buildSilver, dateData, planWave } from './models';
import type { ModelTarget } from './models';
import { qualityGate, recordRun } from './quality';
import type { RunSummary } from './quality';
import { loadServing, loadServingReport, recordServingRun } from './serving';
import type { LoadServingInput } from './serving';
import { acquireLakeLease, releaseLakeLease, renewLakeLease, searchAttributeProbe } from './runs';
import type { LeaseInput } from './runs';
import { notifyAlerts, updateSpeedLayer } from './speed';
import { maintainLake } from './maintenance';
import { writeQualityReport } from './report';
import type { MaintainLakeInput } from './maintenance';
import type { SpeedAlert, SpeedUpdateInput } from './speed';

export type { ActivityDeps, RunTarget, StepMetrics } from './common';
export type { GateResult, RunSummary } from './quality';
export type { LoadServingInput, ServingReport, TableResult } from './serving';
export type { LeaseGrant, LeaseInput } from './runs';
export type { SpeedAlert, SpeedUpdateInput, SpeedUpdateResult } from './speed';
export type { MaintainLakeInput, MaintenanceReport } from './maintenance';
export type { ReportResult } from './report';
export type { ChunkPlan, WavePlan } from './models';

/**
 * The worker calls this once with its dependencies; workflows import only the type of the result. Retries and
 * timeouts are set where the workflow proxies these functions; every activity heartbeats (keepalive), so the
 * workflows' short heartbeat timeout (workflows/timeouts.ts) detects a killed worker in seconds.
 */
export function createActivities(deps: ActivityDeps) {
  const knownSearchAttributes = searchAttributeProbe(deps);
  // Every lake writer: keepalive heartbeats plus the commit fence (a superseded attempt never commits).
  // Local lakes: the SQLite catalog held open while the step runs (lake/lakehouse.ts holdCatalog).
  const fenced = <T>(input: { lake: string }, fn: () => Promise<T>) =>
    fencedActivity(deps, input.lake, () => holdCatalog(deps.db, deps.config, input.lake, fn));
  // Every pipeline step: OpenLineage START / COMPLETE / FAIL around it (lake/lineage.ts), never failing it.
  const traced = <T>(
    input: RunTarget,
    step: Parameters<typeof stepLineage>[0],
    fn: () => Promise<T>,
    figures?: (r: T) => StepMetrics | undefined,
  ) => withLineage(deps, input, stepLineage(step, input, deps.config), fn, figures);
  return {
    /** Bronze: one CSV snapshot, contract-checked; skipped when unchanged. */
    ingestCsvSource: (input: RunTarget & { table: string }) =>
      traced(input, { kind: 'csv', table: input.table }, () => fenced(input, () => ingestCsvSource(deps, input))),
    /**
     * Bronze: pending (or the given) events files, deduplicated by event_id. Events queue only (single writer);
     * heartbeats per batch and every few seconds (keepalive).
     */
    ingestEventFiles: (input: RunTarget & { keys?: string[] }) =>
      traced(input, { kind: 'events' }, () => fenced(input, () => ingestEventFiles(deps, input))),
    /** Speed layer: one file's windows, late events and alerts. Events queue only; keepalive heartbeats. */
    updateSpeedLayer: (input: SpeedUpdateInput) =>
      traced(
        input,
        { kind: 'speed' },
        () => fenced(input, () => updateSpeedLayer(deps, input)),
        (r) => r.metrics,
      ),
    /** Alert delivery: log line + optional webhook POST (at least once, Idempotency-Key = alert id). */
    notifyAlerts: (input: { alerts: SpeedAlert[] }) => withKeepalive(() => notifyAlerts(deps, input)),
    /** Silver: one conformed table plus its quarantine. */
    planWave: (input: ModelTarget & { layer: 'silver' | 'gold'; tables: string[] }) =>
      withKeepalive(() => planWave(deps, input)),
    /** What bronze holds for one logical date (usage events of the day); read-only. */
    dateData: (input: { lake: string; date: string }) => withKeepalive(() => dateData(deps, input)),
    buildSilver: (input: ModelTarget & { table: string }) =>
      traced(input, { kind: 'model', layer: 'silver', table: input.table }, () =>
        fenced(input, () => buildSilver(deps, input)),
      ),
    /** Gold: one mart, checked against its column contract. */
    buildGold: (input: ModelTarget & { mart: string }) =>
      traced(input, { kind: 'model', layer: 'gold', table: input.mart }, () =>
        fenced(input, () => buildGold(deps, input)),
      ),
    /** Quality gate between silver and gold; non-retryable failure when a limit is crossed. */
    qualityGate: (input: Parameters<typeof qualityGate>[1]) =>
      traced(
        input,
        { kind: 'gate', tables: input.silver.map((m) => m.table) },
        () => fenced(input, () => qualityGate(deps, input)),
        () => undefined,
      ),
    /** Run record under _meta/runs. */
    // Not fenced: a run that lost its lease still records its failure (an extra record is harmless: latest wins).
    recordRun: (summary: RunSummary) => withKeepalive(() => recordRun(deps, summary)),
    /** The run's HTML quality report under <lake>/_meta/reports/ (never fails: an error is returned). Keepalive. */
    // Not fenced: it writes one object outside the DuckLake catalog; a retry replaces it.
    writeQualityReport: (summary: RunSummary) => withKeepalive(() => writeQualityReport(deps, summary)),
    /** Serving: upsert the changed gold partitions into Cassandra and reconcile; keepalive heartbeats. */
    loadServing: (input: LoadServingInput) =>
      traced(input, { kind: 'serving' }, () => withKeepalive(() => loadServing(deps, input))),
    /** Serving for `cpa serving load` (workflow servingLoad): the same load, returning every table's figures. */
    loadServingReport: (input: LoadServingInput) => withKeepalive(() => loadServingReport(deps, input)),
    /** Serving: the run summary into Cassandra's pipeline_runs (upsert by run id). */
    recordServingRun: (summary: RunSummary) => withKeepalive(() => recordServingRun(deps, summary)),
    /** Lake write lease: acquire (retryable `LakeLocked` while another run holds it), renew, release. */
    acquireLakeLease: (input: LeaseInput) => acquireLakeLease(deps, input),
    renewLakeLease: (input: LeaseInput) => renewLakeLease(deps, input),
    releaseLakeLease: (input: LeaseInput) => releaseLakeLease(deps, input),
    /** Lake upkeep: expire old snapshots, merge small files, delete unreferenced files. Events queue only. */
    maintainLake: (input: MaintainLakeInput) => fenced(input, () => maintainLake(deps, input)),
    /** Which of the given custom search attributes the namespace has registered (cached a minute; never fails). */
    knownSearchAttributes: (names: string[]) => knownSearchAttributes(names),
  };
}

export type Activities = ReturnType<typeof createActivities>;
