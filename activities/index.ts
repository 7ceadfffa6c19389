import { ingestCsvSource, ingestEventFiles } from './bronze';
import type { ActivityDeps, RunTarget } from './common';
import { buildGold, buildSilver } from './models';
import { qualityGate, recordRun } from './quality';
import type { RunSummary } from './quality';

export type { ActivityDeps, RunTarget, StepMetrics } from './common';
export type { GateResult, RunSummary } from './quality';

/**
 * The worker calls this once with its dependencies; workflows import only the type of the result. Retries,
 * timeouts and heartbeats are set where the workflow proxies these functions.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    /** Bronze: one CSV snapshot, contract-checked; skipped when unchanged. */
    ingestCsvSource: (input: RunTarget & { table: string }) => ingestCsvSource(deps, input),
    /** Bronze: pending (or the given) events files, deduplicated by event_id. Heartbeats per batch. */
    ingestEventFiles: (input: RunTarget & { keys?: string[] }) => ingestEventFiles(deps, input),
    /** Silver: one conformed table plus its quarantine. */
    buildSilver: (input: RunTarget & { table: string }) => buildSilver(deps, input),
    /** Gold: one mart, checked against its column contract. */
    buildGold: (input: RunTarget & { mart: string }) => buildGold(deps, input),
    /** Quality gate between silver and gold; non-retryable failure when a limit is crossed. */
    qualityGate: (input: Parameters<typeof qualityGate>[1]) => qualityGate(deps, input),
    /** Run record under _meta/runs. */
    recordRun: (summary: RunSummary) => recordRun(deps, summary),
  };
}

export type Activities = ReturnType<typeof createActivities>;
