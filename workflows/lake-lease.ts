import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  proxyActivities,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';

/**
 * Mutual exclusion of lake writers (lake/lease.ts): two dailyPipeline runs on one lake would publish manifests from
 * different bronze snapshots at the same time, so every run holds the lake lease from its first write to its last.
 */

/**
 * Waiting for the lease is the acquire activity's retry policy: a retryable `LakeLocked` failure per attempt, backoff
 * 1 s → 5 s, for up to a day (a scheduled run may queue behind a long backfill). Retries add no history events, and
 * the UI shows the pending activity's attempt count and the current holder as its last failure.
 */
const acquire = proxyActivities<Activities>({
  // One attempt is a few file or object operations: a worker killed inside one is retried after this long.
  startToCloseTimeout: '15 seconds',
  scheduleToCloseTimeout: '24 hours',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 1.5,
    maximumInterval: '5s',
    // The 24 h schedule-to-close bound ends the wait first (~17,300 attempts at 5 s); this cap is a backstop.
    maximumAttempts: 20_000,
    nonRetryableErrorTypes: ['ContractViolation', 'LakeUnusable'],
  },
});

/** Renew and release: quick; a renewal that keeps failing is retried at the next tick, inside the TTL. */
const lease = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '10s',
    maximumAttempts: 5,
    nonRetryableErrorTypes: ['LakeLeaseLost'],
  },
});

/** Release: retried for about a minute (1 s → 10 s, ten attempts), so a short storage outage at the end is waited out. */
const release = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
});

function leaseLost(e: unknown): e is ActivityFailure {
  return e instanceof ActivityFailure && e.cause instanceof ApplicationFailure && e.cause.type === 'LakeLeaseLost';
}

/**
 * Runs `fn` holding the lake lease: acquire (waiting while another run holds it), renew every TTL/3 in the
 * background, release at the end whatever happened (also on cancellation). When a renewal finds the lease taken
 * over, `fn` is cancelled and the run fails with `LakeLeaseLost` rather than keep writing.
 */
export async function withLakeLease<T>(lake: string, fn: () => Promise<T>, landing?: string): Promise<T> {
  const info = workflowInfo();
  const input = { lake, holder: { workflowId: info.workflowId, runId: info.runId } };
  const grant = await acquire.acquireLakeLease.executeWithOptions({ summary: 'lake lease: acquire' }, [
    landing === undefined ? input : { ...input, landing },
  ]);
  let lost: ActivityFailure | undefined;
  const work = new CancellationScope();
  const keepAlive = new CancellationScope();
  // Settles when cancelled (or on a lost lease); a handler is attached at once so no rejection goes unhandled.
  const renewing = keepAlive
    .run(async () => {
      for (;;) {
        await sleep(grant.renewEveryMs);
        try {
          await lease.renewLakeLease.executeWithOptions({ summary: 'lake lease: renew' }, [input]);
        } catch (e) {
          if (isCancellation(e)) throw e;
          if (leaseLost(e)) {
            lost = e;
            work.cancel();
            return;
          }
          // Storage briefly unavailable: the next tick retries; the TTL leaves room for two misses.
        }
      }
    })
    .catch(() => undefined);
  try {
    return await work.run(fn);
  } catch (err) {
    if (lost) throw ApplicationFailure.nonRetryable((lost.cause as ApplicationFailure).message, 'LakeLeaseLost');
    throw err;
  } finally {
    keepAlive.cancel();
    await renewing;
    // A release that cannot reach storage for its whole retry window (about a minute) does not turn the run's
    // outcome into a failure: the lease then ends on its TTL, and the next run waits for that at most.
    await CancellationScope.nonCancellable(() =>
      release.releaseLakeLease.executeWithOptions({ summary: 'lake lease: release' }, [input]),
    ).catch((e: unknown) => {
      if (isCancellation(e)) throw e;
      log.warn('lake lease not released; it expires on its TTL', { lake, error: String(e) });
    });
  }
}
