import {
  BRONZE_EVENT_COLUMNS,
  CSV_CONTRACTS,
  GOLD_COLUMNS,
  INGEST_COLUMNS,
  QUARANTINE_COLUMNS,
} from '../config/contracts';
import type { DuckDBInstance } from '@duckdb/node-api';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { AttachedLake, ColumnDef, LakeContext, PublishResult, TableDef } from '../lake/lakehouse';
import {
  createMissingTables,
  lakeTableNames,
  lakeColumns,
  NULL_PARTITION,
  partitionVersions,
  publishTables,
  emptyView,
  NotBuiltYet,
  publishPartitionExpr,
  qualified,
  registerView,
  sourceStats,
} from '../lake/lakehouse';
import { acquireThreads, loadSql, queryRows, sqlIdent, sqlString } from '../lake/duckdb';
import {
  filterablePartition,
  inputRange,
  isDate,
  neededPartitions,
  partitionFilter,
  planModels,
  WHOLE,
} from '../lake/incremental';
import type { ModelPlan, Versions } from '../lake/incremental';
import type { Config } from '../config/env';
import { CSV_BRONZE_TABLES, findModel, GOLD_MARTS, isPartitioned, SILVER_MODELS, waves } from '../lake/tables';
import type { ModelSpec, TableRef } from '../lake/tables';
import {
  classify,
  contractViolation,
  emptyMetrics,
  heartbeat,
  nullCounts,
  onCancel,
  openLake,
  prepareModelConnection,
  ratesOf,
  warn,
  withLake,
} from './common';
import type { ActivityDeps, NullCounts, RunTarget, StepMetrics } from './common';
import { sumCounts } from '../lake/step-metrics';
import { firstLine } from '../lake/errors';

/**
 * A model step's input: the run target; for a forced backfill the dates to recompute whether stale or not; for one
 * chunk of a table's work (planWave's `chunks`, an activity each), the partitions of the chunk: the step computes
 * those of them that are stale (or forced) when it runs, so a retried or repeated chunk computes nothing twice.
 */
export type ModelTarget = RunTarget & { force?: { from: string; to: string }; units?: string[] };

/** The plan narrowed to a chunk's partitions (the whole plan without one). */
function forChunk(plan: ModelPlan, units: string[] | undefined): ModelPlan {
  if (!units) return plan;
  const chunk = new Set(units);
  return { ...plan, units: plan.units.filter((u) => chunk.has(u)) };
}

/** Columns to type an empty view with when an input table has never been written. */
function fallbackColumns(ref: TableRef): ColumnDef[] | undefined {
  if (ref.layer !== 'bronze') return undefined;
  if (ref.table === 'usage_events') return BRONZE_EVENT_COLUMNS;
  const contract = CSV_CONTRACTS.find((c) => c.bronze === ref.table);
  return contract ? [...contract.columns, ...INGEST_COLUMNS] : undefined;
}

/** The partition column of a table the models read by partition. */
function partitionColumn(ref: TableRef): string | undefined {
  if (ref.layer === 'bronze') return ref.table === 'usage_events' ? 'usage_date' : undefined;
  return findModel(ref.layer as 'silver' | 'gold', ref.table).partitionBy;
}

/**
 * Registers each input as a view `<layer>_<table>`, restricted to the partitions the units need. Returns the rows
 * read from the layer below (the step's rows in).
 */
async function registerInputs(
  ctx: LakeContext,
  model: ModelSpec,
  deps: ActivityDeps,
  plan: ModelPlan,
): Promise<number> {
  let rowsIn = 0;
  const needed = neededPartitions(model, plan.units, deps.config.anomaly.baselineDays);
  // Rows in = the rows read from the layer below, or from the same layer for a mart built on another mart.
  const prev = model.layer === 'silver' ? 'bronze' : 'silver';
  const below = model.inputs.some((i) => i.layer === prev) ? prev : model.layer;
  const own = model.baselineFromOwnOutput;
  const baselineDays = new Set<string>();
  for (const input of model.inputs) {
    const view = `${input.layer}_${input.table}`;
    let parts = needed.get(`${input.layer}.${input.table}`);
    const col = partitionColumn(input);
    if (own && parts && input.dep.kind === 'window') {
      // The window's other days come from the model's own table (lake/tables.ts baselineFromOwnOutput).
      for (const p of parts) if (!plan.units.includes(p)) baselineDays.add(p);
      parts = new Set(plan.units);
    }
    const where = parts && col ? partitionFilter(col, parts) : undefined;
    const m = await registerView(ctx, input.layer, input.table, view, fallbackColumns(input), where);
    // Counted from the partition versions the plan read (meta.partitions records each partition's rows with its
    // data), not by a count(*) through the catalog.
    if (m && input.layer === below)
      rowsIn += versionRows(plan.inputs.get(`${input.layer}.${input.table}`), where ? parts : undefined);
  }
  if (own) {
    const found = await registerView(
      ctx,
      model.layer,
      model.table,
      `${model.layer}_${model.table}_baseline`,
      undefined,
      partitionFilter(model.partitionBy!, baselineDays),
      own.columns.map((c) => sqlIdent(c.name)).join(', '),
    ).catch((e: unknown) => {
      if (e instanceof NotBuiltYet) return false;
      throw e;
    });
    if (!found) await emptyOwnBaseline(ctx.conn, model);
  }
  const byJoin = baselineByJoin(model, plan, deps.config);
  if (byJoin !== undefined) await ctx.conn.run(`set variable baseline_by_join = ${byJoin}`);
  // The dates being computed, for a model that scores only those rows (gold/cost_anomaly_mart.sql); null = all rows.
  const dates = plan.units.filter(isDate);
  await ctx.conn.run(
    `set variable model_units = ${
      isPartitioned(model) && !plan.units.includes(WHOLE) && model.partitionBy
        ? `[${dates.map((d) => `${sqlString(d)}::date`).join(', ')}]::date[]`
        : 'null'
    }`,
  );
  if (model.rangeBound) {
    const range = inputRange(model, plan.inputs);
    await ctx.conn.run(`set variable range_first = ${range ? `${sqlString(range.first)}::date` : 'null'}`);
    await ctx.conn.run(`set variable range_last = ${range ? `${sqlString(range.last)}::date` : 'null'}`);
  }
  return rowsIn;
}

/**
 * Whether a model with a trailing window builds the computed days' baseline lists by a join (SQL's comments in
 * silver/usage_events.sql and gold/cost_anomaly_mart.sql): when it computes fewer days with rows than a baseline
 * spans, so that most of the days it reads are there for their values alone. The join pays per computed (series, day)
 * for its series' values; the window builds a list for every row read. Silver at S=100 (DuckDB alone, 2 threads):
 * 4 days computed 2.3 s (window of day lists) -> 1.5 s (join); 18 days 6.8 -> 5.7 s; 27 days after 28 of baseline
 * 10.2 -> 8.9 s at 2.25 GB RSS against 2.12; 40 days and no baseline 10.3 -> 9.9 s, 2.86 -> 3.06 GB, where the window
 * stays (docs/decisions.md). Undefined for a model without a trailing window (its SQL reads no such variable).
 */
function baselineByJoin(model: ModelSpec, plan: ModelPlan, config: Config): boolean | undefined {
  const windowed = model.inputs.find((i) => i.dep.kind === 'window');
  if (!windowed) return undefined;
  // Units past the input's last day (a new day reaches N days ahead) have no rows and cost nothing either way.
  const versions: Versions = plan.inputs.get(`${windowed.layer}.${windowed.table}`) ?? new Map();
  return plan.units.filter((u) => versions.has(u) && filterablePartition(u)).length < config.anomaly.baselineDays;
}

/** The rows a build of `plan` reads from its inputs, by their versions (whether the step is heavy: lake/duckdb.ts). */
function plannedInputRows(model: ModelSpec, plan: ModelPlan, config: Config): number {
  const needed = neededPartitions(model, plan.units, config.anomaly.baselineDays);
  let n = 0;
  for (const input of model.inputs) {
    const parts = needed.get(`${input.layer}.${input.table}`);
    n += versionRows(
      plan.inputs.get(`${input.layer}.${input.table}`),
      parts && partitionColumn(input) ? parts : undefined,
    );
  }
  return n;
}

/** Rows of the given partitions (all when undefined) by their versions, as a view filtered by partitionFilter holds. */
function versionRows(versions: Versions | undefined, parts?: Set<string>): number {
  let n = 0;
  for (const [p, v] of versions ?? new Map<string, { rows: number }>()) {
    if (!parts || (parts.has(p) && filterablePartition(p))) n += v.rows;
  }
  return n;
}

/**
 * The `<layer>_<table>_baseline` view of a model that reads its window from its own output, empty: where the model
 * runs over every day it reads (the speed layer judging one file, a table never published, SQL tests).
 */
export async function emptyOwnBaseline(conn: DuckDBConnection, model: ModelSpec): Promise<void> {
  if (model.baselineFromOwnOutput) {
    await emptyView(conn, `${model.layer}_${model.table}_baseline`, model.baselineFromOwnOutput.columns);
  }
}

/** Keeps only the rows of the computed units (rows of other partitions saw a truncated window). */
async function restrictToUnits(
  conn: DuckDBConnection,
  table: string,
  model: ModelSpec,
  units: string[],
): Promise<void> {
  if (!isPartitioned(model)) return;
  await conn.run(
    `delete from ${sqlIdent(table)} where ${publishPartitionExpr(model.partitionBy)} not in (${units.map(sqlString).join(', ') || "''"})`,
  );
}

/**
 * The lineage rows of the computed units, appended in the publishing transaction: code version, the versions of
 * the inputs they were computed from, and their own data version (rows and content hash, '' when empty).
 */
async function lineageWriter(
  ctx: LakeContext,
  model: ModelSpec,
  plan: ModelPlan,
  published: Map<string, { rows: number; hash: string }>,
): Promise<(conn: DuckDBConnection) => Promise<void>> {
  // The publish's own per-partition stats (one hashing pass over the rows). A model computed as one unit (WHOLE)
  // records the whole table: Σ rows and Σ of the row-hash sums (exact integers), as one group would give.
  let stats = published;
  if (!isPartitioned(model)) {
    const all = [...published.values()];
    stats = new Map([
      [
        WHOLE,
        all.length === 0
          ? { rows: 0, hash: '' }
          : {
              rows: all.reduce((a, x) => a + x.rows, 0),
              hash: all.reduce((a, x) => a + BigInt(x.hash), 0n).toString(),
            },
      ],
    ]);
  }
  const now = new Date().toISOString();
  const values = plan.units.map((u) => {
    const e = plan.state.expected.get(u)!;
    const st = stats.get(u);
    return `(${[model.layer, model.table, u, e.codeVersion, JSON.stringify(e.inputs), st?.hash ?? '']
      .map(sqlString)
      .join(', ')}, ${st?.rows ?? 0}, ${sqlString(ctx.runId)}, ${sqlString(now)}::timestamptz)`;
  });
  return async (conn) => {
    for (let i = 0; i < values.length; i += 500) {
      await conn.run(
        `insert into ${qualified(ctx.lake, 'meta', 'lineage')} values ${values.slice(i, i + 500).join(', ')}`,
      );
    }
  };
}

/**
 * What a model step was building, for error messages: the table and its partition(s), e.g.
 * `gold.org_service_cost_summary summary_date 2025-08-01..2025-08-03 (3 partitions)`.
 */
export function buildScope(model: ModelSpec, units: string[]): string {
  const name = `${model.layer}.${model.table}`;
  if (units.length === 0 || !isPartitioned(model)) return `${name} (whole table)`;
  const sorted = [...units].sort();
  const list =
    sorted.length <= 3 ? sorted.join(', ') : `${sorted[0]}..${sorted[sorted.length - 1]} (${sorted.length} partitions)`;
  return `${name} ${model.partitionBy} ${list}`;
}

function recordPlan(metrics: StepMetrics, plan: ModelPlan): void {
  metrics.partitionsConsidered = plan.state.considered;
  metrics.partitionsRecomputed = plan.units.length;
}

/**
 * Every table a pipeline run publishes, with the columns its publish will give it: bronze from the contracts, silver
 * and gold from their models' SQL bound over empty inputs in wave order (`describe`: nothing is read or computed),
 * quarantine from the rule columns (plus the partition column of a partitioned model).
 */
export async function registryTables(deps: ActivityDeps): Promise<TableDef[]> {
  const conn = await deps.db.connect();
  try {
    await prepareModelConnection(conn, deps.config, 'registry-tables');
    const defs: TableDef[] = [];
    const columns = new Map<string, ColumnDef[]>();
    const add = (d: TableDef): void => {
      defs.push(d);
      columns.set(`${d.layer}.${d.table}`, d.columns);
    };
    for (const table of CSV_BRONZE_TABLES) {
      add({ layer: 'bronze', table, columns: fallbackColumns({ layer: 'bronze', table })! });
      add({ layer: 'quarantine', table, columns: QUARANTINE_COLUMNS, partitionBy: 'rule' });
    }
    add({ layer: 'bronze', table: 'usage_events', columns: BRONZE_EVENT_COLUMNS, partitionBy: 'usage_date' });
    for (const model of [...waves(SILVER_MODELS).flat(), ...waves(GOLD_MARTS).flat()]) {
      for (const i of model.inputs)
        await emptyView(conn, `${i.layer}_${i.table}`, columns.get(`${i.layer}.${i.table}`)!);
      await emptyOwnBaseline(conn, model);
      if (model.rangeBound) await conn.run(`set variable range_first = null; set variable range_last = null`);
      const out = (await queryRows(conn, `describe select * from (\n${loadSql(model.sql)}\n)`)).map((r) => ({
        name: String(r.column_name),
        type: String(r.column_type),
      }));
      const internal = new Set(['_rule', '_detail', '_raw']);
      add({
        layer: model.layer,
        table: model.table,
        columns: out.filter((c) => !internal.has(c.name)),
        partitionBy: model.partitionBy,
      });
      if (model.layer === 'silver') {
        const part = model.partitionBy ? out.filter((c) => c.name === model.partitionBy) : [];
        add({
          layer: 'quarantine',
          table: model.table,
          columns: [...QUARANTINE_COLUMNS, ...part],
          partitionBy: 'rule',
        });
      }
    }
    return defs;
  } finally {
    conn.closeSync();
  }
}

/** `layer.table` of every table {@link registryTables} defines, without binding any model. */
export function registryTableNames(): string[] {
  return [
    ...new Set([
      ...CSV_BRONZE_TABLES.flatMap((t) => [`bronze.${t}`, `quarantine.${t}`]),
      'bronze.usage_events',
      ...SILVER_MODELS.flatMap((m) => [`silver.${m.table}`, `quarantine.${m.table}`]),
      ...GOLD_MARTS.map((m) => `gold.${m.table}`),
    ]),
  ];
}

const tablesReady = new WeakMap<DuckDBInstance, Map<string, Promise<void>>>();

/**
 * Before a pipeline step publishes: the lake's missing registry tables, created once per process and lake in one
 * catalog transaction (lake/lakehouse.ts createMissingTables says why). Never fails the step: on any error the
 * publishes create their tables one by one, as they always could.
 */
export function ensureRegistryTables(deps: ActivityDeps, lake: AttachedLake): Promise<void> {
  let perInstance = tablesReady.get(deps.db);
  if (!perInstance) {
    perInstance = new Map();
    tablesReady.set(deps.db, perInstance);
  }
  let ready = perInstance.get(lake.alias);
  if (!ready) {
    ready = (async () => {
      const conn = await deps.db.connect();
      try {
        // The describe dry run of every model (registryTables) only when a table is missing: a lake built before
        // costs one catalog read here.
        const existing = await lakeTableNames(conn, lake);
        if (registryTableNames().every((n) => existing.has(n))) return;
        await createMissingTables(conn, lake, await registryTables(deps));
      } catch (e) {
        warn('lake tables not created ahead; each publish creates its own', {
          lake: lake.root,
          error: firstLine(e),
        });
      } finally {
        conn.closeSync();
      }
    })();
    perInstance.set(lake.alias, ready);
  }
  return ready;
}

/**
 * Builds one silver table from its model: rows with a rule id go to quarantine/<table> (rule, detail, source file
 * and line, raw record), the rest to silver/<table>. Retries are safe: outputs are a pure function of bronze and
 * only partitions whose content changed are rewritten.
 */
export async function buildSilver(deps: ActivityDeps, input: ModelTarget & { table: string }): Promise<StepMetrics> {
  const started = Date.now();
  const model = findModel('silver', input.table);
  const metrics = emptyMetrics(`silver.${model.table}`, 'silver', model.table);
  const ctx = await openLake(deps, input);
  await ensureRegistryTables(deps, ctx.lake);
  const { conn } = ctx;
  const done = onCancel(conn);
  let building: string[] = [];
  try {
    const plan = forChunk(
      (await planModels(conn, ctx.lake, deps.config, [model], input.force)).get(`${model.layer}.${model.table}`)!,
      input.units,
    );
    building = plan.units;
    recordPlan(metrics, plan);
    if (plan.units.length === 0) {
      // Nothing stale: no transform work at all (SPEC §9a). A chunk's days already built add no rows to null rates.
      metrics.rowsOut = plan.rows ?? 0;
      metrics.partitionsUnchanged = plan.state.considered;
      if (input.units) metrics.nullCounts = { rows: 0, nulls: {} };
      metrics.durationMs = Date.now() - started;
      return metrics;
    }
    await acquireThreads(deps.db, deps.config, plannedInputRows(model, plan, deps.config));
    const chunks = chunkUnits(model, plan, deps.config.modelChunkRows);
    if (chunks.length > 1) metrics.extra.chunks = chunks.length;
    const nulls: NullCounts[] = [];
    let last: PublishResult | undefined;
    for (const [k, units] of chunks.entries()) {
      building = units;
      // After the first chunk the plan's versions of the table and its quarantine are out of date.
      const chunkPlan = { ...plan, units, versions: k === 0 ? plan.versions : undefined };
      const chunk = await buildSilverChunk(ctx, deps, model, chunkPlan, metrics);
      nulls.push(chunk.nulls);
      last = chunk.pub;
      heartbeat({ chunk: units[units.length - 1] });
    }
    metrics.rowsOut = last!.rows;
    metrics.partitionsUnchanged = last!.partitions - metrics.partitionsWritten;
    metrics.nullRates = ratesOf(nulls);
    if (input.units) metrics.nullCounts = sumCounts(nulls);
    metrics.durationMs = Date.now() - started;
    return metrics;
  } catch (e) {
    throw classify(e, buildScope(model, building));
  } finally {
    done();
    await conn
      .run(
        `drop view if exists _kept; drop view if exists _rejected; drop table if exists _model; drop table if exists _judged`,
      )
      .catch(() => undefined);
    conn.closeSync();
  }
}

/**
 * The plan's units in chunks of consecutive partitions whose rows of the layer below add up to at most `maxRows`
 * (at least one partition a chunk), in ascending order. A model that reads its trailing window from its own output
 * (silver.usage_events' baseline) then finds every earlier day of the run already published when a later chunk
 * reads it, so the chunks compute what one pass would; memory is one chunk's rows and their window.
 */
export function chunkUnits(model: ModelSpec, plan: ModelPlan, maxRows: number): string[][] {
  const units = [...plan.units].sort();
  if (!isPartitioned(model) || units.length <= 1) return [units];
  const below = model.inputs.find((i) => i.layer === 'bronze' && partitionColumn(i) === model.partitionBy);
  const rows = below ? plan.inputs.get(`${below.layer}.${below.table}`) : undefined;
  if (!rows) return [units];
  const chunks: string[][] = [];
  let cur: string[] = [];
  let n = 0;
  for (const u of units) {
    const r = rows.get(u)?.rows ?? 0;
    if (cur.length > 0 && n + r > maxRows) {
      chunks.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(u);
    n += r;
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

/**
 * One chunk of a silver build: the model over the chunk's partitions, then the table, its quarantine and the
 * partitions' lineage in one publish. Adds the chunk's figures to `metrics`.
 */
async function buildSilverChunk(
  ctx: LakeContext,
  deps: ActivityDeps,
  model: ModelSpec,
  plan: ModelPlan,
  metrics: StepMetrics,
): Promise<{ pub: PublishResult; nulls: NullCounts }> {
  const { conn } = ctx;
  const add = (k: string, v: number): void => {
    metrics.extra[k] = Number(metrics.extra[k] ?? 0) + v;
  };
  metrics.rowsIn += await registerInputs(ctx, model, deps, plan);
  await conn.run(`create or replace temp table _model as ${loadSql(model.sql)}`);
  await restrictToUnits(conn, '_model', model, plan.units);
  await conn.run(
    // Views over the computed rows, not copies: at S=100 a copy of the kept events is 4 M rows × 35 columns.
    `create or replace temp view _kept as select * exclude (_rule, _detail, _raw) from _model where _rule is null`,
  );
  const scoped = isPartitioned(model);
  // What this step judged, for its metrics and the gate: the rows of the recomputed partitions (rowsIn also counts
  // the window days they read). Rows of no day (an unparseable timestamp: bronze's NULL partition, which gathers
  // them from all history) count once, when first judged: the rows of that partition already in quarantine were
  // counted by the run that put them there, or every later run would re-count the whole history's bad rows.
  const known =
    scoped && plan.units.includes(NULL_PARTITION) && (await lakeColumns(conn, ctx.lake, 'quarantine', model.table))
      ? `not exists (select 1 from ${qualified(ctx.lake, 'quarantine', model.table)} q
           where q.${sqlIdent(model.partitionBy!)} is null and q.rule <> 'malformed_json'
             and q.source_file = m.source_file and q.source_line = m.source_line)`
      : 'true';
  await conn.run(
    `create or replace temp table _judged as select _rule from _model m
     where ${scoped ? `m.${sqlIdent(model.partitionBy!)} is not null or ${known}` : 'true'}`,
  );
  const [computed] = await queryRows(
    conn,
    `select count(*)::bigint as n, count(*) filter (where _rule is null)::bigint as kept from _judged`,
  );
  add('rows_computed', Number(computed.n));
  add('rows_kept', Number(computed.kept));
  // A partition-scoped run owns the quarantine rows of the days it recomputed (usage_date names the day).
  await conn.run(
    `create or replace temp view _rejected as
     select _rule as rule, _detail as detail, source_file, source_line::integer as source_line, _raw as raw
            ${scoped ? `, ${sqlIdent(model.partitionBy!)}` : ''}
     from _model where _rule is not null`,
  );
  const units = new Set(plan.units);
  const keptStats = await sourceStats(conn, '_kept', model.partitionBy);
  const lineage = await lineageWriter(ctx, model, plan, keptStats);
  // The table, its quarantine and the partitions' lineage commit together. Bronze owns the malformed_json rows
  // of quarantine.usage_events; silver owns the rest.
  const [pub, qpub] = await publishTables(
    ctx,
    [
      {
        layer: 'silver',
        table: model.table,
        source: '_kept',
        partitionBy: model.partitionBy,
        stats: keptStats,
        known: plan.versions?.(`silver.${model.table}`),
        ...(scoped ? { owns: (p: string) => units.has(p) } : {}),
      },
      {
        layer: 'quarantine',
        table: model.table,
        source: '_rejected',
        partitionBy: 'rule',
        known: plan.versions?.(`quarantine.${model.table}`),
        ...(scoped
          ? { scope: `rule <> 'malformed_json' and ${partitionFilter(model.partitionBy!, plan.units)}` }
          : { owns: (p: string) => p !== 'malformed_json' }),
      },
    ],
    { step: `silver.${model.table}`, extra: [lineage] },
  );
  metrics.partitionsChanged += pub.written.length + pub.deleted.length;
  add('quarantine_partitions_changed', qpub.written.length + qpub.deleted.length);
  for (const r of await queryRows(
    conn,
    `select _rule as rule, count(*)::bigint as n from _judged where _rule is not null group by 1 order by 1`,
  )) {
    metrics.quarantined[String(r.rule)] = (metrics.quarantined[String(r.rule)] ?? 0) + Number(r.n);
  }
  metrics.partitionsWritten += pub.written.length;
  const nulls = await nullCounts(conn, '_kept', model.keyColumns);
  if (model.table === 'usage_events') {
    const [f] = await queryRows(
      conn,
      `select count(*) filter (where value_cast_failed)::bigint as value_cast_failed,
              count(*) filter (where unit_imputed)::bigint as unit_imputed,
              count(*) filter (where region_unknown)::bigint as region_unknown,
              count(*) filter (where orphan_org)::bigint as orphan_org,
              count(*) filter (where orphan_resource)::bigint as orphan_resource,
              count(*) filter (where zscore_flag)::bigint as anomaly_zscore,
              count(*) filter (where mad_flag)::bigint as anomaly_mad,
              count(*) filter (where pctl_flag)::bigint as anomaly_pctl,
              count(*) filter (where is_anomaly)::bigint as anomaly_any
       from _kept`,
    );
    for (const [k, v] of Object.entries(f)) add(k, Number(v));
  }
  return { pub, nulls };
}

/**
 * Builds one gold mart from silver. The result's columns must equal the mart contract of SPEC §6 exactly (names
 * and order) — a mismatch is a non-retryable ContractViolation. Only changed partitions are rewritten.
 */
export async function buildGold(deps: ActivityDeps, input: ModelTarget & { mart: string }): Promise<StepMetrics> {
  const started = Date.now();
  const model = findModel('gold', input.mart);
  const metrics = emptyMetrics(`gold.${model.table}`, 'gold', model.table);
  const ctx = await openLake(deps, input);
  await ensureRegistryTables(deps, ctx.lake);
  const { conn } = ctx;
  const done = onCancel(conn);
  let building: string[] = [];
  try {
    const plan = forChunk(
      (await planModels(conn, ctx.lake, deps.config, [model], input.force)).get(`${model.layer}.${model.table}`)!,
      input.units,
    );
    building = plan.units;
    recordPlan(metrics, plan);
    if (plan.units.length === 0) {
      metrics.rowsOut = plan.rows ?? 0;
      metrics.partitionsUnchanged = plan.state.considered;
      metrics.changedPartitions = [];
      if (input.units) metrics.nullCounts = { rows: 0, nulls: {} };
      metrics.durationMs = Date.now() - started;
      return metrics;
    }
    metrics.rowsIn = await registerInputs(ctx, model, deps, plan);
    await acquireThreads(deps.db, deps.config, plannedInputRows(model, plan, deps.config));
    await conn.run(`create or replace temp table _mart as ${loadSql(model.sql)}`);
    await restrictToUnits(conn, '_mart', model, plan.units);
    const cols = (await queryRows(conn, `describe _mart`)).map((r) => String(r.column_name));
    const expected = GOLD_COLUMNS[model.table];
    if (JSON.stringify(cols) !== JSON.stringify(expected)) {
      throw contractViolation(
        `gold.${model.table} columns [${cols.join(', ')}] differ from the mart contract [${expected.join(', ')}]`,
      );
    }
    const units = new Set(plan.units);
    const martStats = await sourceStats(conn, '_mart', model.partitionBy);
    const lineage = await lineageWriter(ctx, model, plan, martStats);
    const [pub] = await publishTables(
      ctx,
      [
        {
          layer: 'gold',
          table: model.table,
          source: '_mart',
          partitionBy: model.partitionBy,
          stats: martStats,
          known: plan.versions?.(`gold.${model.table}`),
          ...(isPartitioned(model) ? { owns: (p: string) => units.has(p) } : {}),
        },
      ],
      { step: `gold.${model.table}`, extra: [lineage] },
    );
    metrics.partitionsChanged = pub.written.length + pub.deleted.length;
    metrics.changedPartitions = [...pub.written, ...pub.deleted].sort();
    metrics.rowsOut = pub.rows;
    metrics.partitionsWritten = pub.written.length;
    metrics.partitionsUnchanged = pub.unchanged;
    const counts = await nullCounts(conn, '_mart', model.keyColumns);
    metrics.nullRates = ratesOf([counts]);
    if (input.units) metrics.nullCounts = counts;
    if (model.table === 'cost_anomaly_mart') {
      const [f] = await queryRows(conn, `select count(*) filter (where is_anomaly)::bigint as anomaly_days from _mart`);
      metrics.extra.anomaly_days = Number(f.anomaly_days);
    }
    metrics.durationMs = Date.now() - started;
    return metrics;
  } catch (e) {
    throw classify(e, buildScope(model, building));
  } finally {
    done();
    await conn.run(`drop table if exists _mart`).catch(() => undefined);
    conn.closeSync();
  }
}

/** What a wave's planning step returns: the models to run, and the metrics of those with nothing stale. */
export interface WavePlan {
  run: string[];
  skipped: StepMetrics[];
  /** Per table to run, the partitions it will compute, for the step's name in the UI (e.g. `2025-08-01..2025-08-31`). */
  scope?: Record<string, string>;
  /**
   * Per table whose work is more than one chunk (`chunkUnits`, CPA_MODEL_CHUNK_ROWS): its chunks in ascending order,
   * each run as an activity of its own that any worker may take (SPEC §9a, work spread over workers).
   */
  chunks?: Record<string, ChunkPlan[]>;
}

/** One chunk of a table's work: its partitions, and how the UI names them (`describeUnits`). */
export interface ChunkPlan {
  units: string[];
  scope: string;
}

/** The partitions of a plan in a few characters: `all`, one value, or `first..last (n)`. */
export function describeUnits(units: string[]): string {
  const named = units.filter((u) => u !== WHOLE).sort();
  if (named.length === 0) return 'all';
  if (named.length === 1) return named[0];
  return `${named[0]}..${named[named.length - 1]} (${named.length})`;
}

/**
 * Plans a wave of models (SPEC §9a) with two catalog reads: the models with stale partitions are returned to run;
 * the others get their step metrics here (partitions considered, none recomputed) and no activity of their own,
 * so a run with nothing new does no transform work.
 */
export async function planWave(
  deps: ActivityDeps,
  input: ModelTarget & { layer: 'silver' | 'gold'; tables: string[] },
): Promise<WavePlan> {
  const started = Date.now();
  const models = input.tables.map((t) => findModel(input.layer, t));
  return withLake(deps, input.lake, async (conn, lake) => {
    const plans = await planModels(conn, lake, deps.config, models, input.force);
    const out: WavePlan = { run: [], skipped: [], scope: {} };
    for (const m of models) {
      const plan = plans.get(`${m.layer}.${m.table}`)!;
      if (plan.units.length > 0) {
        out.run.push(m.table);
        out.scope![m.table] = describeUnits(plan.units);
        const chunks = chunkUnits(m, plan, deps.config.modelChunkRows);
        if (chunks.length > 1) {
          out.chunks ??= {};
          out.chunks[m.table] = chunks.map((units) => ({ units, scope: describeUnits(units) }));
        }
        continue;
      }
      const metrics = emptyMetrics(`${m.layer}.${m.table}`, m.layer, m.table);
      recordPlan(metrics, plan);
      metrics.rowsOut = plan.rows ?? 0;
      metrics.partitionsUnchanged = plan.state.considered;
      if (m.layer === 'gold') metrics.changedPartitions = [];
      metrics.extra.planned_in_ms = Date.now() - started;
      out.skipped.push(metrics);
    }
    return out;
  });
}

/**
 * What bronze holds for one logical date: the usage events of that day (its bronze partition's row count). A run for a
 * date with none says so (SPEC §13): a scheduled run whose feed delivered nothing is otherwise a quiet green run.
 */
export async function dateData(
  deps: ActivityDeps,
  input: { lake: string; date: string },
): Promise<{ usageEvents: number }> {
  return withLake(deps, input.lake, async (conn, lake) => {
    const v = await partitionVersions(conn, lake, 'bronze', 'usage_events');
    return { usageEvents: v.get(input.date)?.rows ?? 0 };
  });
}
