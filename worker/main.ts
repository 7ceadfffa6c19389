import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import type { NativeConnection, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { DuckDBInstance } from '@duckdb/node-api';
import type { Config } from '../config/env';
import { createActivities } from '../activities';
import { createDuckDb } from '../lake/duckdb';

let runtimeInstalled = false;

/** Keeps the SDK's Rust core quiet unless asked: CLI output is for the operator. */
export function installRuntime(level: Config['logLevel']): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger(level === 'debug' ? 'DEBUG' : level === 'info' ? 'WARN' : 'ERROR'),
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
 * (`createActivities({ config, db })`), workflows from the bundled `workflows/` module.
 */
export async function createWorker(
  config: Config,
  connection: NativeConnection,
  opts: { db?: DuckDBInstance; maxConcurrentActivityTaskExecutions?: number } = {},
): Promise<{ worker: Worker; db: DuckDBInstance }> {
  const db = opts.db ?? (await createDuckDb(config));
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    workflowBundle: await workflowBundle(),
    activities: createActivities({ config, db }),
    // DuckDB parallelises inside each activity; a few concurrent activities keep both cores busy.
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivityTaskExecutions ?? 4,
  });
  return { worker, db };
}
