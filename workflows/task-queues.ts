/**
 * Task queues. Bronze usage_events (its partitions and its file manifest) and the speed-layer store are shared
 * state that every events file writes, so every activity that writes them runs on one dedicated queue served by a
 * single-slot worker (worker/main.ts): the writes are serialized without a lock. See docs/decisions.md,
 * "Single writer for bronze events and the speed layer". Pure: imported by workflow code and by the worker.
 */

/** The single-writer queue that belongs to a pipeline task queue. */
export function eventsTaskQueue(taskQueue: string): string {
  return `${taskQueue}-events`;
}

/** Activities registered only on the events queue (and never on the main one, so a mis-routed call fails loudly). */
export const EVENTS_WRITER_ACTIVITIES = ['ingestEventFiles', 'updateSpeedLayer', 'maintainLake'] as const;
