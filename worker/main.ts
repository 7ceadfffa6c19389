import path from 'node:path';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { IllegalStateError } from '@temporalio/common';
import type { LogLevel, LogMetadata, NativeConnection, WorkflowBundleOption } from '@temporalio/worker';
import type { DuckDBInstance } from '@duckdb/node-api';
import type { Config } from '../config/env';
import { REPO_ROOT } from '../config/paths';
import { prebuiltWorkflowBundle } from '../config/prebuilt';
import { createActivities } from '../activities';
import { createDuckDb, withWork } from '../lake/duckdb';
import { flushLineage, LINEAGE_FLUSH_MS } from '../lake/lineage';
import { EVENTS_WRITER_ACTIVITIES, eventsTaskQueue } from '../workflows/task-queues';
import { reapDeadWorkerActivities, workerIdentity } from './reaper';

/** How often a running worker looks for activities of dead workers on its host. */
const REAP_EVERY_MS = 10_000;

let runtimeInstalled = false;

/**
 * The SDK's logger minus the expected notice of the activity-only events worker ("No workflows registered"), and with
 * its multi-line dump of a failed activity attempt (the error with its stack and every field) cut to one line naming
 * the activity, the attempt, the workflow and the reason; `CPA_LOG_LEVEL=debug` keeps the full dump.
 */
class OperatorLogger extends DefaultLogger {
  constructor(
    level: LogLevel,
    private readonly full: boolean,
  ) {
    super(level);
  }

  override log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (message.startsWith('No workflows registered')) return;
    if ((message === 'Activity failed' || message === 'Workflow failed') && !this.full && meta) {
      const m = meta as Record<string, unknown>;
      const err = m.error;
      // A superseded or cancelled attempt that declined to commit (lake/fence.ts) is the expected end of a step of a
      // run that already failed or moved on: not news for the operator.
      if ((err as { name?: unknown } | undefined)?.name === 'FencedOff') return;
      const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
      super.log(
        level,
        message === 'Activity failed'
          ? `activity ${String(m.activityType ?? '?')} attempt ${String(m.attempt ?? '?')} of ` +
              `${String(m.workflowId ?? '?')} failed: ${reason}`
          : `workflow ${String(m.workflowId ?? '?')} failed: ${reason}`,
      );
      return;
    }
    super.log(level, message, meta);
  }
}

/** Keeps the SDK's Rust core quiet unless asked: CLI output is for the operator. */
export function installRuntime(level: Config['logLevel']): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({
      logger: new OperatorLogger(level === 'debug' ? 'DEBUG' : level === 'info' ? 'WARN' : 'ERROR', level === 'debug'),
      telemetryOptions: { logging: { forward: {}, filter: level === 'debug' ? 'INFO' : 'ERROR' } },
    });
  } catch (e) {
    // Installed already by the embedding process (the test suite's quiet setup): keep that one.
    if (!(e instanceof IllegalStateError)) throw e;
  }
}

let bundle: Promise<WorkflowBundleOption> | undefined;

/**
 * The workflow code for Worker.create: the bundle `npm run build` wrote to dist/ while it is fresh (config/prebuilt.ts),
 * else bundled here once per process (webpack; seconds on two cores).
 */
export function workflowBundle(): Promise<WorkflowBundleOption> {
  const prebuilt = prebuiltWorkflowBundle();
  if (prebuilt) return Promise.resolve({ codePath: prebuilt });
  bundle ??= bundleWorkflowCode({ workflowsPath: path.join(REPO_ROOT, 'workflows', 'index.ts'), logger: quietLogger });
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
  const created: Record<string, unknown> = createActivities({
    config,
    db,
    listSearchAttributes: () => customSearchAttributes(connection, config.temporal.namespace),
    holderGone: (holder) => workflowRunClosed(connection, config.temporal.namespace, holder),
  });
  // Every activity is a unit of work on the instance: DuckDB's thread count changes back only between them.
  const activities = Object.fromEntries(
    Object.entries(created).map(([k, fn]) => [
      k,
      typeof fn === 'function' ? (...args: unknown[]) => withWork(db, () => fn(...args)) : fn,
    ]),
  );
  const identity = workerIdentity(config.temporal.workerIdentity);
  const writers = new Set<string>(EVENTS_WRITER_ACTIVITIES);
  const pick = (keep: (name: string) => boolean) =>
    Object.fromEntries(Object.entries(activities).filter(([k]) => keep(k)));
  const main = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    identity,
    workflowBundle: await workflowBundle(),
    activities: pick((k) => !writers.has(k)),
    // DuckDB parallelises inside each activity; a few concurrent activities keep both cores busy.
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivityTaskExecutions ?? 4,
  });
  const events = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: eventsTaskQueue(config.temporal.taskQueue),
    identity: `${identity}/events`,
    activities: pick((k) => writers.has(k)),
    maxConcurrentActivityTaskExecutions: 1,
  });
  const reap = () =>
    reapDeadWorkerActivities(connection, config.temporal.namespace, config.temporal.taskQueue, identity).catch(() => 0);
  return { worker: new PipelineWorkers(main, events, reap), db };
}

/**
 * The workers of one process, run and stopped together: the pipeline worker (workflows + activities) and the
 * events-queue writer. If one stops or fails, the other is shut down too, so a process never serves half the queues.
 */
export class PipelineWorkers {
  constructor(
    readonly main: Worker,
    readonly events: Worker,
    /** Fails the running activities of dead workers on this host (worker/reaper.ts); run at start and periodically. */
    private readonly reap?: () => Promise<number>,
  ) {}

  async run(): Promise<void> {
    const runs = [this.main.run(), this.events.run()];
    let reaper: NodeJS.Timeout | undefined;
    // The reap in flight, awaited before run() returns: the caller may close the connection right after.
    let reaping: Promise<unknown> = Promise.resolve();
    const reapOnce = (): void => {
      if (this.reap) reaping = reaping.then(() => this.reap?.()).catch(() => undefined);
    };
    if (this.reap) {
      reapOnce();
      reaper = setInterval(reapOnce, REAP_EVERY_MS);
      reaper.unref();
    }
    try {
      await Promise.race(runs);
    } finally {
      clearInterval(reaper);
      this.shutdown();
      await Promise.allSettled(runs);
      await reaping;
      // The last steps' lineage events are still going out in the background: let them land (bounded), before the
      // caller closes the DuckDB instance or exits.
      await flushLineage(LINEAGE_FLUSH_MS);
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

/**
 * True when the workflow run is closed, or the server does not know it (NOT_FOUND: e.g. it ran on an embedded dev
 * server that has since been restarted without its state). False when it is running or the server cannot say.
 */
export async function workflowRunClosed(
  connection: NativeConnection,
  namespace: string,
  run: { workflowId: string; runId: string },
): Promise<boolean> {
  try {
    const res = await connection.workflowService.describeWorkflowExecution({
      namespace,
      execution: { workflowId: run.workflowId, runId: run.runId },
    });
    const status = res.workflowExecutionInfo?.status;
    return status !== undefined && status !== null && Number(status) !== RUNNING;
  } catch (e) {
    return (e as { code?: number }).code === GRPC_NOT_FOUND;
  }
}

/** temporal.api.enums.v1.WorkflowExecutionStatus RUNNING; gRPC status NOT_FOUND. */
const RUNNING = 1;
const GRPC_NOT_FOUND = 5;

/** Names of the namespace's custom search attributes, as the worker's own connection sees them. */
export async function customSearchAttributes(connection: NativeConnection, namespace: string): Promise<string[]> {
  const res = await connection.operatorService.listSearchAttributes({ namespace });
  return Object.keys(res.customAttributes ?? {});
}
