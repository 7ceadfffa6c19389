import crypto from 'node:crypto';
import { addDays } from '../workflows/logical-date';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { AttachedLake } from './lakehouse';
import { NULL_PARTITION, qualified } from './lakehouse';
import { loadSql, queryRows, sqlIdent, sqlString } from './duckdb';
import type { ModelSpec } from './tables';
import type { Config } from '../config/env';
import { aliasRows } from '../config/aliases';
import { isPartitioned, windowDays } from './tables';

/**
 * Incremental computation by partition (SPEC §9a). Every published partition has a data version (its content hash
 * in `meta.partitions`); every derived partition records in `meta.lineage` the code version of its model and a
 * version per input (the versions of the input partitions its dependency spans). A partition is stale when those
 * differ from the current ones; a run recomputes exactly the stale partitions.
 *
 * A model whose inputs are all whole tables (`all`) is one unit, recorded as the partition {@link WHOLE}.
 */

export const WHOLE = '*';

/**
 * The parameters the models read through getvariable(), as SQL literals (email_salt raw: it is bound as a
 * parameter). The code version of a model hashes the ones its SQL references (lake/incremental.ts).
 */
export function modelVariables(config: Config): Record<string, string> {
  const a = config.anomaly;
  return {
    anomaly_zscore: String(a.zscore),
    anomaly_robust_z: String(a.robustZ),
    anomaly_pctl_factor: String(a.pctlFactor),
    anomaly_min_obs: String(a.minObs),
    anomaly_baseline_days: String(a.baselineDays),
    anomaly_by_metric: String(a.byMetric),
    reconciliation_tolerance: String(config.reconciliationTolerance),
    rule_max_event_cost_usd: String(config.rules.maxEventCostUsd),
    rule_max_event_value: String(config.rules.maxEventValue),
    rule_max_event_carbon_kg: String(config.rules.maxEventCarbonKg),
    rule_max_event_genai_tokens: String(config.rules.maxEventGenaiTokens),
    rule_max_invoice_usd: String(config.rules.maxInvoiceUsd),
    rule_max_fx_rate: String(config.rules.maxFxRate),
    rule_min_date: `'${config.rules.minDate}'`,
    rule_max_future_days: String(config.rules.maxFutureDays),
    currencies: `[${config.currencies.map((c) => `'${c.replace(/[^A-Z]/g, '')}'`).join(', ')}]`,
    email_salt: config.emailSalt,
  };
}

/** A version of the alias table (models that canonicalise names depend on it). */
export function aliasesVersion(): string {
  return crypto.createHash('sha256').update(JSON.stringify(aliasRows())).digest('hex').slice(0, 16);
}

/** A partition version as `meta.partitions` holds it. */
export type Versions = Map<string, { rows: number; hash: string }>;

export interface LineageRecord {
  codeVersion: string;
  inputs: Record<string, string>;
  dataHash: string;
  rows: number;
}

export interface StalePartition {
  partition: string;
  /** Why: `new`, `code`, `forced`, `range`, or the input whose version changed (e.g. `bronze.usage_events`). */
  reasons: string[];
}

export interface Staleness {
  /** Partitions (units) the model has or could have from its inputs. */
  considered: number;
  stale: StalePartition[];
  /** What each considered partition's lineage would say now (written with the recomputed ones). */
  expected: Map<string, { codeVersion: string; inputs: Record<string, string> }>;
}

function sha(parts: string[]): string {
  return crypto.createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 24);
}

/** Variables a run sets for how (or which units) it computes, never what: not part of a model's code version. */
const RUN_VARIABLES = ['model_units', 'baseline_by_join'];

/**
 * The model's code version: a hash of its SQL and of every parameter its SQL reads (the values of the
 * `getvariable(…)` it references, and the alias table when it uses `_aliases`). Range variables and
 * {@link RUN_VARIABLES} are data or plan, not code.
 */
export function codeVersion(model: ModelSpec, vars: Record<string, string>, aliasesHash: string): string {
  const sql = loadSql(model.sql);
  const used = [...new Set([...sql.matchAll(/getvariable\('([a-z0-9_]+)'\)/g)].map((m) => m[1]))]
    .filter((v) => !v.startsWith('range_') && !RUN_VARIABLES.includes(v))
    .sort();
  const parts = [model.table, sql, ...used.map((v) => `${v}=${vars[v] ?? ''}`)];
  if (/\b_aliases\b|canon\(|norm_token\(/.test(sql)) parts.push(`aliases=${aliasesHash}`);
  return sha(parts);
}

/** Whether a partition name is a date (YYYY-MM-DD). */
export function isDate(p: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(p);
}

/** The input partitions an output partition `p` needs under a dependency of `days` trailing days. */
export function windowOf(p: string, days: number): string[] {
  if (!isDate(p)) return [p];
  const out: string[] = [];
  for (let k = days; k >= 0; k--) out.push(addDays(p, -k));
  return out;
}

function tableVersion(v: Versions): string {
  return sha([...v.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, x]) => `${p}:${x.rows}:${x.hash}`));
}

function partsVersion(v: Versions, parts: string[]): string {
  return sha(parts.map((p) => `${p}:${v.get(p)?.rows ?? 0}:${v.get(p)?.hash ?? ''}`));
}

export interface StalenessInput {
  model: ModelSpec;
  code: string;
  baselineDays: number;
  /** Current versions of each input, keyed `layer.table`. */
  inputs: Map<string, Versions>;
  /** The model's recorded lineage per partition. */
  lineage: Map<string, LineageRecord>;
  /** Partitions to recompute whether stale or not (a forced backfill): dates in [from, to]. */
  force?: { from: string; to: string };
}

/** The date range [first, last] of the model's windowed inputs (NULL partition left out). */
export function inputRange(
  model: ModelSpec,
  inputs: Map<string, Versions>,
): { first: string; last: string } | undefined {
  const dates: string[] = [];
  for (const i of model.inputs) {
    if (i.dep.kind === 'all') continue;
    for (const p of inputs.get(`${i.layer}.${i.table}`)?.keys() ?? []) if (isDate(p)) dates.push(p);
  }
  if (dates.length === 0) return undefined;
  dates.sort();
  return { first: dates[0], last: dates[dates.length - 1] };
}

/**
 * Which partitions of `model` are stale, and why. Candidates are the partitions the model has recorded plus every
 * partition a current input partition can reach through its window (an input day b reaches b … b + days).
 */
export function staleness(s: StalenessInput): Staleness {
  const { model } = s;
  const expected = new Map<string, { codeVersion: string; inputs: Record<string, string> }>();
  const candidates = new Set<string>();
  const partitioned = isPartitioned(model);
  const range = model.rangeBound ? inputRange(model, s.inputs) : undefined;
  if (!partitioned) {
    candidates.add(WHOLE);
  } else {
    for (const p of s.lineage.keys()) candidates.add(p);
    for (const i of model.inputs) {
      const days = windowDays(i.dep, s.baselineDays);
      if (days === undefined) continue;
      for (const b of s.inputs.get(`${i.layer}.${i.table}`)?.keys() ?? []) {
        if (!isDate(b)) {
          candidates.add(b);
          continue;
        }
        for (let k = 0; k <= days; k++) candidates.add(addDays(b, k));
      }
    }
  }
  const stale: StalePartition[] = [];
  for (const p of [...candidates].sort()) {
    const inputs: Record<string, string> = {};
    for (const i of model.inputs) {
      const key = `${i.layer}.${i.table}`;
      const v = s.inputs.get(key) ?? new Map();
      const days = windowDays(i.dep, s.baselineDays);
      inputs[key] = days === undefined || p === WHOLE ? tableVersion(v) : partsVersion(v, windowOf(p, days));
    }
    if (range && isDate(p)) inputs.range = p < range.first ? 'before' : p > range.last ? 'after' : 'in';
    expected.set(p, { codeVersion: s.code, inputs });
    const rec = s.lineage.get(p);
    const reasons: string[] = [];
    if (!rec) reasons.push('new');
    else {
      if (rec.codeVersion !== s.code) reasons.push('code');
      for (const [k, v] of Object.entries(inputs)) if (rec.inputs[k] !== v) reasons.push(k);
    }
    if (s.force && isDate(p) && p >= s.force.from && p <= s.force.to) reasons.push('forced');
    if (reasons.length > 0) stale.push({ partition: p, reasons });
  }
  return { considered: candidates.size, stale, expected };
}

/** The input partitions the stale partitions need, per input (undefined = the whole input). */
export function neededPartitions(
  model: ModelSpec,
  stale: string[],
  baselineDays: number,
): Map<string, Set<string> | undefined> {
  const out = new Map<string, Set<string> | undefined>();
  for (const i of model.inputs) {
    const key = `${i.layer}.${i.table}`;
    const days = windowDays(i.dep, baselineDays);
    if (days === undefined || stale.includes(WHOLE)) {
      out.set(key, undefined);
      continue;
    }
    const set = new Set<string>();
    for (const p of stale) for (const q of windowOf(p, days)) set.add(q);
    out.set(key, set);
  }
  return out;
}

export interface ModelPlan {
  code: string;
  state: Staleness;
  /** Partitions (units) to compute now. */
  units: string[];
  inputs: Map<string, Versions>;
  /** Rows the model's table holds now. */
  rows?: number;
  /**
   * The partition versions read with the plan of a table it read or writes (`layer.table`; its quarantine too): what
   * the build's publish compares its output with, read once (the lake lease makes this run the table's only writer).
   */
  versions?: (table: string) => Versions;
}

/**
 * What a run must compute of each model now: its stale partitions (plus forced dates), SPEC §9a. Two catalog reads
 * in all (every table's current versions, every model's lineage), whatever the number of models: a wave's planning
 * step, a model's build step and `cpa status --stale` use it.
 */
export async function planModels(
  conn: DuckDBConnection,
  lake: AttachedLake,
  config: Config,
  models: ModelSpec[],
  force?: { from: string; to: string },
): Promise<Map<string, ModelPlan>> {
  if (models.length === 0) return new Map();
  // Only the tables these models read and write (and their quarantine): a wave's build step plans one model.
  const own = models.map((m) => `${m.layer}.${m.table}`);
  const read = new Set([
    ...own,
    ...models.filter((m) => m.layer === 'silver').map((m) => `quarantine.${m.table}`),
    ...models.flatMap((m) => m.inputs.map((i) => `${i.layer}.${i.table}`)),
  ]);
  const among = (set: Iterable<string>): string =>
    `layer || '.' || table_name in (${[...set].map(sqlString).join(', ')})`;
  const versions = new Map<string, Versions>();
  for (const r of await queryRows(
    conn,
    `select layer, table_name, partition, rows, hash, deleted from ${qualified(lake, 'meta', 'partitions')}
     where ${among(read)}
     qualify row_number() over (partition by layer, table_name, partition order by written_at desc, deleted desc) = 1`,
  )) {
    if (r.deleted) continue;
    const key = `${String(r.layer)}.${String(r.table_name)}`;
    if (!versions.has(key)) versions.set(key, new Map());
    versions.get(key)!.set(String(r.partition), { rows: Number(r.rows), hash: String(r.hash) });
  }
  const lineage = new Map<string, Map<string, LineageRecord>>();
  for (const r of await queryRows(
    conn,
    `select layer, table_name, partition, code_version, inputs, data_hash, rows from ${qualified(lake, 'meta', 'lineage')}
     where ${among(own)}
     qualify row_number() over (partition by layer, table_name, partition order by written_at desc) = 1`,
  )) {
    const key = `${String(r.layer)}.${String(r.table_name)}`;
    if (!lineage.has(key)) lineage.set(key, new Map());
    lineage.get(key)!.set(String(r.partition), {
      codeVersion: String(r.code_version),
      inputs: JSON.parse(String(r.inputs)) as Record<string, string>,
      dataHash: String(r.data_hash),
      rows: Number(r.rows),
    });
  }
  const vars = modelVariables(config);
  const aliases = aliasesVersion();
  const out = new Map<string, ModelPlan>();
  for (const model of models) {
    const code = codeVersion(model, vars, aliases);
    const inputs = new Map<string, Versions>();
    for (const i of model.inputs)
      inputs.set(`${i.layer}.${i.table}`, versions.get(`${i.layer}.${i.table}`) ?? new Map());
    const state = staleness({
      model,
      code,
      baselineDays: config.anomaly.baselineDays,
      inputs,
      lineage: lineage.get(`${model.layer}.${model.table}`) ?? new Map(),
      force,
    });
    const mine = versions.get(`${model.layer}.${model.table}`) ?? new Map<string, { rows: number }>();
    out.set(`${model.layer}.${model.table}`, {
      code,
      state,
      units: state.stale.map((x) => x.partition),
      inputs,
      rows: [...mine.values()].reduce((a, x) => a + x.rows, 0),
      versions: (t) => versions.get(t) ?? new Map(),
    });
  }
  return out;
}

/** Whether {@link partitionFilter} selects partition `p` when asked to (a date, or NULL_PARTITION); others it drops. */
export function filterablePartition(p: string): boolean {
  return p === NULL_PARTITION || isDate(p);
}

/** `col` restricted to a set of partition values (dates, and NULL_PARTITION for NULL), prunable by DuckLake. */
export function partitionFilter(col: string, parts: Iterable<string>): string {
  const all = [...parts];
  const dates = all.filter(isDate).sort();
  const clauses: string[] = [];
  if (dates.length > 0) {
    const c = sqlIdent(col);
    clauses.push(
      `(${c} between ${sqlString(dates[0])}::date and ${sqlString(dates[dates.length - 1])}::date ` +
        `and ${c} in (${dates.map((d) => `${sqlString(d)}::date`).join(', ')}))`,
    );
  }
  if (all.includes(NULL_PARTITION)) clauses.push(`${sqlIdent(col)} is null`);
  return clauses.length === 0 ? 'false' : `(${clauses.join(' or ')})`;
}

export { NULL_PARTITION };
