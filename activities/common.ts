import os from 'node:os';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { Config } from '../config/env';
import { aliasRows } from '../config/aliases';
import { ensureS3, HttpfsUnavailableError, queryRows, sqlIdent } from '../lake/duckdb';
import { isS3, storageFor, UnsafeKeyError } from '../lake/storage';
import type { Storage } from '../lake/storage';
import { attachLake, LakeUnavailableError, lakeColumns, lakeWrite, qualified } from '../lake/lakehouse';
import { asUuid, emitLineage, lakeTakesLineage, runEvent, stepRunId } from '../lake/lineage';
import type { StepFigures, StepLineage } from '../lake/lineage';
import type { ColumnDef } from '../config/contracts';
import { crashPoint } from '../lake/crash-points';
import { checkLakeOutsideLanding, LakeUnusableError } from '../lake/preflight';
import { FencedOff, withFence } from '../lake/fence';
import { lakeLease } from '../lake/lease';
import { latestAttempt, registerAttempt } from '../lake/attempts';
import type { HolderGone } from '../lake/lease';
import { modelVariables } from '../lake/incremental';
import type { AttachedLake, LakeContext } from '../lake/lakehouse';
import { KEEPALIVE_MS } from '../workflows/timeouts';
import { ratesOf } from '../lake/step-metrics';
import type { NullCounts } from '../lake/step-metrics';

export { ratesOf };
export type { NullCounts };

/** What every activity gets from the worker: config and the process's single DuckDB instance. */
export interface ActivityDeps {
  config: Config;
  db: DuckDBInstance;
  /** Custom search attribute names of the worker's namespace (the worker asks its connection); absent = none. */
  listSearchAttributes?: () => Promise<string[]>;
  /** Whether a lease holder's workflow run is closed or unknown to the server (the worker asks it); absent = never. */
  holderGone?: HolderGone;
}

/** The lake a run works on. Part of every activity input so a run can target another lake than the worker default. */
export interface RunTarget {
  lake: string;
  landing: string;
  runId: string;
}

/** Metrics every activity returns (numbers only, never rows); they show up in the Temporal UI's history. */
export interface StepMetrics {
  step: string;
  layer: 'bronze' | 'silver' | 'gold' | 'quality' | 'serving';
  table: string;
  rowsIn: number;
  rowsOut: number;
  quarantined: Record<string, number>;
  nullRates: Record<string, number>;
  partitionsWritten: number;
  partitionsUnchanged: number;
  /** SPEC §9a: partitions the step considered, recomputed (stale or forced) and whose content changed. */
  partitionsConsidered: number;
  partitionsRecomputed: number;
  partitionsChanged: number;
  durationMs: number;
  extra: Record<string, number>;
  /** Partition values this step rewrote or deleted (e.g. usage_date values); serving reloads exactly these. */
  changedPartitions?: string[];
  /** Set by a build of some partitions (a chunk): its exact null counts, from which a table's null rates add up. */
  nullCounts?: NullCounts;
}

export const ErrorTypes = {
  /** Input breaks its contract (header, types, unsafe key): retrying cannot help. */
  ContractViolation: 'ContractViolation',
  /** The quality gate between silver and gold failed. */
  QualityGateFailed: 'QualityGateFailed',
  /** A model's SQL does not bind or parse: a code defect, not a transient fault. */
  SqlError: 'SqlError',
} as const;

/** Bad input: fails the run on purpose with a message naming file, line and column. */
export function contractViolation(message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, ErrorTypes.ContractViolation, details);
}

/**
 * Classifies errors in one place: DuckDB parser/binder/catalog errors are defects → non-retryable; everything else
 * (I/O, S3, timeouts) is rethrown as is and retried by the activity's retry policy.
 */
export function classify(err: unknown, what: string): unknown {
  if (err instanceof ApplicationFailure) return err;
  // A file key outside the landing root is bad input, not a transient fault.
  if (err instanceof UnsafeKeyError) return contractViolation(err.message);
  // Not `instanceof Error`: errors of the native DuckDB binding may come from another realm (e.g. under jest).
  const m = (err as { message?: unknown } | null)?.message;
  const msg = typeof m === 'string' ? m : String(err);
  // Conversion and out-of-range errors are data-dependent: retrying the same input fails the same way. `what` names
  // the table and the partition(s) being built, so the message says where to look.
  if (/^(Parser|Binder|Catalog|Conversion|Invalid Input|Out of Range) Error/i.test(msg)) {
    return ApplicationFailure.nonRetryable(`${what}: ${msg.split('\n')[0]}`, ErrorTypes.SqlError);
  }
  return err;
}

/** A warning in the activity's log (the worker's log, with the workflow and activity ids); stderr outside one. */
export function warn(message: string, attrs: Record<string, unknown> = {}): void {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    /* not in an activity context */
  }
  if (ctx) ctx.log.warn(message, attrs);
  else console.warn(message);
}

/**
 * A lake that cannot be attached or used (a file, not writable, inside the landing, a missing extension) does not
 * come back by retrying: the run fails at once with the message naming the path.
 */
function lakeFailure(e: unknown): unknown {
  if (e instanceof LakeUnavailableError || e instanceof LakeUnusableError) {
    return ApplicationFailure.nonRetryable(e.message, e.name);
  }
  return e;
}

/** Heartbeats when running inside a Temporal activity; a no-op when called directly (tests, CLI). */
export function heartbeat(details?: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    /* not in an activity context */
  }
}

/**
 * Runs `fn` heartbeating every `everyMs` (a no-op outside an activity): the heartbeat says "this worker is alive",
 * so a short heartbeatTimeout detects a killed worker quickly even while one long DuckDB statement runs.
 */
export async function withKeepalive<T>(fn: () => Promise<T>, everyMs = KEEPALIVE_MS): Promise<T> {
  let inActivity = true;
  try {
    Context.current();
  } catch {
    inActivity = false;
  }
  if (!inActivity) return fn();
  const timer = setInterval(() => heartbeat(), everyMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Workflows that hold the lake lease while their activities write (workflows/lake-lease.ts). */
const LEASED_WORKFLOWS = new Set(['dailyPipeline', 'lakeMaintenance']);

/**
 * Wraps a lake-writing activity: keepalive heartbeats, and the commit fence of lake/fence.ts. A retried attempt
 * first registers itself (lake/attempts.ts: `_meta/attempts/`, and `meta.attempts` for the record); before each commit, an attempt checks that it was not cancelled (a
 * heartbeat that learnt the activity timed out), that no later attempt of the same activity has registered, and —
 * for the workflows that hold the lake lease — that its workflow run still holds it. An attempt failing a check
 * rolls back and fails with `FencedOff`; its result would be discarded by Temporal anyway. Outside an activity
 * (CLI, tests) `fn` runs as is.
 */
export async function fencedActivity<T>(deps: ActivityDeps, lakeRoot: string, fn: () => Promise<T>): Promise<T> {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return fn();
  }
  const { info } = ctx;
  if (!info.workflowExecution) return withKeepalive(fn); // a standalone activity: no workflow run to fence against
  const me = {
    workflowId: info.workflowExecution.workflowId,
    runId: info.workflowExecution.runId,
    activityId: info.activityId,
    attempt: info.attempt,
  };
  const what = `${info.activityType} attempt ${me.attempt} of ${me.workflowId}`;
  return withKeepalive(async () => {
    const lake = await attachLake(deps.db, deps.config, lakeRoot).catch((e: unknown) => {
      throw lakeFailure(e);
    });
    const attempts = qualified(lake, 'meta', 'attempts');
    if (me.attempt > 1) {
      const worker = deps.config.temporal.workerIdentity ?? `${os.hostname()}:${process.pid}`;
      await registerAttempt(deps.config, lakeRoot, {
        ...me,
        worker,
        startedAt: new Date().toISOString(),
      });
      // The queryable history of retries (the fence itself reads the object above).
      const conn = await deps.db.connect();
      try {
        await lakeWrite(conn, lake, async () => async () => {
          await conn.run(`insert into ${attempts} values ($wf, $run, $act, $attempt, $worker, now())`, {
            wf: me.workflowId,
            run: me.runId,
            act: me.activityId,
            attempt: me.attempt,
            worker,
          });
        });
      } finally {
        conn.closeSync();
      }
    }
    const lease = LEASED_WORKFLOWS.has(info.workflowType ?? '') ? lakeLease(lakeRoot, deps.config) : undefined;
    const fence = {
      async check(): Promise<void> {
        if (ctx.cancellationSignal.aborted) {
          throw new FencedOff(
            `${what} was cancelled (${String(ctx.cancellationSignal.reason ?? 'cancelled')}): not committing`,
          );
        }
        const latest = await latestAttempt(deps.config, lakeRoot, me.runId, me.activityId);
        if (latest > me.attempt) throw new FencedOff(`${what} was superseded by attempt ${latest}: not committing`);
        if (lease) {
          const holder = (await lease.read())?.holder;
          if (!holder || holder.runId !== me.runId) {
            const by = holder ? `${holder.workflowId} (run ${holder.runId})` : 'nobody';
            throw new FencedOff(`${what}: its run no longer holds the lake lease (held by ${by}): not committing`);
          }
        }
      },
    };
    return withFence(fence, fn);
  });
}

/** Interrupts DuckDB when Temporal cancels the activity, so a cancelled run stops burning CPU. */
export function onCancel(conn: DuckDBConnection): () => void {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    return () => undefined;
  }
  let done = false;
  ctx.cancelled.catch(() => {
    if (!done) conn.interrupt();
  });
  return () => {
    done = true;
  };
}

/** Opens a connection prepared for the models: UTC, alias table and helper macros, run variables. */
export async function openLake(deps: ActivityDeps, target: RunTarget): Promise<LakeContext & { storage: Storage }> {
  // A run may target an S3 lake or landing the worker was not started with: DuckDB gets httpfs on first use.
  if (isS3(target.lake) || isS3(target.landing)) {
    await ensureS3(deps.db, deps.config).catch((e: unknown) => {
      // A missing extension does not come back by retrying: fail the run with the message that says what to do.
      if (e instanceof HttpfsUnavailableError) throw ApplicationFailure.nonRetryable(e.message, e.name);
      throw e;
    });
  }
  // A lake inside the (immutable) landing is refused before anything is created there.
  try {
    checkLakeOutsideLanding(target.lake, target.landing);
  } catch (e) {
    throw lakeFailure(e);
  }
  const lake = await attachLake(deps.db, deps.config, target.lake).catch((e: unknown) => {
    // A missing extension, a lake that is a file or unwritable, an S3 lake without a catalog: retrying does not help.
    throw lakeFailure(e);
  });
  const conn = await deps.db.connect();
  await prepareModelConnection(conn, deps.config, target.runId);
  return { conn, lake, storage: storageFor(target.lake, deps.config), lakeRoot: target.lake, runId: target.runId };
}

/** What every model's SQL expects of its connection: UTC, the alias table and macros, the model variables. */
export async function prepareModelConnection(conn: DuckDBConnection, config: Config, runId: string): Promise<void> {
  const vars: Record<string, string> = {
    run_id: `'${runId.replace(/'/g, "''")}'`,
    ...modelVariables(config),
  };
  delete vars.email_salt;
  // One call for the statements (each call is a round trip through the binding; ~25 of them per step).
  await conn.run(
    [
      `set TimeZone = 'UTC'`,
      `create or replace temp table _aliases (kind varchar, token varchar, canonical varchar)`,
      `create or replace temp macro blank(s) as s is null or regexp_full_match(s, '\\s*')`,
      // norm_token mirrors normToken() in config/aliases.ts.
      `create or replace temp macro norm_token(s) as replace(replace(lower(trim(s)), '_', '-'), ' ', '-')`,
      `create or replace temp macro canon(k, s) as (select canonical from _aliases a where a.kind = k and a.token = norm_token(s))`,
      ...Object.entries(vars).map(([k, v]) => `set variable ${sqlIdent(k)} = ${v}`),
    ].join(';\n'),
  );
  const app = await conn.createAppender('_aliases', 'main', 'temp');
  for (const r of aliasRows()) {
    app.appendVarchar(r.kind);
    app.appendVarchar(r.token);
    app.appendVarchar(r.canonical);
    app.endRow();
  }
  app.closeSync();
  await conn.run(`set variable email_salt = $salt`, { salt: config.emailSalt });
}

/** Runs `fn` on a fresh connection with the target's lake attached (for small meta reads and writes). */
export async function withLake<T>(
  deps: ActivityDeps,
  lakeRoot: string,
  fn: (conn: DuckDBConnection, lake: AttachedLake) => Promise<T>,
): Promise<T> {
  if (isS3(lakeRoot)) {
    await ensureS3(deps.db, deps.config).catch((e: unknown) => {
      if (e instanceof HttpfsUnavailableError) throw ApplicationFailure.nonRetryable(e.message, e.name);
      throw e;
    });
  }
  const lake = await attachLake(deps.db, deps.config, lakeRoot).catch((e: unknown) => {
    throw lakeFailure(e);
  });
  const conn = await deps.db.connect();
  try {
    return await fn(conn, lake);
  } finally {
    conn.closeSync();
  }
}

/** Null rate (0..1, 6 dp) of each column of a temp table. */
export async function nullRates(
  conn: DuckDBConnection,
  table: string,
  columns: string[],
): Promise<Record<string, number>> {
  return ratesOf([await nullCounts(conn, table, columns)]);
}

/** Rows and null counts per column of `table`: the exact figures behind {@link nullRates}, summable over chunks. */
export async function nullCounts(conn: DuckDBConnection, table: string, columns: string[]): Promise<NullCounts> {
  if (columns.length === 0) return { rows: 0, nulls: {} };
  const exprs = columns.map((c) => `count(*) filter (where ${sqlIdent(c)} is null)::bigint as ${sqlIdent(c)}`);
  const [row] = await queryRows(conn, `select count(*)::bigint as _rows, ${exprs.join(', ')} from ${sqlIdent(table)}`);
  return { rows: Number(row._rows), nulls: Object.fromEntries(columns.map((c) => [c, Number(row[c])])) };
}

/**
 * Appends a step's metrics as a row of `meta.step_metrics`, inside the caller's lake write (a retried step appends
 * again; the latest row per run and step is the step's record).
 */
export async function persistMetrics(
  conn: DuckDBConnection,
  lake: AttachedLake,
  target: Pick<RunTarget, 'runId'>,
  m: StepMetrics,
): Promise<void> {
  await conn.run(
    `insert into ${qualified(lake, 'meta', 'step_metrics')} values ($run, $step, $layer, $table, $metrics, now())`,
    { run: target.runId, step: m.step, layer: m.layer, table: m.table, metrics: JSON.stringify(m) },
  );
  crashPoint('in-transaction:step_metrics');
}

export function emptyMetrics(step: string, layer: StepMetrics['layer'], table: string): StepMetrics {
  return {
    step,
    layer,
    table,
    rowsIn: 0,
    rowsOut: 0,
    quarantined: {},
    nullRates: {},
    partitionsWritten: 0,
    partitionsUnchanged: 0,
    partitionsConsidered: 0,
    partitionsRecomputed: 0,
    partitionsChanged: 0,
    durationMs: 0,
    extra: {},
  };
}

/**
 * The lineage hook every step activity goes through (SPEC §13): an OpenLineage START before the step, COMPLETE
 * with the output table's schema and the step's figures after it, FAIL with the error message when it throws —
 * then the original error is rethrown unchanged. Events go out in the background (lake/lineage.ts): writing or
 * posting them never fails or holds up the step. All attempts of one activity share one OpenLineage run id
 * (workflow run id + activity id); the parent run facet names the Temporal workflow.
 */
export async function withLineage<T>(
  deps: ActivityDeps,
  target: RunTarget,
  step: StepLineage,
  fn: () => Promise<T>,
  figures: (result: T) => StepFigures | undefined = (r) => {
    const m = r as Partial<StepFigures> | undefined;
    return typeof m?.rowsOut === 'number' ? { rowsOut: m.rowsOut, nullRates: m.nullRates ?? {} } : undefined;
  },
): Promise<T> {
  let info: Context['info'] | undefined;
  try {
    info = Context.current().info;
  } catch {
    /* not in an activity context: the CLI or a test calling the activity directly */
  }
  const workflowRun = info?.workflowExecution?.runId ?? target.runId;
  const runId = stepRunId(workflowRun, info?.activityId ?? step.job);
  const parent = { runId: asUuid(workflowRun), job: info?.workflowType ?? 'cpa' };
  // START goes to the server at once, but into the lake only once the step settled: a lake the step refused
  // (inside the landing, uncreatable) gets nothing, and a fresh one exists by then.
  let settled!: () => void;
  const fileGate = new Promise<boolean>((resolve) => {
    settled = () => resolve(lakeTakesLineage(target.lake, target.landing));
  });
  const opts = {
    config: deps.config,
    lakeRoot: target.lake,
    pipelineRunId: target.runId,
    warn: (m: string) => warn(m),
    fileGate,
  };
  const base = { runId, step, parent };
  const startTime = new Date().toISOString();
  emitLineage(opts, runId, async () => runEvent({ ...base, eventType: 'START', eventTime: startTime }));
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    settled();
    const eventTime = new Date().toISOString();
    const message = (e as { message?: unknown } | null)?.message;
    const error = {
      message: typeof message === 'string' ? message : String(e),
      stack: typeof (e as Error | null)?.stack === 'string' ? (e as Error).stack : undefined,
    };
    emitLineage(opts, runId, async () => runEvent({ ...base, eventType: 'FAIL', eventTime, error }));
    throw e;
  }
  settled();
  const eventTime = new Date().toISOString();
  const f = figures(result);
  const out = f && { rowsOut: f.rowsOut, nullRates: { ...f.nullRates } }; // a copy: the caller owns the result
  emitLineage(opts, runId, async () => {
    const columns = step.table ? await outputColumns(deps, target.lake, step.table).catch(() => undefined) : undefined;
    return runEvent({ ...base, eventType: 'COMPLETE', eventTime, figures: out, columns });
  });
  return result;
}

/** The output table's columns (a catalog lookup, no data read); undefined when it was never written. */
async function outputColumns(
  deps: ActivityDeps,
  lakeRoot: string,
  t: { layer: string; table: string },
): Promise<ColumnDef[] | undefined> {
  return withLake(deps, lakeRoot, (conn, lake) => lakeColumns(conn, lake, t.layer, t.table));
}
