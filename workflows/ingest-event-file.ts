import { proxyActivities, rootCause, upsertMemo, workflowInfo } from '@temporalio/workflow';
import type { Activities, StepMetrics } from '../activities';
import { failureHeadline, step } from './failures';
import { makeFindable, RunKinds, RunStatuses } from './run-context';
import { eventsTaskQueue } from './task-queues';
import { HEARTBEAT_TIMEOUT } from './timeouts';

/** Input of {@link ingestEventFile}: a key relative to the landing root (`usage_events_stream/….jsonl`). */
export interface IngestEventFileInput {
  fileKey: string;
  lake: string;
  landing: string;
  /** sha256 of the content the starter saw (informational: the id is derived from it; bronze hashes again). */
  contentSha256?: string;
}

export interface IngestEventFileResult {
  fileKey: string;
  bronze: StepMetrics;
  speed: StepMetrics;
  /** The watermark the file's events were judged against (null for the first file). */
  watermark: string | null;
  alerts: number;
  /** Set when the alerts could not be delivered to the webhook (they are recorded all the same). */
  alertDeliveryError?: string;
}

const nonRetryableErrorTypes = ['ContractViolation', 'SqlError', 'ServingRejected', 'WebhookRejected'];

/** Alert delivery: on the main queue, so a slow webhook never holds the single writer slot. */
const notify = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 10,
    nonRetryableErrorTypes,
  },
});

/**
 * SPEC §7/§9: one workflow per landed events file, id `ingest-file/<key>@<short sha256 of lake, key and content>`
 * (worker/watcher.ts ingestFileWorkflowId), tagged CpaRunKind = stream and CpaFileKey = key, started with a reuse policy that rejects a second run of a completed id — re-dropping the same
 * bytes is a no-op, changed bytes under the same name are a new file.
 *
 * Steps: bronze ingest of exactly this file, then the speed-layer update, both on the single-writer events queue
 * (task-queues.ts); then alert delivery. Retries: bounded, with backoff; the writer activities heartbeat every few
 * seconds, so a killed worker is noticed within the heartbeat timeout (timeouts.ts) and the activity re-runs elsewhere. Both
 * writers are idempotent (bronze dedups by event_id against itself and skips a file whose sha256 it has; the speed
 * layer replaces the file's contribution), so a re-run after a crash ends with the same outputs.
 */
export async function ingestEventFile(input: IngestEventFileInput): Promise<IngestEventFileResult> {
  const info = workflowInfo();
  const writer = proxyActivities<Activities>({
    taskQueue: eventsTaskQueue(info.taskQueue),
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '30s',
      maximumAttempts: 10,
      nonRetryableErrorTypes,
    },
  });
  const target = { lake: input.lake, landing: input.landing, runId: info.runId };
  // Findable in the Web UI beside the pipeline runs: CpaRunKind = stream, CpaFileKey = the key, CpaStatus; and
  // CpaLogicalDate = the file's usage days once bronze has read them.
  const mark = await makeFindable({
    kind: RunKinds.stream,
    fileKey: input.fileKey,
    memo: { lake: input.lake, ...(input.contentSha256 ? { contentSha256: input.contentSha256 } : {}) },
  });
  let bronze: StepMetrics;
  let speed: Awaited<ReturnType<typeof writer.updateSpeedLayer>>;
  try {
    bronze = await step(
      writer.ingestEventFiles,
      `bronze.usage_events ${input.fileKey}`,
      [{ ...target, keys: [input.fileKey] }],
      'bronze.usage_events',
    );
    const days = [...(bronze.changedPartitions ?? [])].filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d)).sort();
    if (days.length > 0) {
      mark(RunStatuses.running, undefined, days.length === 1 ? days[0] : `${days[0]}..${days[days.length - 1]}`);
    }
    speed = await step(
      writer.updateSpeedLayer,
      `speed layer ${input.fileKey}`,
      [{ ...target, fileKey: input.fileKey }],
      'speed.windows',
    );
  } catch (err) {
    mark(RunStatuses.failed, { error: failureHeadline(err) });
    throw err;
  }
  let alertDeliveryError: string | undefined;
  if (speed.alerts.length > 0) {
    try {
      await notify.notifyAlerts({ alerts: speed.alerts });
    } catch (err) {
      // The file is ingested and its alerts are recorded (lake, Cassandra, log lines): a webhook that keeps failing
      // must not fail the ingestion. It shows in the result and the memo.
      alertDeliveryError = rootCause(err) ?? String(err);
      upsertMemo({ alertDeliveryError });
    }
  }
  mark(RunStatuses.succeeded, { lateEvents: speed.metrics.extra.events_late ?? 0 });
  return {
    fileKey: input.fileKey,
    bronze,
    speed: speed.metrics,
    watermark: speed.watermark,
    alerts: speed.alerts.length,
    ...(alertDeliveryError ? { alertDeliveryError } : {}),
  };
}
