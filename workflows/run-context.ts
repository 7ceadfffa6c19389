import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import {
  ApplicationFailure,
  proxyLocalActivities,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { isIsoDate, scheduledLogicalDate } from './logical-date';

/**
 * What makes a run findable in the Web UI (SPEC §9): search attributes CpaLogicalDate / CpaRunKind / CpaStatus
 * (Keyword; registered by `cpa dev` and the embedded dev server, see worker/temporal.ts SEARCH_ATTRIBUTES) plus memo.
 * Only attributes the namespace has registered are upserted — upserting an unknown one would fail every workflow
 * task — so a server without them still runs everything, findable by memo and workflow id only.
 */

/** Kinds of pipeline runs. */
export const RunKinds = {
  /** Started by an operator (`cpa run`, the Web UI). */
  manual: 'manual',
  /** Started by the `daily-pipeline` schedule. */
  scheduled: 'scheduled',
  /** A child of a `backfill` workflow. */
  backfill: 'backfill',
  /** Per-file ingestion of one landed events file (`ingestEventFile`, started by the watcher or `cpa ingest-file`). */
  stream: 'stream',
} as const;
export type RunKind = (typeof RunKinds)[keyof typeof RunKinds];
/** The kinds a dailyPipeline run can have. */
export type PipelineRunKind = Exclude<RunKind, 'stream'>;

/** Values of CpaStatus. */
export const RunStatuses = { running: 'running', succeeded: 'succeeded', failed: 'failed' } as const;
export type RunStatus = (typeof RunStatuses)[keyof typeof RunStatuses];

/** The custom search attributes (names and types must match worker/temporal.ts SEARCH_ATTRIBUTES). */
export const CpaSearchAttributes = {
  logicalDate: defineSearchAttributeKey('CpaLogicalDate', SearchAttributeType.KEYWORD),
  runKind: defineSearchAttributeKey('CpaRunKind', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('CpaStatus', SearchAttributeType.KEYWORD),
  /** The landing key of the file a `stream` run ingests (`usage_events_stream/events_part_0007.jsonl`). */
  fileKey: defineSearchAttributeKey('CpaFileKey', SearchAttributeType.KEYWORD),
} as const;

/** Set by the server on workflows a schedule starts: the action's nominal time (not when it actually started). */
const scheduledStartKey = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);

const probe = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1s', maximumAttempts: 3 },
});

/** The schedule's nominal start time of this run, when a schedule started it. */
export function scheduledStartTime(): Date | undefined {
  const info = workflowInfo();
  try {
    const typed = info.typedSearchAttributes.get(scheduledStartKey);
    if (typed) return new Date(typed);
  } catch {
    /* fall back to the untyped view below */
  }
  // Servers that send the value without type metadata only show it in the untyped view.
  const raw = (info.searchAttributes ?? {}).TemporalScheduledStartTime as unknown;
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v instanceof Date) return v;
  if (typeof v === 'string' && !Number.isNaN(Date.parse(v))) return new Date(v);
  return undefined;
}

/**
 * Resolves the logical date and kind of a dailyPipeline run. An explicit runDate always wins. Without one, a run a
 * schedule started (or any run of kind 'scheduled') processes the day before its scheduled start's local date in
 * `timeZone` (the schedule's, carried in the action's input); otherwise the run has no date ('all').
 */
export function resolveRun(input: { runDate?: string | null; kind?: PipelineRunKind; timeZone?: string }): {
  logicalDate: string | null;
  kind: PipelineRunKind;
  scheduledAt?: Date;
} {
  const scheduledAt = scheduledStartTime();
  const kind: PipelineRunKind = input.kind ?? (scheduledAt ? RunKinds.scheduled : RunKinds.manual);
  if (input.runDate) {
    // An impossible date (2025-02-30) would run on no day at all: refused, whoever started the run.
    if (!isIsoDate(input.runDate)) {
      throw ApplicationFailure.nonRetryable(`runDate ${input.runDate} is not a date (YYYY-MM-DD)`, 'ContractViolation');
    }
    return { logicalDate: input.runDate, kind, scheduledAt };
  }
  if (kind !== RunKinds.scheduled) return { logicalDate: null, kind, scheduledAt };
  const at = scheduledAt ?? workflowInfo().runStartTime;
  return { logicalDate: scheduledLogicalDate(at, input.timeZone ?? 'UTC'), kind, scheduledAt };
}

/**
 * Updates the run's status (search attribute when registered, memo always); `logicalDate` re-tags the date (a stream
 * run learns the days of its file only once bronze has read it).
 */
export type MarkRun = (status: RunStatus, memo?: Record<string, unknown>, logicalDate?: string) => void;

/**
 * Tags the run: CpaLogicalDate (a date, 'all' or a range), CpaRunKind, CpaStatus = running, plus memo. Returns the
 * function that moves CpaStatus on.
 */
export async function makeFindable(tags: {
  /** Absent for a stream run until it knows its file's days (then passed to the returned MarkRun). */
  logicalDate?: string;
  kind: RunKind;
  fileKey?: string;
  memo?: Record<string, unknown>;
}): Promise<MarkRun> {
  const wanted = Object.values(CpaSearchAttributes).map((k) => k.name);
  const known = new Set(await probe.knownSearchAttributes(wanted));
  const upsert = (pairs: SearchAttributeUpdatePair[]): void => {
    const usable = pairs.filter((p) => known.has(p.key.name));
    if (usable.length > 0) upsertSearchAttributes(usable);
  };
  upsert([
    ...(tags.logicalDate !== undefined ? [{ key: CpaSearchAttributes.logicalDate, value: tags.logicalDate }] : []),
    { key: CpaSearchAttributes.runKind, value: tags.kind },
    { key: CpaSearchAttributes.status, value: RunStatuses.running },
    ...(tags.fileKey !== undefined ? [{ key: CpaSearchAttributes.fileKey, value: tags.fileKey }] : []),
  ]);
  upsertMemo({
    ...(tags.logicalDate !== undefined ? { logicalDate: tags.logicalDate } : {}),
    kind: tags.kind,
    status: RunStatuses.running,
    ...(tags.fileKey !== undefined ? { fileKey: tags.fileKey } : {}),
    ...tags.memo,
  });
  return (status, memo, logicalDate) => {
    upsert([
      { key: CpaSearchAttributes.status, value: status },
      ...(logicalDate !== undefined ? [{ key: CpaSearchAttributes.logicalDate, value: logicalDate }] : []),
    ]);
    upsertMemo({ status, ...(logicalDate !== undefined ? { logicalDate } : {}), ...memo });
  };
}
