import { BRONZE_EVENT_COLUMNS, CSV_CONTRACTS, GOLD_COLUMNS, INGEST_COLUMNS } from '../config/contracts';
import type { ColumnDef, LakeContext } from '../lake/lakehouse';
import { publishTable, publishTables, registerView } from '../lake/lakehouse';
import { loadSql, queryRows } from '../lake/duckdb';
import { findModel } from '../lake/tables';
import type { ModelSpec, TableRef } from '../lake/tables';
import { classify, contractViolation, emptyMetrics, nullRates, onCancel, openLake } from './common';
import type { ActivityDeps, RunTarget, StepMetrics } from './common';

/** Columns to type an empty view with when an input table has never been written. */
function fallbackColumns(ref: TableRef): ColumnDef[] | undefined {
  if (ref.layer !== 'bronze') return undefined;
  if (ref.table === 'usage_events') return BRONZE_EVENT_COLUMNS;
  const contract = CSV_CONTRACTS.find((c) => c.bronze === ref.table);
  return contract ? [...contract.columns, ...INGEST_COLUMNS] : undefined;
}

async function registerInputs(ctx: LakeContext, model: ModelSpec): Promise<number> {
  let rowsIn = 0;
  for (const input of model.inputs) {
    const m = await registerView(
      ctx,
      input.layer,
      input.table,
      `${input.layer}_${input.table}`,
      fallbackColumns(input),
    );
    if (m && input.layer === (model.layer === 'silver' ? 'bronze' : 'silver')) rowsIn += m.rows;
  }
  return rowsIn;
}

/**
 * Builds one silver table from its model: rows with a rule id go to quarantine/<table> (rule, detail, source file
 * and line, raw record), the rest to silver/<table>. Retries are safe: outputs are a pure function of bronze and
 * only partitions whose content changed are rewritten.
 */
export async function buildSilver(deps: ActivityDeps, input: RunTarget & { table: string }): Promise<StepMetrics> {
  const started = Date.now();
  const model = findModel('silver', input.table);
  const metrics = emptyMetrics(`silver.${model.table}`, 'silver', model.table);
  const ctx = await openLake(deps, input);
  const { conn } = ctx;
  const done = onCancel(conn);
  try {
    metrics.rowsIn = await registerInputs(ctx, model);
    await conn.run(`create or replace temp table _model as ${loadSql(model.sql)}`);
    await conn.run(
      `create or replace temp table _kept as select * exclude (_rule, _detail, _raw) from _model where _rule is null`,
    );
    await conn.run(
      `create or replace temp table _rejected as
       select _rule as rule, _detail as detail, source_file, source_line::integer as source_line, _raw as raw
       from _model where _rule is not null`,
    );
    // The table and its quarantine commit together. Bronze owns the malformed_json partition of
    // quarantine.usage_events; silver owns the rest.
    const [pub] = await publishTables(
      ctx,
      [
        { layer: 'silver', table: model.table, source: '_kept', partitionBy: model.partitionBy },
        {
          layer: 'quarantine',
          table: model.table,
          source: '_rejected',
          partitionBy: 'rule',
          owns: (p) => p !== 'malformed_json',
        },
      ],
      { step: `silver.${model.table}` },
    );
    for (const r of await queryRows(
      conn,
      `select rule, count(*)::bigint as n from _rejected group by rule order by rule`,
    )) {
      metrics.quarantined[String(r.rule)] = Number(r.n);
    }
    metrics.rowsOut = pub.rows;
    metrics.partitionsWritten = pub.written.length;
    metrics.partitionsUnchanged = pub.unchanged;
    metrics.nullRates = await nullRates(conn, '_kept', model.keyColumns);
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
      for (const [k, v] of Object.entries(f)) metrics.extra[k] = Number(v);
    }
    metrics.durationMs = Date.now() - started;
    return metrics;
  } catch (e) {
    throw classify(e, `silver.${model.table}`);
  } finally {
    done();
    await conn
      .run(`drop table if exists _model; drop table if exists _kept; drop table if exists _rejected`)
      .catch(() => undefined);
    conn.closeSync();
  }
}

/**
 * Builds one gold mart from silver. The result's columns must equal the mart contract of SPEC §6 exactly (names
 * and order) — a mismatch is a non-retryable ContractViolation. Only changed partitions are rewritten.
 */
export async function buildGold(deps: ActivityDeps, input: RunTarget & { mart: string }): Promise<StepMetrics> {
  const started = Date.now();
  const model = findModel('gold', input.mart);
  const metrics = emptyMetrics(`gold.${model.table}`, 'gold', model.table);
  const ctx = await openLake(deps, input);
  const { conn } = ctx;
  const done = onCancel(conn);
  try {
    metrics.rowsIn = await registerInputs(ctx, model);
    await conn.run(`create or replace temp table _mart as ${loadSql(model.sql)}`);
    const cols = (await queryRows(conn, `describe _mart`)).map((r) => String(r.column_name));
    const expected = GOLD_COLUMNS[model.table];
    if (JSON.stringify(cols) !== JSON.stringify(expected)) {
      throw contractViolation(
        `gold.${model.table} columns [${cols.join(', ')}] differ from the mart contract [${expected.join(', ')}]`,
      );
    }
    const pub = await publishTable(ctx, {
      layer: 'gold',
      table: model.table,
      source: '_mart',
      partitionBy: model.partitionBy,
    });
    metrics.changedPartitions = [...pub.written, ...pub.deleted].sort();
    metrics.rowsOut = pub.rows;
    metrics.partitionsWritten = pub.written.length;
    metrics.partitionsUnchanged = pub.unchanged;
    metrics.nullRates = await nullRates(conn, '_mart', model.keyColumns);
    if (model.table === 'cost_anomaly_mart') {
      const [f] = await queryRows(conn, `select count(*) filter (where is_anomaly)::bigint as anomaly_days from _mart`);
      metrics.extra.anomaly_days = Number(f.anomaly_days);
    }
    metrics.durationMs = Date.now() - started;
    return metrics;
  } catch (e) {
    throw classify(e, `gold.${model.table}`);
  } finally {
    done();
    await conn.run(`drop table if exists _mart`).catch(() => undefined);
    conn.closeSync();
  }
}
