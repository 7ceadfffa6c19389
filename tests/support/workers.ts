import { Worker } from '@temporalio/worker';
import type { NativeConnection } from '@temporalio/worker';
import { PipelineWorkers, workflowBundle } from '../../worker/main';
import { eventsTaskQueue } from '../../workflows/task-queues';

/**
 * Runs `fn` while the worker pair a real process runs (worker/main.ts createWorker) serves `activities` on
 * `taskQueue`: the pipeline worker with the prebuilt workflow bundle, and the single-writer events queue (one activity
 * at a time, workflows/task-queues.ts). For tests that put fake or instrumented activities behind real workflows.
 */
export async function withWorkerPair<T>(
  connection: NativeConnection,
  taskQueue: string,
  activities: object,
  fn: () => Promise<T>,
): Promise<T> {
  const main = await Worker.create({ connection, taskQueue, workflowBundle: await workflowBundle(), activities });
  const events = await Worker.create({
    connection,
    taskQueue: eventsTaskQueue(taskQueue),
    activities,
    maxConcurrentActivityTaskExecutions: 1,
  });
  return new PipelineWorkers(main, events).runUntil(fn());
}
