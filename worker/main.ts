import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import type { LogLevel, LogMetadata, NativeConnection, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { DuckDBInstance } from '@duckdb/node-api';
import type { Config } from '../config/env';
import { createActivities } from '../activities';
import { createDuckDb } from '../lake/duckdb';
import { EVENTS_WRITER_ACTIVITIES, eventsTaskQueue } from '../workflows/task-queues';

let runtimeInstalled = false;

/** The SDK's logger minus the expected notice of the activity-only events worker ("No workflows registered"). */
class OperatorLogger extends DefaultLogger {
  override log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (message.startsWith('No workflows registered')) return;
    super.log(level, message, meta);
  }
}

/** Keeps the SDK's Rust core quiet unless asked: CLI output is for the operator. */
export function installRuntime(level: Config['logLevel']): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new OperatorLogger(level === 'debug' ? 'DEBUG' : level === 'info' ? 'WARN' : 'ERROR'),
    telemetryOptions: { logging: { forward: {}, filter: level === 'debug' ? 'INFO' : 'ERROR' } },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** Bundles the workflow code once per process (webpack; a second or two). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quietLogger });
  return bundle;
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (m: string) => console.warn(m),
  error: (m: string) => console.error(m),
};

/**
 * Creates the pipeline worker: one DuckDB instance for the process, activities built from it once
 * (`createActivities({ config, db })`), workflows from the bundled `workflows/` module — plus the single-writer
 * worker of the events queue (workflows/task-queues.ts): the activities that write bronze usage_events and the
 * speed layer, one at a time (maxConcurrentActivityTaskExecutions = 1). The single-writer guarantee holds per
 * process: run one worker process per lake (docs/decisions.md).
 */
export async function createWorker(
  config: Config,
  connection: NativeConnection,
  opts: { db?: DuckDBInstance; maxConcurrentActivityTaskExecutions?: number } = {},
): Promise<{ worker: PipelineWorkers; db: DuckDBInstance }> {
  const db = opts.db ?? (await createDuckDb(config));
  const activities: Record<string, unknown> = createActivities({
    config,
    db,
    listSearchAttributes: () => customSearchAttributes(connection, config.temporal.namespace),
  });
  const writers = new Set<string>(EVENTS_WRITER_ACTIVITIES);
  const pick = (keep: (name: string) => boolean) =>
    Object.fromEntries(Object.entries(activities).filter(([k]) => keep(k)));
  const main = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...(config.temporal.workerIdentity ? { identity: config.temporal.workerIdentity } : {}),
    workflowBundle: await workflowBundle(),
    activities: pick((k) => !writers.has(k)),
    // DuckDB parallelises inside each activity; a few concurrent activities keep both cores busy.
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivityTaskExecutions ?? 4,
  });
  const events = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: eventsTaskQueue(config.temporal.taskQueue),
    ...(config.temporal.workerIdentity ? { identity: `${config.temporal.workerIdentity}/events` } : {}),
    activities: pick((k) => writers.has(k)),
    maxConcurrentActivityTaskExecutions: 1,
  });
  return { worker: new PipelineWorkers(main, events), db };
}

/**
 * The workers of one process, run and stopped together: the pipeline worker (workflows + activities) and the
 * events-queue writer. If one stops or fails, the other is shut down too, so a process never serves half the queues.
 */
export class PipelineWorkers {
  constructor(
    readonly main: Worker,
    readonly events: Worker,
  ) {}

  async run(): Promise<void> {
    const runs = [this.main.run(), this.events.run()];
    try {
      await Promise.race(runs);
    } finally {
      this.shutdown();
      await Promise.allSettled(runs);
    }
    await Promise.all(runs);
  }

  /** Starts a graceful shutdown of both (a no-op for a worker that is not running). */
  shutdown(): void {
    for (const w of [this.main, this.events]) {
      if (w.getState() === 'RUNNING') w.shutdown();
    }
  }

  /** Runs both until `fn` settles, then shuts them down; rejects if a worker fails first. */
  async runUntil<R>(fn: Promise<R> | (() => Promise<R>)): Promise<R> {
    const running = this.run();
    const stopped = running.then(() => {
      throw new Error('workers stopped before the promise completed');
    });
    try {
      return await Promise.race([typeof fn === 'function' ? fn() : fn, stopped]);
    } finally {
      this.shutdown();
      await running.catch(() => undefined);
      stopped.catch(() => undefined);
    }
  }
}

/** Names of the namespace's custom search attributes, as the worker's own connection sees them. */
export async function customSearchAttributes(connection: NativeConnection, namespace: string): Promise<string[]> {
  const res = await connection.operatorService.listSearchAttributes({ namespace });
  return Object.keys(res.customAttributes ?? {});
}
