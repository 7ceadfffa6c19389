import os from 'node:os';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import Table from 'cli-table3';
import type { Config, RawEnv } from '../../config/env';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { checkServingTables, ReconciliationMismatch, runServing, servingStatus } from '../../activities/serving';
import type { ServingReport, TableResult } from '../../activities/serving';
import { connect, migrate, requireCassandra } from '../../lake/cassandra';
import { createDuckDb } from '../../lake/duckdb';
import { QUERIES, QUERY_IDS } from '../../serving/catalog';
import { openSource, runQuery } from '../../serving/queries';
import { mergeSpeedIntoQ1 } from '../../serving/speed-merge';
import type { Backend, QueryId, QueryParams, QueryResult, QuerySource } from '../../serving/queries';
import type { ServingLoadInput } from '../../workflows';
import { causes, rootMessage } from '../../workflows/failures';
import { servingLoadWorkflowId } from '../../workflows/names';
import { followResult, OutcomeUnknown } from '../../worker/follow';
import type { CommandKit } from '../kit';
import { PipelineFailed } from '../kit';
import { openSession } from '../run';

/**
 * Serving commands (SPEC §8, §10): `cpa serving migrate|load|reconcile|status`, `cpa query q1..q5` on Cassandra or
 * DuckDB over the gold Parquet, and `cpa bench-queries` (latency percentiles per query).
 */
export function register(program: Command, kit: CommandKit): void {
  const lakeOpt = (opts: { lake?: string }): Partial<RawEnv> => ({ CPA_LAKE_ROOT: opts.lake as never });
  const backendOpt = (v: string): Backend => {
    if (v !== 'cassandra' && v !== 'duckdb') throw new InvalidArgumentError('expected cassandra or duckdb');
    return v;
  };

  const serving = program.command('serving').description('serving layer (Cassandra): schema, loads, reconciliation');

  serving
    .command('migrate')
    .description('create the keyspace and tables if missing (idempotent) and record the schema version')
    .action(async () => {
      const cfg = kit.config();
      const settings = requireCassandra(cfg);
      const client = await connect(settings);
      try {
        const r = await migrate(client, settings);
        console.log(
          r.applied.length > 0
            ? `keyspace ${r.keyspace}: schema version ${r.fromVersion} → ${r.toVersion} (applied ${r.applied.join(', ')})`
            : `keyspace ${r.keyspace}: schema already at version ${r.toVersion}`,
        );
      } finally {
        await client.shutdown();
      }
    });

  serving
    .command('load')
    .description(
      'load gold into Cassandra: partitions changed since the last load (or everything with --full), then reconcile',
    )
    .option('--lake <dir>', 'lake root (path or s3://bucket/prefix)')
    .option('--full', 'reload every row of every table')
    .option('--table <name...>', 'only these serving tables')
    .option('--json', 'JSON output')
    .action(async (opts: { lake?: string; full?: boolean; table?: string[]; json?: boolean }) => {
      const cfg = kit.config(lakeOpt(opts));
      const settings = requireCassandra(cfg);
      checkServingTables(opts.table);
      await kit.checkStorage(cfg);
      const json = Boolean(opts.json);
      const started = Date.now();
      const input: ServingLoadInput = {
        lake: cfg.lakeRoot,
        landing: cfg.landingRoot,
        full: opts.full,
        tables: opts.table,
      };
      const report = await loadThroughTemporal(cfg, settings.keyspace, input, json).catch((e: unknown) =>
        reportMismatch(e, json),
      );
      if (!json) printProgress(report, started);
      printReport(report, json);
    });

  serving
    .command('reconcile')
    .description(
      'compare every serving table with its gold source (count, exact sum, checksum); exit 1 on a difference',
    )
    .option('--lake <dir>', 'lake root (path or s3://bucket/prefix)')
    .option('--table <name...>', 'only these serving tables')
    .option('--json', 'JSON output')
    .action(async (opts: { lake?: string; table?: string[]; json?: boolean }) => {
      const cfg = kit.config(lakeOpt(opts));
      requireCassandra(cfg);
      await kit.checkStorage(cfg);
      const report = await withDb(cfg, (db) =>
        runServing(
          { config: cfg, db },
          { lake: cfg.lakeRoot, landing: cfg.landingRoot, runId: `cli-reconcile-${process.pid}`, tables: opts.table },
          'verify',
          progress(Boolean(opts.json)),
        ),
      ).catch((e: unknown) => reportMismatch(e, Boolean(opts.json)));
      printReport(report, Boolean(opts.json));
    });

  serving
    .command('status')
    .description('what each serving table holds (rows, date range, last load) and the latest pipeline runs')
    .option('--json', 'JSON output')
    .action(async (opts: { json?: boolean }) => {
      const status = await servingStatus(kit.config());
      if (opts.json) {
        console.log(JSON.stringify(status, null, 2));
        return;
      }
      console.log(`keyspace ${status.keyspace}, schema version ${status.schemaVersion}`);
      const t = new Table({
        style: { head: [], border: [] },
        head: ['table', 'source', 'rows', 'from', 'to', 'last load scope', 'loaded at'],
      });
      for (const r of status.tables)
        t.push([r.table, r.source, r.rows, r.from, r.to, r.lastScope, r.loadedAt].map((v) => String(v ?? '')));
      console.log(t.toString());
      if (status.runs.length > 0) {
        const runs = new Table({
          style: { head: [], border: [] },
          head: ['started', 'workflow id', 'status', 'seconds', 'rows served', 'error'],
        });
        for (const r of status.runs) {
          runs.push(
            [r.startedAt, r.workflowId, r.status, r.seconds, r.rowsServed, String(r.error ?? '').slice(0, 60)].map(
              (v) => String(v ?? ''),
            ),
          );
        }
        console.log(runs.toString());
      }
    });

  program
    .command('query')
    .description('run dashboard query q1..q9 (SPEC §8, §6b) on Cassandra or on the gold Parquet with DuckDB')
    .argument('<query>', QUERY_IDS.map((q) => `${q}: ${QUERIES[q].title}`).join('; '))
    .option('--org <org_id>', 'organisation (required by q1, q2, q4, q5, q6, q8; optional filter for q3)')
    .option('--from <YYYY-MM-DD>', 'first day (default: 29 days before --to; q4: 11 months before)', kit.isoDate)
    .option('--to <YYYY-MM-DD>', 'last day (default: --as-of)', kit.isoDate)
    .option('--as-of <YYYY-MM-DD>', 'reference day (default: the latest date in the data)', kit.isoDate)
    .option('--top <n>', 'q2: number of services (default 5); q7: rows per model (default 10)', kit.integer)
    .option('--model <name>', 'q7: first_touch | linear (default: both)')
    .option('--month <YYYY-MM>', 'q9: billing month (default: the month of --as-of, else the latest month)')
    .option('--backend <name>', 'cassandra | duckdb (default: cassandra when configured, else duckdb)', backendOpt)
    .option('--lake <dir>', 'lake root for the duckdb backend')
    .option('--json', 'JSON output: {query, params, columns, rows}')
    .action(async (query: string, opts: QueryParams & { backend?: Backend; lake?: string; json?: boolean }) => {
      if (!QUERY_IDS.includes(query as QueryId))
        throw new InvalidArgumentError(`unknown query ${query} (expected q1..q9)`);
      const cfg = kit.config(lakeOpt(opts));
      const backend = opts.backend ?? (cfg.cassandra ? 'cassandra' : 'duckdb');
      if (backend === 'duckdb') await kit.checkStorage(cfg);
      const started = process.hrtime.bigint();
      const source = await openSource(cfg, backend);
      try {
        const t0 = process.hrtime.bigint();
        // q1 merges the speed layer in: batch rows for closed days, speed rows after (serving/speed-merge.ts).
        const result = await mergeSpeedIntoQ1(cfg, await runQuery(source, query as QueryId, opts));
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (opts.json) console.log(JSON.stringify(result, null, 2));
        else printResult(result, ms, Number(process.hrtime.bigint() - started) / 1e6);
      } finally {
        await source.close();
      }
    });

  program
    .command('bench-queries')
    .description(
      'latency of queries q1..q9: N runs each with rotating orgs, p50/p95/p99 in ms (connection set-up excluded)',
    )
    .option('--runs <n>', 'runs per query', kit.integer, 200)
    .option('--warmup <n>', 'untimed runs per query first', kit.integer, 20)
    .option('--backend <name>', 'cassandra | duckdb (default: cassandra when configured)', backendOpt)
    .option('--lake <dir>', 'lake root for the duckdb backend')
    .option('--json', 'JSON output')
    .action(async (opts: { runs: number; warmup: number; backend?: Backend; lake?: string; json?: boolean }) => {
      const cfg = kit.config(lakeOpt(opts));
      const backend = opts.backend ?? (cfg.cassandra ? 'cassandra' : 'duckdb');
      if (backend === 'duckdb') await kit.checkStorage(cfg);
      const source = await openSource(cfg, backend);
      try {
        const result = await benchQueries(source, opts.runs, opts.warmup);
        if (opts.json) console.log(JSON.stringify(result, null, 2));
        else {
          const t = new Table({
            style: { head: [], border: [] },
            head: ['query', 'runs', 'rows (avg)', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
          });
          for (const q of result.queries) t.push([q.query, q.runs, q.avgRows, q.p50, q.p95, q.p99, q.max].map(String));
          console.log(t.toString());
          console.log(`${result.backend}, ${result.orgs} orgs rotated, ${result.machine}, ${result.date}`);
        }
      } finally {
        await source.close();
      }
    });
}

/** One stderr line per finished table (long loads show progress); nothing with --json. */
function progress(json: boolean): ((r: TableResult) => void) | undefined {
  if (json) return undefined;
  const started = Date.now();
  return (r) => progressLine(r, Date.now() - started);
}

function progressLine(r: TableResult, elapsedMs: number): void {
  process.stderr.write(
    `[${(elapsedMs / 1000).toFixed(1)}s] ${r.table}: ${r.mode}, ${r.rowsWritten.toLocaleString('en-US')} rows written, ` +
      `${r.cassandra.rows.toLocaleString('en-US')} verified${r.matched ? '' : ' — MISMATCH'}\n`,
  );
}

/**
 * The per-table lines of a load that ran in a workflow, printed when its report arrives: each stamped with when that
 * table finished (the report's per-table times, counted back from the end), as the in-process load printed them.
 */
function printProgress(report: ServingReport, startedAt: number): void {
  let at = Date.now() - startedAt - report.durationMs;
  for (const r of report.tables) {
    at += r.totalMs;
    progressLine(r, Math.max(0, at));
  }
}

/**
 * `cpa serving load` runs the servingLoad workflow (workflows/serving-load.ts) on the embedded or configured Temporal,
 * like `cpa run`, and waits for its report. Its id is `serving-load/<keyspace>`: while a load of the keyspace runs,
 * an identical request (same lake, --full and --table) attaches to it and prints its report, a different one is
 * refused; the workflow itself waits for the lake lease while a pipeline run holds it (one loader at a time).
 */
async function loadThroughTemporal(
  cfg: Config,
  keyspace: string,
  input: ServingLoadInput,
  json: boolean,
): Promise<ServingReport> {
  const workflowId = servingLoadWorkflowId(keyspace);
  // What makes two requests the same load; compared with a running load's memo before attaching to it.
  const request = { lake: input.lake, full: Boolean(input.full), tables: [...(input.tables ?? [])].sort() };
  const session = await openSession(cfg);
  try {
    let handle;
    try {
      handle = await session.client.workflow.start('servingLoad', {
        taskQueue: cfg.temporal.taskQueue,
        workflowId,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        memo: { request },
        staticSummary: `serving load · ${keyspace} ← ${input.lake}${request.full ? ' · full' : ''}`,
      });
      const running = (await handle.describe()).memo as { request?: typeof request } | undefined;
      if (JSON.stringify(running?.request) !== JSON.stringify(request)) {
        const r = running?.request;
        const what = r
          ? `from ${r.lake}${r.full ? ', --full' : ''}${r.tables.length ? `, --table ${r.tables.join(' ')}` : ''}`
          : '';
        throw new PipelineFailed(
          `a serving load of keyspace ${keyspace} is already running (${workflowId}${what ? `, ${what}` : ''}): ` +
            `wait for it or cancel it in the Web UI`,
        );
      }
    } catch (e) {
      if (e instanceof PipelineFailed) throw e;
      throw new PipelineFailed(`could not start ${workflowId}: ${(e as Error).message}`);
    }
    const stop = json ? undefined : reportRetries(handle);
    try {
      // Rides out a server outage up to CPA_CLI_OUTAGE_SECONDS, then OutcomeUnknown (exit 3).
      return await followResult<ServingReport>(session.client, cfg, workflowId, handle.firstExecutionRunId, {
        embedded: session.endpoint.started,
      });
    } catch (e) {
      if (e instanceof OutcomeUnknown || !(e instanceof WorkflowFailedError)) throw e;
      const results = mismatchResults(e);
      // The same error as the in-process load: the figures are printed, then `cpa: reconciliation failed: …`.
      if (results) throw new ReconciliationMismatch(rootMessage(e), results);
      throw new PipelineFailed(rootMessage(e));
    } finally {
      await stop?.();
    }
  } finally {
    await session.close();
  }
}

/** Every table's figures of a load that failed reconciliation (activities/serving.ts toFailure), if `e` is one. */
function mismatchResults(e: unknown): TableResult[] | undefined {
  for (const cur of causes(e)) {
    if (cur instanceof ApplicationFailure && cur.type === 'ReconciliationFailed') {
      const results = (cur.details?.[0] as { results?: TableResult[] } | undefined)?.results;
      if (Array.isArray(results)) return results;
    }
  }
  return undefined;
}

/**
 * While the load waits, one stderr line per new reason: an activity being retried (the lake lease held by another
 * run, Cassandra unreachable) says why, as its last failure. Best effort; returns the function that stops it.
 */
function reportRetries(handle: { describe(): Promise<{ raw: { pendingActivities?: unknown } }> }): () => Promise<void> {
  let stopped = false;
  const seen = new Set<string>();
  const loop = (async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, 1000));
      if (stopped) break;
      try {
        const pending = ((await handle.describe()).raw.pendingActivities ?? []) as Array<{
          activityType?: { name?: string | null } | null;
          attempt?: number | null;
          lastFailure?: { message?: string | null } | null;
        }>;
        for (const a of pending) {
          const why = a.lastFailure?.message;
          if (!why || (a.attempt ?? 1) < 2) continue;
          const line = `${a.activityType?.name ?? 'activity'}: ${why.split('\n')[0]}`;
          if (seen.has(line)) continue;
          seen.add(line);
          process.stderr.write(`waiting: ${line} (attempt ${a.attempt}, retrying)\n`);
        }
      } catch {
        /* progress is best effort */
      }
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

async function withDb<T>(cfg: Config, fn: (db: Awaited<ReturnType<typeof createDuckDb>>) => Promise<T>): Promise<T> {
  const db = await createDuckDb(cfg);
  try {
    return await fn(db);
  } finally {
    db.closeSync();
  }
}

/** Prints the per-table figures of a failed reconciliation before the one-line error. */
function reportMismatch(e: unknown, json: boolean): never {
  if (e instanceof ReconciliationMismatch) {
    if (json) console.log(JSON.stringify({ tables: e.tables }, null, 2));
    else console.log(reportTable(e.tables));
  }
  throw e;
}

function reportTable(tables: TableResult[]): string {
  const t = new Table({
    style: { head: [], border: [] },
    head: [
      'table',
      'mode',
      'scope',
      'written',
      'stale deleted',
      'gold rows',
      'cassandra rows',
      'sum',
      'checksum',
      'ok',
      'seconds',
    ],
  });
  for (const r of tables) {
    t.push(
      [
        r.table,
        r.mode,
        r.reason,
        r.rowsWritten,
        r.staleDeleted,
        r.gold.rows,
        r.cassandra.rows,
        r.matched ? r.gold.sum : `${r.cassandra.sum} ≠ ${r.gold.sum}`,
        r.matched ? r.gold.checksum : `${r.cassandra.checksum} ≠ ${r.gold.checksum}`,
        r.matched ? 'yes' : 'NO',
        (r.totalMs / 1000).toFixed(2),
      ].map(String),
    );
  }
  return t.toString();
}

function printReport(r: ServingReport, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(r, null, 2));
    return;
  }
  console.log(reportTable(r.tables));
  const rate = (ms: number): string => (ms > 0 ? Math.round((r.rowsWritten * 1000) / ms).toLocaleString('en-US') : '0');
  const written = r.rowsWritten.toLocaleString('en-US');
  console.log(
    r.rowsWritten > 0
      ? `keyspace ${r.keyspace}: ${written} rows loaded in ${(r.loadMs / 1000).toFixed(2)}s (${rate(r.loadMs)} rows/s end to end; ` +
          `Cassandra writes ${(r.writeMs / 1000).toFixed(2)}s, ${rate(r.writeMs)} rows/s), reconciled with gold, total ${(r.durationMs / 1000).toFixed(2)}s`
      : `keyspace ${r.keyspace}: nothing to load; reconciled with gold in ${(r.durationMs / 1000).toFixed(2)}s`,
  );
}

/** Table borders without a rule between rows: query results are read as a list. */
const COMPACT = { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' };

function printResult(r: QueryResult, queryMs: number, totalMs: number): void {
  const p = r.params;
  const window =
    r.query === 'q2'
      ? `top ${p.top} as of ${p.asOf}`
      : r.query === 'q7'
        ? `top ${p.top} per model${p.model ? ` (${p.model})` : ''}`
        : r.query === 'q9'
          ? `month ${p.month}`
          : r.query === 'q6' || r.query === 'q8'
            ? `as of ${p.asOf ?? '—'}`
            : `${p.from} → ${p.to}`;
  const scope = [p.org ? `org ${p.org}` : 'all orgs', window].join(', ');
  console.log(`${r.query}: ${r.title} — ${scope} [${r.backend}]`);
  const t = new Table({ style: { head: [], border: [] }, head: r.columns, chars: COMPACT });
  for (const row of r.rows) {
    t.push(
      r.columns.map((c) => {
        const v = row[c];
        const right = typeof v === 'number' || (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v));
        return { content: v === null ? '' : String(v), hAlign: right ? 'right' : 'left' } as const;
      }),
    );
  }
  console.log(t.toString());
  console.log(`${r.rows.length} row(s) in ${queryMs.toFixed(1)} ms (${totalMs.toFixed(0)} ms with connection set-up)`);
}

export interface BenchResult {
  backend: Backend;
  orgs: number;
  machine: string;
  date: string;
  queries: Array<{ query: QueryId; runs: number; avgRows: number; p50: number; p95: number; p99: number; max: number }>;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return Math.round(sorted[idx] * 100) / 100;
}

/**
 * Runs each query `runs` times (after `warmup` untimed runs), rotating through the orgs and, for q3, alternating
 * all-orgs and one org, so reads spread over partitions instead of hitting one cached row. Defaults (`as_of`) are
 * resolved on every run, as a dashboard call would.
 */
export async function benchQueries(source: QuerySource, runs: number, warmup: number): Promise<BenchResult> {
  const orgs = await source.orgs();
  if (orgs.length === 0) throw new Error(`no orgs in the ${source.backend} data: load it first`);
  const out: BenchResult['queries'] = [];
  for (const q of QUERY_IDS) {
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < warmup + runs; i++) {
      const org = orgs[i % orgs.length];
      const params: QueryParams = q === 'q3' ? (i % 2 === 0 ? {} : { org }) : { org };
      const t0 = process.hrtime.bigint();
      const r = await runQuery(source, q, params);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (i >= warmup) {
        times.push(ms);
        rows += r.rows.length;
      }
    }
    times.sort((a, b) => a - b);
    out.push({
      query: q,
      runs,
      avgRows: Math.round((rows / Math.max(1, runs)) * 10) / 10,
      p50: percentile(times, 0.5),
      p95: percentile(times, 0.95),
      p99: percentile(times, 0.99),
      max: percentile(times, 1),
    });
  }
  return {
    backend: source.backend,
    orgs: orgs.length,
    machine:
      `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? ''}`.trim(),
    date: new Date().toISOString().slice(0, 10),
    queries: out,
  };
}
