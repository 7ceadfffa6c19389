import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type { DuckDBInstance } from '@duckdb/node-api';
import type { Config } from '../config/env';
import { isS3 } from '../lake/storage';
import type { RunSummary } from '../activities';
import type { DailyPipelineInput } from '../workflows';
import { createDuckDb } from '../lake/duckdb';
import { createWorker, installRuntime } from '../worker/main';
import type { PipelineWorkers } from '../worker/main';
import { clientFor, isServerUp, nativeConnectionFor, startDevServer } from '../worker/temporal';
import type { TemporalEndpoint } from '../worker/temporal';
import { followResult, OutcomeUnknown, rideOutOutage } from '../worker/follow';
import { rootMessage } from '../workflows/failures';
import { PipelineFailed } from './kit';

/** Workflow ids carry meaning: `daily-pipeline/2025-08-01`, or `daily-pipeline/all` for everything landed. */
export function dailyWorkflowId(runDate?: string | null): string {
  return `daily-pipeline/${runDate ?? 'all'}`;
}

/** Where `cpa dev` keeps the dev server's SQLite state: under the lake's _meta/ when the lake is local. */
export function devDbFile(config: Config): string {
  if (!isS3(config.lakeRoot)) return path.join(config.lakeRoot, '_meta', 'temporal', 'dev.db');
  return path.join(process.env.CPA_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'cpa'), 'dev.db');
}

export interface Session {
  client: Client;
  endpoint: TemporalEndpoint;
  worker?: PipelineWorkers;
  db?: DuckDBInstance;
  close(): Promise<void>;
}

/**
 * Connects to Temporal the way the embedded default promises: TEMPORAL_ADDRESS when set (a remote worker does
 * the work unless `withWorker`; on a loopback address an in-process worker runs by default); else a running `cpa dev` server on the dev port; else an ephemeral dev server
 * started here. Outside the remote case an in-process worker runs the activities.
 */
export async function openSession(config: Config, opts: { withWorker?: boolean } = {}): Promise<Session> {
  installRuntime(config.logLevel);
  const remote = config.temporal.address;
  // A server on this machine (`npm run stack:up`) has no worker of its own: run one here unless told not to.
  const wantWorker = opts.withWorker ?? (remote ? /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(remote) : true);
  // The worker's DuckDB instance (extensions loaded) is made while the dev server starts: start-up is the longer of
  // the two, not their sum.
  const dbReady = wantWorker ? createDuckDb(config) : undefined;
  dbReady?.catch(() => undefined);
  let endpoint: TemporalEndpoint;
  try {
    if (remote) endpoint = { address: remote, started: false, stop: async () => undefined };
    else {
      const devAddress = `127.0.0.1:${config.temporal.devPort}`;
      endpoint = (await isServerUp(config, devAddress, 800))
        ? { address: devAddress, started: false, stop: async () => undefined }
        : await startDevServer(config);
    }
  } catch (e) {
    (await dbReady?.catch(() => undefined))?.closeSync();
    throw e;
  }
  const { client, close: closeClient } = await clientFor(config, endpoint.address);
  let worker: PipelineWorkers | undefined;
  let db: DuckDBInstance | undefined;
  let workerRun: Promise<void> | undefined;
  let nativeConn: Awaited<ReturnType<typeof nativeConnectionFor>> | undefined;
  if (dbReady) {
    try {
      nativeConn = await nativeConnectionFor(config, endpoint.address);
      ({ worker, db } = await createWorker(config, nativeConn, { db: await dbReady }));
    } catch (e) {
      // E.g. DuckDB cannot load httpfs for an S3 lake: stop what was started, or the dev server outlives the CLI.
      (await dbReady.catch(() => undefined))?.closeSync();
      await nativeConn?.close().catch(() => undefined);
      await closeClient().catch(() => undefined);
      await endpoint.stop();
      throw e;
    }
    workerRun = worker.run();
  }
  return {
    client,
    endpoint,
    worker,
    db,
    async close() {
      if (worker) {
        worker.shutdown();
        await workerRun;
      }
      await nativeConn?.close();
      db?.closeSync();
      await closeClient();
      await endpoint.stop();
    },
  };
}

/**
 * Starts (or attaches to) `dailyPipeline` and waits for its result. Re-running the same date re-uses the workflow id:
 * a finished run is started afresh (idempotent by construction), a running one is attached to. While waiting, an
 * unreachable server is retried (worker/follow.ts); the result is the workflow's, never the connection's.
 */
export async function runDaily(
  session: Session,
  config: Config,
  input: DailyPipelineInput,
  onProgress?: (running: string[], done: number) => void,
): Promise<RunSummary> {
  const workflowId = dailyWorkflowId(input.runDate);
  let handle;
  try {
    // Start and first describe ride out a server outage like the wait below (OutcomeUnknown, exit 3, past
    // CPA_CLI_OUTAGE_SECONDS): both are idempotent (USE_EXISTING attaches to the run a lost reply started).
    handle = await rideOutOutage(session.client, config, workflowId, () =>
      session.client.workflow.start('dailyPipeline', {
        taskQueue: config.temporal.taskQueue,
        workflowId,
        // Serving (Cassandra) is loaded when this CLI is configured for it, unless the caller decided explicitly.
        args: [{ ...input, serve: input.serve ?? Boolean(config.cassandra) }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        memo: { logicalDate: input.runDate ?? 'all', kind: input.kind ?? 'manual', lake: input.lake },
        // The UI's summary line (SPEC §13): kind, logical date, lake.
        staticSummary: `${input.kind ?? 'manual'} run · ${input.runDate ?? 'all dates'} · ${input.lake}`,
      }),
    );
    const started = handle;
    // The id names the date, not the lake: never silently attach to a run of the same id on another lake.
    const running = await rideOutOutage(session.client, config, workflowId, () => started.describe());
    const runningLake = (running.memo as { lake?: string } | undefined)?.lake;
    if (runningLake && runningLake !== input.lake) {
      throw new Error(
        `${workflowId} is already running for lake ${runningLake}; wait for it or cancel it in the Web UI`,
      );
    }
  } catch (e) {
    if (e instanceof OutcomeUnknown) throw e;
    throw new PipelineFailed(`could not start ${workflowId}: ${(e as Error).message}`);
  }
  let stop = false;
  // Step names (the activities' summaries, SPEC §13) by activity id, read from the history when an id is new. An
  // activity scheduled without a summary is remembered too (as undefined), so it does not refetch the history at
  // every poll.
  const steps = new Map<string, string | undefined>();
  const learnSteps = async (ids: string[]): Promise<void> => {
    if (ids.every((id) => steps.has(id))) return;
    const history = await session.client.withDeadline(Date.now() + 2000, () => handle.fetchHistory());
    for (const e of history.events ?? []) {
      const id = e.activityTaskScheduledEventAttributes?.activityId;
      if (!id) continue;
      const summary = e.userMetadata?.summary;
      let name: string | undefined;
      try {
        name = summary ? String(defaultPayloadConverter.fromPayload(summary)) : undefined;
      } catch {
        /* not a summary we wrote */
      }
      steps.set(id, name);
    }
  };
  const poll = (async () => {
    let last = '';
    while (!stop && onProgress) {
      await new Promise((r) => setTimeout(r, 500));
      if (stop) break;
      try {
        // Bounded: during an outage the SDK would retry one describe for ~20 s and hold up the exit.
        const d = await session.client.withDeadline(Date.now() + 2000, () => handle.describe());
        const raw = d.raw.pendingActivities ?? [];
        await learnSteps(raw.map((a) => a.activityId ?? '')).catch(() => undefined);
        // Sorted: the server lists pending activities in no fixed order, and a line is printed only on a change.
        const pending = raw.map((a) => activityLabel(steps.get(a.activityId ?? '') ?? a.activityType?.name, a)).sort();
        const key = pending.join(',');
        if (key !== last) {
          last = key;
          onProgress(pending, Number(d.historyLength));
        }
      } catch {
        /* progress is best effort */
      }
    }
  })();
  try {
    // Rides out a server outage up to CPA_CLI_OUTAGE_SECONDS, then throws OutcomeUnknown (exit 3).
    return await followResult<RunSummary>(session.client, config, workflowId, handle.firstExecutionRunId, {
      embedded: session.endpoint.started,
    });
  } catch (e) {
    if (e instanceof WorkflowFailedError) throw new PipelineFailed(`${workflowId} failed: ${rootMessage(e)}`);
    throw e;
  } finally {
    stop = true;
    await poll;
  }
}

function activityLabel(name: string | null | undefined, a: { attempt?: number | null }): string {
  const attempt = a.attempt && a.attempt > 1 ? ` (attempt ${a.attempt})` : '';
  return `${name ?? 'activity'}${attempt}`;
}
