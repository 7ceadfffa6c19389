import { ApplicationFailure } from '@temporalio/common';
import { lakeLease } from '../lake/lease';
import { checkLakeOutsideLanding, LakeUnusableError, prepareLocalLake } from '../lake/preflight';
import { isS3 } from '../lake/storage';
import type { LeaseHolder, LeaseRecord } from '../lake/lease';
import type { ActivityDeps } from './common';

/** Run coordination: the lake write lease (lake/lease.ts) and which custom search attributes the server knows. */

export const LeaseErrorTypes = {
  /** Another run holds the lake lease: retryable, the activity's retry policy is the wait with backoff. */
  LakeLocked: 'LakeLocked',
  /** This run's lease expired and was taken over (or deleted): non-retryable, the run must stop writing. */
  LakeLeaseLost: 'LakeLeaseLost',
  /** The lake is a file, cannot be created, is not writable or lies inside the landing: non-retryable. */
  LakeUnusable: 'LakeUnusable',
} as const;

export interface LeaseInput {
  lake: string;
  holder: LeaseHolder;
  /** The run's landing, when known: a lake inside it is refused before the lease object is written there. */
  landing?: string;
}

export interface LeaseGrant {
  lease: LeaseRecord;
  /** How often the holder must renew: a third of the TTL, so two renewals may fail before the lease expires. */
  renewEveryMs: number;
  tookOverFrom?: LeaseHolder;
}

const describe = (r: LeaseRecord): string =>
  `${r.holder.workflowId} (run ${r.holder.runId}) until ${r.expiresAt} (renewed ${r.renewedAt} on ${r.host})`;

/**
 * Acquires the lake lease for `holder`, or fails with a retryable `LakeLocked` failure naming the holder: the caller's
 * retry policy turns that into waiting with backoff, visible in the UI as the pending activity's attempt and last
 * failure. Re-entrant for the same run, so a retry after a lost completion still succeeds. A lease whose holder's
 * workflow run has closed (terminated, timed out, or unknown to the server: an embedded dev server that was
 * restarted) is taken over at once rather than after its TTL.
 */
export async function acquireLakeLease(deps: ActivityDeps, input: LeaseInput): Promise<LeaseGrant> {
  const ttl = deps.config.lakeLease.ttlSeconds;
  // This activity waits for the lease by retrying for up to a day: a lake no retry can fix fails at once instead.
  try {
    if (input.landing !== undefined) checkLakeOutsideLanding(input.lake, input.landing);
    if (!isS3(input.lake)) await prepareLocalLake(input.lake);
  } catch (e) {
    if (e instanceof LakeUnusableError) throw ApplicationFailure.nonRetryable(e.message, LeaseErrorTypes.LakeUnusable);
    throw e;
  }
  const res = await lakeLease(input.lake, deps.config).acquire(input.holder, ttl, deps.holderGone);
  if (!res.acquired) {
    throw ApplicationFailure.retryable(
      `lake ${input.lake} is locked by ${describe(res.heldBy)}`,
      LeaseErrorTypes.LakeLocked,
      {
        heldBy: res.heldBy,
      },
    );
  }
  return { lease: res.lease, renewEveryMs: Math.floor((ttl * 1000) / 3), tookOverFrom: res.tookOverFrom };
}

/** Extends the lease; `LakeLeaseLost` (non-retryable) when this run no longer holds it. */
export async function renewLakeLease(deps: ActivityDeps, input: LeaseInput): Promise<LeaseRecord> {
  const res = await lakeLease(input.lake, deps.config).renew(input.holder, deps.config.lakeLease.ttlSeconds);
  if (!res.renewed) {
    const by = res.heldBy ? `now held by ${describe(res.heldBy)}` : 'the lease object is gone';
    throw ApplicationFailure.nonRetryable(
      `lake lease of ${input.holder.workflowId} on ${input.lake} was lost: ${by}`,
      LeaseErrorTypes.LakeLeaseLost,
    );
  }
  return res.lease;
}

/** Releases the lease if this run holds it (idempotent: false when it does not, e.g. on a retry). */
export async function releaseLakeLease(deps: ActivityDeps, input: LeaseInput): Promise<boolean> {
  return lakeLease(input.lake, deps.config).release(input.holder);
}

const SA_CACHE_MS = 60_000;

/**
 * Which of `names` are registered custom search attributes of the worker's namespace. Workflows upsert only those,
 * so a server without them (a plain `temporal server start-dev`, the time-skipping test server) still runs the
 * pipeline. Never fails: an unanswerable question means "none".
 */
export function searchAttributeProbe(deps: ActivityDeps): (names: string[]) => Promise<string[]> {
  let cache: { at: number; names: Set<string> } | undefined;
  return async (names) => {
    if (!deps.listSearchAttributes) return [];
    if (!cache || Date.now() - cache.at > SA_CACHE_MS) {
      try {
        cache = { at: Date.now(), names: new Set(await deps.listSearchAttributes()) };
      } catch {
        cache = { at: Date.now(), names: new Set() };
      }
    }
    const known = cache.names;
    return names.filter((n) => known.has(n));
  };
}
