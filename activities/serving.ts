import type { DuckDBConnection } from '@duckdb/node-api';
import { forEachLimit } from '../lake/pool';
import { ApplicationFailure } from '@temporalio/common';
import cassandra from 'cassandra-driver';
import type { Config } from '../config/env';
import { primaryKey, SERVING_TABLES } from '../config/serving';
import type { ServingColumn, ServingTable } from '../config/serving';
import { NotBuiltYet, partitionVersions, registerView } from '../lake/lakehouse';
import type { AttachedLake } from '../lake/lakehouse';

/** Gold partition versions (`meta.partitions`) by partition value. */
type PartitionMap = Record<string, { rows: number; hash: string }>;
import {
  CassandraRejected,
  CassandraUnavailable,
  connect,
  describeError,
  ensureSchema,
  requireCassandra,
  schemaVersion,
  ServingNotConfigured,
} from '../lake/cassandra';
import type { CassandraClient, CassandraSettings } from '../lake/cassandra';
import { queryRows } from '../lake/duckdb';
import { Digest, keyOf, manifestFingerprint, partitionsToLoad, toCqlParams, toCqlValue } from '../lake/serving-codec';
import { classify, contractViolation, emptyMetrics, heartbeat, openLake } from './common';
import type { ActivityDeps, RunTarget, StepMetrics } from './common';
import type { RunSummary } from './quality';

const { concurrent, types } = cassandra;

/**
 * Writes go as single-partition UNLOGGED batches of up to BATCH_ROWS prepared INSERTs (one mutation per partition on
 * the replica; ≈4 KB, under Cassandra's 5 KiB batch warning), BATCH_CONCURRENCY batches in flight. Measured ~3× the
 * throughput of one statement per row through executeConcurrent on the 2-core machine (docs/performance.md).
 */
const BATCH_ROWS = 25;
const BATCH_CONCURRENCY = 32;
/** Rows buffered before a flush; also the heartbeat interval. */
const WRITE_CHUNK = 8192;
/** In-flight single statements (stale-row deletes) through executeConcurrent. */
const WRITE_CONCURRENCY = 64;
/** Partitions read back concurrently during reconciliation. */
const READ_CONCURRENCY = 16;

export const ServingErrorTypes = {
  /** Asked to serve without CPA_CASSANDRA_CONTACT_POINTS on the worker. */
  ServingNotConfigured: 'ServingNotConfigured',
  /** Cassandra refused (credentials, CQL, permissions): retrying cannot help. */
  CassandraRejected: 'CassandraRejected',
  /** Rows in Cassandra differ from their gold source after a load. */
  ReconciliationFailed: 'ReconciliationFailed',
  /** A serving table's gold mart does not exist in the lake (wrong lake, or no pipeline run yet): a retry finds none. */
  GoldNotBuilt: 'GoldNotBuilt',
} as const;

/** Reconciliation found a difference; the message names the table and both sides' figures. */
export class ReconciliationMismatch extends Error {
  override name = 'ReconciliationMismatch';
  constructor(
    message: string,
    readonly tables: TableResult[],
  ) {
    super(message);
  }
}

export interface LoadServingInput extends RunTarget {
  /** The run's gold step metrics: `changedPartitions` per mart decides what to reload. */
  gold?: StepMetrics[];
  /** Reload every table completely (`cpa serving load --full`). */
  full?: boolean;
  /** Restrict to these serving tables (default: all). */
  tables?: string[];
}

export interface Figures {
  rows: number;
  checksum: string;
  sum: string;
}

export interface TableResult {
  table: string;
  source: string;
  mode: 'full' | 'partitions' | 'skipped' | 'verify';
  reason: string;
  partitions: number;
  rowsWritten: number;
  staleDeleted: number;
  gold: Figures;
  cassandra: Figures;
  matched: boolean;
  /** Time spent waiting on Cassandra writes. */
  writeMs: number;
  /** Time reading gold (DuckDB) and mapping rows while no write was waited on. */
  goldMs: number;
  /** Wall time of reading gold and writing it (decision, DuckDB, mapping, upserts), reconciliation excluded. */
  loadMs: number;
  /** Time reading the scope back from Cassandra and comparing (reconciliation). */
  verifyMs: number;
  totalMs: number;
}

export interface ServingReport {
  keyspace: string;
  tables: TableResult[];
  rowsWritten: number;
  /** Σ time waiting on Cassandra writes. */
  writeMs: number;
  /** Σ wall time of the load phases (gold read + mapping + writes), reconciliation excluded. */
  loadMs: number;
  durationMs: number;
}

interface StateRow {
  lake: string | null;
  partitions: Record<string, string>;
}

interface Ctx {
  client: CassandraClient;
  ks: string;
  conn: DuckDBConnection;
  lake: AttachedLake;
  lakeRoot: string;
}

/**
 * Serving load (SPEC §8), the last data step of dailyPipeline. Per serving table: upserts (prepared INSERT by
 * primary key, bounded concurrency) the rows of the gold partitions the run changed — everything when the table is
 * empty, was loaded from another lake, or `full` is set — deletes rows gold no longer has, then reconciles count,
 * exact sum and an order-independent checksum of the loaded scope read back from Cassandra against gold.
 * Idempotent: a re-load writes the same rows under the same keys. Retries: connection problems are retryable;
 * a missing Cassandra config, a refused statement or a reconciliation mismatch are non-retryable failures naming
 * the table. Heartbeats every chunk of rows. One loader at a time is the callers' business, not this function's:
 * dailyPipeline and servingLoad run it holding the lake lease (workflows/lake-lease.ts), and the CLI's servingLoad has
 * one workflow id per keyspace (docs/decisions.md, "Serving loads run in Temporal").
 */
export async function loadServing(deps: ActivityDeps, input: LoadServingInput): Promise<StepMetrics> {
  try {
    const report = await runServing(deps, input, 'load');
    const metrics = emptyMetrics('serving.load', 'serving', report.keyspace);
    metrics.rowsIn = report.tables.reduce((a, t) => a + t.gold.rows, 0);
    metrics.rowsOut = report.rowsWritten;
    metrics.partitionsWritten = report.tables.reduce((a, t) => a + t.partitions, 0);
    metrics.durationMs = report.durationMs;
    for (const t of report.tables) {
      metrics.extra[`${t.table}.rows_written`] = t.rowsWritten;
      metrics.extra[`${t.table}.rows_verified`] = t.cassandra.rows;
      metrics.extra[`${t.table}.stale_deleted`] = t.staleDeleted;
      metrics.extra[`${t.table}.full_load`] = t.mode === 'full' ? 1 : 0;
    }
    metrics.extra.write_ms = report.writeMs;
    metrics.extra.load_ms = report.loadMs;
    // End to end: gold read, mapping and upserts (reconciliation excluded).
    metrics.extra.rows_per_second = report.loadMs > 0 ? Math.round((report.rowsWritten * 1000) / report.loadMs) : 0;
    return metrics;
  } catch (e) {
    throw toFailure(e, 'serving.load', deps.config.cassandra);
  }
}

/**
 * `cpa serving load` (workflow servingLoad): the same load as {@link loadServing}, returning the whole report (per-table
 * figures, numbers only) for the CLI to print. Same retries, idempotency and heartbeats.
 */
export async function loadServingReport(deps: ActivityDeps, input: LoadServingInput): Promise<ServingReport> {
  try {
    return await runServing(deps, input, 'load');
  } catch (e) {
    throw toFailure(e, 'serving.load', deps.config.cassandra);
  }
}

/** Fails (non-retryable: a retry asks for the same names) when a name is not a serving table. */
export function checkServingTables(names: string[] | undefined): void {
  const unknown = (names ?? []).filter((n) => !SERVING_TABLES.some((t) => t.name === n));
  if (unknown.length > 0) {
    throw contractViolation(
      `unknown serving table(s) ${unknown.join(', ')} (expected ${SERVING_TABLES.map((t) => t.name).join(', ')})`,
    );
  }
}

/** Maps serving errors to Temporal's failure types: which ones a retry can fix. */
export function toFailure(e: unknown, what: string, settings?: CassandraSettings): unknown {
  if (e instanceof ApplicationFailure) return e;
  if (e instanceof ServingNotConfigured)
    return ApplicationFailure.nonRetryable(e.message, ServingErrorTypes.ServingNotConfigured);
  if (e instanceof NotBuiltYet) return ApplicationFailure.nonRetryable(e.message, ServingErrorTypes.GoldNotBuilt);
  if (e instanceof ReconciliationMismatch) {
    return ApplicationFailure.nonRetryable(e.message, ServingErrorTypes.ReconciliationFailed, {
      tables: e.tables.filter((t) => !t.matched).map((t) => ({ table: t.table, gold: t.gold, cassandra: t.cassandra })),
      // Every table's figures, for `cpa serving load` to print as it did before the load ran in Temporal.
      results: e.tables,
    });
  }
  const err = describeError(e, settings);
  if (err instanceof CassandraRejected)
    return ApplicationFailure.nonRetryable(err.message, ServingErrorTypes.CassandraRejected);
  if (err instanceof CassandraUnavailable) return err;
  return classify(err, what);
}

/**
 * Load (`mode = 'load'`) or only verify (`'verify'`, used by `cpa serving reconcile`: every table in full, nothing
 * written, stale rows count as a difference). Throws {@link ReconciliationMismatch} when any table differs.
 */
export async function runServing(
  deps: ActivityDeps,
  input: LoadServingInput,
  mode: 'load' | 'verify',
  onTable?: (r: TableResult) => void,
): Promise<ServingReport> {
  const started = Date.now();
  const settings = requireCassandra(deps.config);
  checkServingTables(input.tables);
  const client = await connect(settings);
  const lake = await openLake(deps, input).catch(async (e: unknown) => {
    await client.shutdown().catch(() => undefined);
    throw e;
  });
  const ctx: Ctx = { client, ks: settings.keyspace, conn: lake.conn, lake: lake.lake, lakeRoot: input.lake };
  try {
    await ensureSchema(client, settings);
    const tables = SERVING_TABLES.filter((t) => !input.tables || input.tables.includes(t.name));
    const results: TableResult[] = [];
    for (const t of tables) {
      const changed = input.gold?.find((s) => s.table === t.source)?.changedPartitions;
      results.push(await syncTable(ctx, t, { mode, full: Boolean(input.full), changed, runId: input.runId }));
      onTable?.(results[results.length - 1]);
    }
    const bad = results.filter((r) => !r.matched);
    if (bad.length > 0) {
      const detail = bad
        .map(
          (r) =>
            `${settings.keyspace}.${r.table}: cassandra ${r.cassandra.rows} rows, sum ${r.cassandra.sum}, checksum ${r.cassandra.checksum}` +
            ` ≠ gold.${r.source} ${r.gold.rows} rows, sum ${r.gold.sum}, checksum ${r.gold.checksum}`,
        )
        .join('; ');
      throw new ReconciliationMismatch(`reconciliation failed: ${detail}`, results);
    }
    return {
      keyspace: settings.keyspace,
      tables: results,
      rowsWritten: results.reduce((a, r) => a + r.rowsWritten, 0),
      writeMs: results.reduce((a, r) => a + r.writeMs, 0),
      loadMs: results.reduce((a, r) => a + r.loadMs, 0),
      durationMs: Date.now() - started,
    };
  } finally {
    lake.conn.closeSync();
    await client.shutdown().catch(() => undefined);
  }
}

async function syncTable(
  ctx: Ctx,
  t: ServingTable,
  opts: { mode: 'load' | 'verify'; full: boolean; changed?: string[]; runId: string },
): Promise<TableResult> {
  const started = Date.now();
  // No fallback columns: a mart never built throws NotBuiltYet (non-retryable GoldNotBuilt, toFailure above).
  await registerView(ctx, 'gold', t.source, 'src');
  const manifestParts: PartitionMap = Object.fromEntries(await partitionVersions(ctx.conn, ctx.lake, 'gold', t.source));

  // Decide the scope: 'all' or a list of gold partition values.
  let scope: 'all' | string[] = 'all';
  let reason = 'verify';
  let nullAs: 'null' | 'unset' = 'null';
  if (opts.mode === 'load') {
    const state = await readState(ctx, t);
    const empty = await isEmpty(ctx, t);
    if (opts.full) reason = 'full load requested';
    else if (empty) reason = 'table empty';
    else if (!state) reason = 'no previous load recorded';
    else if (state.lake !== ctx.lakeRoot) reason = `previous load came from ${state.lake}`;
    else {
      const parts = partitionsToLoad(opts.changed, manifestParts, state.partitions);
      if (t.scopeColumn === null) {
        scope = parts.length > 0 ? 'all' : [];
        reason = parts.length > 0 ? 'gold table changed' : 'unchanged';
      } else {
        scope = parts;
        reason = parts.length > 0 ? `${parts.length} changed partition(s)` : 'unchanged';
      }
    }
    // Nothing can be overwritten in an empty table: leave NULL cells unset instead of writing tombstones.
    if (empty) nullAs = 'unset';
  }

  const result: TableResult = {
    table: t.name,
    source: t.source,
    mode: opts.mode === 'verify' ? 'verify' : scope === 'all' ? 'full' : scope.length > 0 ? 'partitions' : 'skipped',
    reason,
    partitions: scope === 'all' ? Object.keys(manifestParts).length : scope.length,
    rowsWritten: 0,
    staleDeleted: 0,
    gold: { rows: 0, checksum: '', sum: '' },
    cassandra: { rows: 0, checksum: '', sum: '' },
    matched: true,
    writeMs: 0,
    goldMs: 0,
    loadMs: 0,
    verifyMs: 0,
    totalMs: 0,
  };
  const goldDigest = new Digest(t);
  const cassDigest = new Digest(t);
  if (scope !== 'all' && scope.length === 0) {
    result.gold = goldDigest.figures();
    result.cassandra = cassDigest.figures();
    result.totalMs = Date.now() - started;
    return result;
  }

  // 1. Gold rows in scope, ordered by primary key so consecutive rows share a partition: digest, key set and (when
  //    loading) upserts as single-partition batches.
  const scopeFilter = await scopeSql(ctx.conn, t, scope);
  const keyNotNull = primaryKey(t)
    .map((k) => `${k} is not null`)
    .join(' and ');
  const goldKeys = new Set<string>();
  const insert = insertCql(ctx.ks, t);
  const writer = new PartitionBatchWriter(ctx.client, insert, (rows, ms) => {
    result.rowsWritten += rows;
    result.writeMs += ms;
    heartbeat({ table: t.name, rowsWritten: result.rowsWritten });
  });
  const partitionOf = (row: Record<string, unknown>): string =>
    t.partitionKey.map((k) => String(row[k])).join('\u001f');
  const stream = await ctx.conn.stream(
    `select * from (${t.projection}) where ${scopeFilter} and ${keyNotNull} order by ${primaryKey(t).join(', ')}`,
  );
  // One flush in flight while the next chunk is read and mapped: Cassandra writes overlap DuckDB reads.
  let inFlight: Promise<void> = Promise.resolve();
  try {
    for await (const rows of stream.yieldRowObjectJson()) {
      for (const row of rows) {
        goldDigest.add(row);
        goldKeys.add(keyOf(t, row));
        if (opts.mode === 'load') writer.add(partitionOf(row), toCqlParams(t, row, nullAs));
      }
      if (writer.buffered >= WRITE_CHUNK) {
        await inFlight;
        inFlight = writer.flush();
      }
    }
  } finally {
    await inFlight.catch(() => undefined);
  }
  await inFlight;
  await writer.flush();
  result.loadMs = Date.now() - started;

  // 2. Read the same scope back from Cassandra; rows gold does not have are stale (deleted when loading).
  const stale: Record<string, unknown>[] = [];
  const pkCols = primaryKey(t);
  const onRow = (row: Record<string, unknown>): void => {
    if (goldKeys.has(keyOf(t, row))) cassDigest.add(row);
    else if (opts.mode === 'load') stale.push(row);
    else cassDigest.add(row);
  };
  result.goldMs = Math.max(0, result.loadMs - result.writeMs);
  const v0 = Date.now();
  await readScope(ctx, t, scope, manifestParts, onRow);
  if (stale.length > 0) {
    const del = `DELETE FROM ${ctx.ks}.${t.name} WHERE ${pkCols.map((k) => `${k} = ?`).join(' AND ')}`;
    const params = stale.map((r) => pkCols.map((k) => toCqlValue(columnOf(t, k), r[k])));
    await concurrent.executeConcurrent(ctx.client, del, params, {
      concurrencyLevel: WRITE_CONCURRENCY,
      raiseOnFirstError: true,
    });
    result.staleDeleted = stale.length;
  }

  // 3. Reconcile, then remember what was loaded.
  result.gold = goldDigest.figures();
  result.cassandra = cassDigest.figures();
  result.matched = goldDigest.equals(cassDigest);
  result.verifyMs = Date.now() - v0;
  if (opts.mode === 'load' && result.matched) await writeState(ctx, t, manifestParts, result, opts.runId, scope);
  result.totalMs = Date.now() - started;
  return result;
}

function columnOf(t: ServingTable, name: string): ServingColumn {
  const c = t.columns.find((x) => x.name === name);
  if (!c) throw new Error(`${t.name} has no column ${name}`);
  return c;
}

/** Buffers upserts into single-partition batches and writes them with bounded concurrency. */
class PartitionBatchWriter {
  buffered = 0;
  private batches: unknown[][][] = [];
  private current: unknown[][] = [];
  private currentKey: string | undefined;

  constructor(
    private readonly client: CassandraClient,
    private readonly query: string,
    private readonly onFlush: (rows: number, ms: number) => void,
  ) {}

  add(partition: string, params: unknown[]): void {
    if (partition !== this.currentKey || this.current.length >= BATCH_ROWS) {
      this.seal();
      this.currentKey = partition;
    }
    this.current.push(params);
    this.buffered += 1;
  }

  private seal(): void {
    if (this.current.length > 0) this.batches.push(this.current);
    this.current = [];
  }

  async flush(): Promise<void> {
    this.seal();
    this.currentKey = undefined;
    const batches = this.batches;
    const rows = this.buffered;
    this.batches = [];
    this.buffered = 0;
    if (rows === 0) return;
    const t0 = Date.now();
    await forEachLimit(batches, BATCH_CONCURRENCY, async (b) => {
      if (b.length === 1) await this.client.execute(this.query, b[0], { prepare: true });
      else
        await this.client.batch(
          b.map((params) => ({ query: this.query, params })),
          { prepare: true, logged: false },
        );
    });
    this.onFlush(rows, Date.now() - t0);
  }
}

/** SQL predicate selecting the scope's rows (scope values go through a temp table, never into the SQL text). */
async function scopeSql(conn: DuckDBConnection, t: ServingTable, scope: 'all' | string[]): Promise<string> {
  if (scope === 'all' || t.scopeColumn === null) return 'true';
  await conn.run(`create or replace temp table _serving_scope (p varchar)`);
  const app = await conn.createAppender('_serving_scope', 'main', 'temp');
  for (const p of scope) {
    app.appendVarchar(p);
    app.endRow();
  }
  app.closeSync();
  return `cast(${t.scopeColumn} as varchar) in (select p from _serving_scope)`;
}

function insertCql(ks: string, t: ServingTable): string {
  const cols = t.columns.map((c) => c.name);
  return `INSERT INTO ${ks}.${t.name} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`;
}

/**
 * Reads a scope back: the whole table with one paged scan when the scope is everything (or most partitions);
 * otherwise one `partition = ? AND scope_column IN ?` slice per Cassandra partition that gold has.
 */
async function readScope(
  ctx: Ctx,
  t: ServingTable,
  scope: 'all' | string[],
  manifestParts: PartitionMap,
  onRow: (row: Record<string, unknown>) => void,
): Promise<void> {
  const cols = t.columns.map((c) => c.name).join(', ');
  const wide = scope === 'all' || t.scopeColumn === null || scope.length * 2 >= Object.keys(manifestParts).length;
  if (wide) {
    const inScope = scope === 'all' || t.scopeColumn === null ? undefined : new Set(scope);
    await eachRow(ctx.client, `SELECT ${cols} FROM ${ctx.ks}.${t.name}`, [], (row) => {
      if (!inScope || inScope.has(String(row[t.scopeColumn!]))) onRow(row);
    });
    return;
  }
  const dates = scope.filter((p) => /^\d{4}-\d{2}-\d{2}$/.test(p)).map((p) => types.LocalDate.fromString(p));
  if (dates.length === 0) return;
  const partitions = await queryRows(
    ctx.conn,
    `select distinct ${t.partitionKey.join(', ')} from (${t.projection}) where ${t.partitionKey.map((k) => `${k} is not null`).join(' and ')}`,
  );
  const where = `${t.partitionKey.map((k) => `${k} = ?`).join(' AND ')} AND ${t.scopeColumn} IN ?`;
  const q = `SELECT ${cols} FROM ${ctx.ks}.${t.name} WHERE ${where}`;
  await forEachLimit(partitions, READ_CONCURRENCY, (p) =>
    eachRow(ctx.client, q, [...t.partitionKey.map((k) => toCqlValue(columnOf(t, k), p[k])), dates], onRow),
  );
}

/** Pages through a SELECT, converting each row to a plain object of column → driver value. */
async function eachRow(
  client: CassandraClient,
  query: string,
  params: unknown[],
  onRow: (row: Record<string, unknown>) => void,
): Promise<void> {
  let pageState: string | undefined;
  do {
    const rs = await client.execute(query, params, { prepare: true, fetchSize: 5000, pageState });
    for (const row of rs.rows) {
      const obj: Record<string, unknown> = {};
      for (const k of row.keys()) obj[k] = normalizeRead(row.get(k));
      onRow(obj);
    }
    pageState = rs.pageState ?? undefined;
  } while (pageState);
}

/** Driver values → the shapes the codec's canonical form expects (dates as YYYY-MM-DD text). */
function normalizeRead(v: unknown): unknown {
  if (v instanceof types.LocalDate) return v.toString();
  return v;
}

async function isEmpty(ctx: Ctx, t: ServingTable): Promise<boolean> {
  const rs = await ctx.client.execute(`SELECT ${t.partitionKey[0]} FROM ${ctx.ks}.${t.name} LIMIT 1`);
  return rs.rowLength === 0;
}

async function readState(ctx: Ctx, t: ServingTable): Promise<StateRow | undefined> {
  const rs = await ctx.client.execute(`SELECT lake, partitions FROM ${ctx.ks}.serving_state WHERE table_name = ?`, [
    t.name,
  ]);
  const row = rs.first();
  if (!row) return undefined;
  let partitions: Record<string, string> = {};
  try {
    partitions = JSON.parse(String(row.get('partitions') ?? '{}')) as Record<string, string>;
  } catch {
    /* an unreadable state only costs a full comparison */
  }
  return { lake: row.get('lake') as string | null, partitions };
}

async function writeState(
  ctx: Ctx,
  t: ServingTable,
  manifest: PartitionMap,
  r: TableResult,
  runId: string,
  scope: 'all' | string[],
): Promise<void> {
  const [agg] = await queryRows(
    ctx.conn,
    t.dateColumn
      ? `select count(*)::bigint as n, min(${t.dateColumn})::varchar as lo, max(${t.dateColumn})::varchar as hi from (${t.projection})`
      : `select count(*)::bigint as n, null::varchar as lo, null::varchar as hi from (${t.projection})`,
  );
  await ctx.client.execute(
    `INSERT INTO ${ctx.ks}.serving_state (table_name, source, lake, partitions, row_count, min_date, max_date, verified_scope,
       verified_rows, verified_checksum, verified_sum, loaded_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      t.name,
      t.source,
      ctx.lakeRoot,
      JSON.stringify(manifestFingerprint(manifest)),
      types.Long.fromString(String(agg.n)),
      agg.lo ? types.LocalDate.fromString(String(agg.lo)) : null,
      agg.hi ? types.LocalDate.fromString(String(agg.hi)) : null,
      scope === 'all' ? 'all' : `${scope.length} partition(s)`,
      types.Long.fromNumber(r.cassandra.rows),
      r.cassandra.checksum,
      r.cassandra.sum,
      new Date(),
      runId,
    ],
  );
}

/**
 * Writes one dailyPipeline run's summary into `pipeline_runs` (upsert by run id: a retry rewrites the same row).
 * Retryable on connection errors; non-retryable when serving is not configured.
 */
export async function recordServingRun(deps: ActivityDeps, summary: RunSummary): Promise<void> {
  let client: CassandraClient | undefined;
  try {
    const settings = requireCassandra(deps.config);
    client = await connect(settings);
    await ensureSchema(client, settings);
    await writeRun(client, settings, summary);
  } catch (e) {
    throw toFailure(e, 'serving.recordRun', deps.config.cassandra);
  } finally {
    await client?.shutdown().catch(() => undefined);
  }
}

async function writeRun(client: CassandraClient, c: CassandraSettings, s: RunSummary): Promise<void> {
  const serving = s.steps.find((x) => x.layer === 'serving');
  await client.execute(
    `INSERT INTO ${c.keyspace}.pipeline_runs (run_month, started_at, run_id, workflow_id, logical_date, kind, status, finished_at,
       duration_ms, step_count, rows_served, error, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      s.startedAt.slice(0, 7),
      new Date(s.startedAt),
      s.runId,
      s.workflowId,
      s.logicalDate ?? 'all',
      s.kind,
      s.status,
      new Date(s.finishedAt),
      types.Long.fromNumber(Date.parse(s.finishedAt) - Date.parse(s.startedAt)),
      s.steps.length,
      types.Long.fromNumber(serving?.rowsOut ?? 0),
      s.error ?? null,
      JSON.stringify(s),
    ],
  );
}

/** `cpa serving status`: what each table holds per serving_state, plus the latest runs. */
export async function servingStatus(config: Config): Promise<{
  keyspace: string;
  schemaVersion: number;
  tables: Array<Record<string, unknown>>;
  runs: Array<Record<string, unknown>>;
}> {
  const settings = requireCassandra(config);
  const client = await connect(settings);
  try {
    const version = await schemaVersion(client, settings.keyspace);
    if (version === 0) return { keyspace: settings.keyspace, schemaVersion: 0, tables: [], runs: [] };
    const rs = await client.execute(
      `SELECT table_name, source, lake, row_count, min_date, max_date, verified_scope, verified_rows, loaded_at, run_id
       FROM ${settings.keyspace}.serving_state`,
    );
    const tables = rs.rows.map((r) => ({
      table: r.get('table_name'),
      source: r.get('source'),
      rows: Number(r.get('row_count') ?? 0),
      from: r.get('min_date')?.toString() ?? null,
      to: r.get('max_date')?.toString() ?? null,
      lastScope: r.get('verified_scope'),
      lastVerifiedRows: Number(r.get('verified_rows') ?? 0),
      loadedAt: (r.get('loaded_at') as Date | null)?.toISOString() ?? null,
      lake: r.get('lake'),
    }));
    const runs: Array<Record<string, unknown>> = [];
    // The current and previous month's partitions hold the recent runs.
    const now = new Date();
    const months = [
      now.toISOString().slice(0, 7),
      new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)).toISOString().slice(0, 7),
    ];
    for (const m of months) {
      const r = await client.execute(
        `SELECT started_at, run_id, workflow_id, status, duration_ms, rows_served, error FROM ${settings.keyspace}.pipeline_runs
         WHERE run_month = ? LIMIT 10`,
        [m],
      );
      for (const row of r.rows) {
        runs.push({
          startedAt: (row.get('started_at') as Date).toISOString(),
          workflowId: row.get('workflow_id'),
          status: row.get('status'),
          seconds: Number(row.get('duration_ms') ?? 0) / 1000,
          rowsServed: Number(row.get('rows_served') ?? 0),
          error: row.get('error'),
        });
      }
    }
    const order = SERVING_TABLES.map((t) => t.name);
    tables.sort((a, b) => order.indexOf(String(a.table)) - order.indexOf(String(b.table)));
    return { keyspace: settings.keyspace, schemaVersion: version, tables, runs: runs.slice(0, 10) };
  } finally {
    await client.shutdown().catch(() => undefined);
  }
}
