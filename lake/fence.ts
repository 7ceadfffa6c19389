import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Commit fencing. A worker that lost its activity (killed heartbeats, a network partition, a heartbeat timeout
 * under load) may still be running DuckDB work while Temporal has handed the activity to another worker. Such a
 * zombie must not commit: every lake write transaction ({@link lakeWrite} in lakehouse.ts) calls the ambient fence
 * of the activity it runs in just before COMMIT, and a fence that finds the attempt superseded throws, which rolls
 * the transaction back. The activity wrapper (activities/common.ts `fencedActivity`) installs the fence; code that
 * runs outside an activity (CLI, tests) has none and commits as before.
 */
export interface CommitFence {
  /** Throws {@link FencedOff} when this attempt may no longer commit. */
  check(): Promise<void>;
}

/** This attempt lost the right to write: another attempt of the activity (or another run) owns the work now. */
export class FencedOff extends Error {
  override name = 'FencedOff';
}

const current = new AsyncLocalStorage<CommitFence>();

/** Runs `fn` with `fence` as the fence of every lake commit it makes (through awaits and nested calls). */
export function withFence<T>(fence: CommitFence, fn: () => Promise<T>): Promise<T> {
  return current.run(fence, fn);
}

/** Checks the ambient fence, if any; called by lakeWrite right before COMMIT. */
export async function checkFence(): Promise<void> {
  await current.getStore()?.check();
}
