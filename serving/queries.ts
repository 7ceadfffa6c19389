import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import cassandra from 'cassandra-driver';
import type { Config } from '../config/env';
import { ATTRIBUTION_RANK, servingTable } from '../config/serving';
import { attachLake, registerView } from '../lake/lakehouse';
import { CassandraRejected, connect, describeError, requireCassandra } from '../lake/cassandra';
import type { CassandraClient } from '../lake/cassandra';
import { createDuckDb, ensureS3, queryRows } from '../lake/duckdb';
import type { Params } from '../lake/duckdb';
import { decimalText } from '../lake/serving-codec';
import { isS3 } from '../lake/storage';
import { addDays } from '../workflows/logical-date';
import { round6 } from '../lake/decimal';
import { ATTRIBUTION_MODELS, NON_MATCH_STATUSES, QUERIES } from './catalog';
import type { Backend, Cell, Kind, QueryId, ResultRow } from './catalog';

/**
 * The dashboard queries of SPEC §8 (q1–q5) and §6b (q6–q9), on two backends that return identical rows: Cassandra (the serving
 * tables) and DuckDB over the gold Parquet (the embedded default). Each query has one function per backend that only
 * fetches (parameters always bound, never spliced); defaults (`as_of` = the latest date in the data), shaping and
 * derived figures are shared, so both backends format every value the same way.
 */

const { types } = cassandra;

export { ATTRIBUTION_MODELS, QUERIES, QUERY_IDS } from './catalog';
export type { Backend, Cell, Kind, QueryId, ResultRow } from './catalog';

/** What the user may pass (`--org`, `--from`, `--to`, `--as-of`, `--top`, `--model`, `--month`). */
export interface QueryParams {
  org?: string;
  from?: string;
  to?: string;
  asOf?: string;
  top?: number;
  /** q7: one attribution model (default: both). */
  model?: string;
  /** q9: the billing month, YYYY-MM or any day of it (default: the month of --as-of, else the latest month). */
  month?: string;
}

/** Parameters after defaults: every query reports the window it actually read. */
export interface ResolvedParams {
  org: string | null;
  /** The data's reference day (q7 has none: null). */
  asOf: string | null;
  from: string | null;
  to: string | null;
  top: number | null;
  /** q7 only: the model asked for, null for both. */
  model?: string | null;
  /** q9 only: the month read. */
  month?: string;
}

export interface QueryResult {
  query: QueryId;
  title: string;
  backend: Backend;
  params: ResolvedParams;
  columns: string[];
  rows: ResultRow[];
}

/** Raw per-(day, severity) ticket counts, the shape both backends return for q3. */
export interface TicketCounts {
  ticket_date: unknown;
  severity: unknown;
  total_tickets: unknown;
  open_tickets: unknown;
  sla_breach_count: unknown;
}

type Raw = Record<string, unknown>;

/** One implementation per backend; each method is one bound, read-only query. */
export interface QuerySource {
  backend: Backend;
  latestDate(table: string): Promise<string | null>;
  q1(p: { org: string; from: string; to: string }): Promise<Raw[]>;
  q2(p: { org: string; asOf: string; top: number }): Promise<Raw[]>;
  q3(p: { org: string | null; from: string; to: string }): Promise<TicketCounts[]>;
  q4(p: { org: string; from: string; to: string }): Promise<Raw[]>;
  q5(p: { org: string; from: string; to: string }): Promise<Raw[]>;
  /** The org's customer_360 row (none for an unknown org). */
  q6(p: { org: string }): Promise<Raw[]>;
  /** The top `top` channel × campaign rows of one attribution model, by revenue_rank. */
  q7(p: { model: string; top: number }): Promise<Raw[]>;
  /** Every resource of the org (the shared code keeps the idle and stopped-but-billed ones). */
  q8(p: { org: string }): Promise<Raw[]>;
  /** The month's reconciliation rows whose status is not `match`. */
  q9(p: { month: string }): Promise<Raw[]>;
  /** Distinct org ids (benchmarks pick from them). */
  orgs(): Promise<string[]>;
  close(): Promise<void>;
}

export class QueryUsageError extends Error {
  override name = 'QueryUsageError';
}

// ---------------------------------------------------------------------------------------------------------------
// Shared: defaults, shaping, derived figures.

function monthStart(date: string): string {
  return `${date.slice(0, 7)}-01`;
}

function addMonths(date: string, months: number): string {
  const d = new Date(`${monthStart(date)}T00:00:00Z`);
  d.setUTCMonth(d.getUTCMonth() + months);
  return d.toISOString().slice(0, 10);
}

/** One value in its output form: decimals as exact fixed-scale text, counts as numbers, dates as YYYY-MM-DD. */
export function cell(kind: Kind, v: unknown): Cell {
  if (v === null || v === undefined) return null;
  switch (kind) {
    case 'dec6':
      return decimalText(v, 6);
    case 'dec9':
      return decimalText(v, 9);
    case 'count': {
      const b = BigInt(String(v));
      return b <= BigInt(Number.MAX_SAFE_INTEGER) && b >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString();
    }
    case 'int':
    case 'double':
      return Number(v);
    case 'bool':
      return v === true || v === 'true';
    case 'date':
      return String(v).slice(0, 10);
    default:
      return String(v);
  }
}

function shape(q: QueryId, raw: Raw[], extra: Record<string, Cell> = {}): ResultRow[] {
  const cols = QUERIES[q].columns;
  return raw.map((r) =>
    Object.fromEntries(cols.map(([name, kind]) => [name, name in extra ? extra[name] : cell(kind, r[name])])),
  );
}

/** q3's per-day figures from per-(day, severity) counts: every day of the window, zero-filled. */
export function ticketDays(counts: TicketCounts[], from: string, to: string): ResultRow[] {
  const byDay = new Map<string, { ct: number; co: number; cb: number; t: number; b: number }>();
  for (let d = from; d <= to; d = addDays(d, 1)) byDay.set(d, { ct: 0, co: 0, cb: 0, t: 0, b: 0 });
  for (const r of counts) {
    const day = byDay.get(String(r.ticket_date).slice(0, 10));
    if (!day) continue;
    const total = Number(r.total_tickets);
    const breaches = Number(r.sla_breach_count);
    day.t += total;
    day.b += breaches;
    if (r.severity === 'critical') {
      day.ct += total;
      day.co += Number(r.open_tickets);
      day.cb += breaches;
    }
  }
  return [...byDay.entries()].map(([d, x]) => ({
    ticket_date: d,
    critical_tickets: x.ct,
    critical_open: x.co,
    critical_sla_breaches: x.cb,
    critical_sla_breach_rate: x.ct > 0 ? round6(x.cb / x.ct) : null,
    total_tickets: x.t,
    sla_breaches: x.b,
    sla_breach_rate: x.t > 0 ? round6(x.b / x.t) : null,
  }));
}

const ORG_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;

const byText =
  (...cols: string[]) =>
  (a: ResultRow, b: ResultRow): number => {
    for (const c of cols) {
      const [x, y] = [String(a[c] ?? ''), String(b[c] ?? '')];
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  };

/** q6–q9 (SPEC §6b): whole-table marts, each answered from one partition of its serving table. */
async function runMartQuery(source: QuerySource, q: QueryId, p: QueryParams): Promise<QueryResult> {
  const def = QUERIES[q];
  const base = { query: q, title: def.title, backend: source.backend, columns: def.columns.map(([n]) => n) };
  const none = { from: null, to: null, top: null };
  if (q === 'q6' || q === 'q8') {
    let rows = shape(q, await source[q]({ org: p.org! }));
    // q8: idle (no events in the 14 days to as_of) or stopped/terminated and billed in the last 7 days
    if (q === 'q8') rows = rows.filter((r) => r.utilization_class === 'idle' || r.stopped_but_billed === true);
    rows.sort(byText(q === 'q6' ? 'org_id' : 'resource_id'));
    const asOf = rows.length > 0 ? (rows[0].as_of as string | null) : null;
    return { ...base, params: { org: p.org!, asOf, ...none }, rows };
  }
  if (q === 'q7') {
    if (p.model !== undefined && !(ATTRIBUTION_MODELS as readonly string[]).includes(p.model))
      throw new QueryUsageError(`--model must be one of ${ATTRIBUTION_MODELS.join(', ')}`);
    const top = p.top ?? 10;
    const models = p.model ? [p.model] : [...ATTRIBUTION_MODELS];
    const rows: ResultRow[] = [];
    for (const model of models) rows.push(...shape(q, await source.q7({ model, top })));
    return { ...base, params: { org: null, asOf: null, from: null, to: null, top, model: p.model ?? null }, rows };
  }
  let month = p.month ?? (p.asOf ? p.asOf : undefined);
  if (month !== undefined) {
    if (!/^\d{4}-\d{2}(-\d{2})?$/.test(month)) throw new QueryUsageError('--month must look like 2025-08');
    month = monthStart(month.length === 7 ? `${month}-01` : month);
  } else {
    const latest = await source.latestDate(def.table);
    if (!latest)
      throw new QueryUsageError(
        `${q}: no data yet in ${source.backend === 'cassandra' ? def.table : `gold ${servingTable(def.table).source}`}`,
      );
    month = monthStart(latest);
  }
  const rows = shape(q, await source.q9({ month }))
    .filter((r) => r.status !== 'match')
    .sort(byText('status', 'org_id'));
  return { ...base, params: { org: null, asOf: month, ...none, month }, rows };
}

/** Runs one query: resolves defaults against the data (never the wall clock), fetches, shapes. */
export async function runQuery(source: QuerySource, q: QueryId, p: QueryParams): Promise<QueryResult> {
  const def = QUERIES[q];
  if (def.needsOrg && !p.org) throw new QueryUsageError(`${q} needs --org <org_id>`);
  if (p.org !== undefined && !ORG_RE.test(p.org)) throw new QueryUsageError(`--org must be an org id like org_abc123`);
  if (p.top !== undefined && (!Number.isInteger(p.top) || p.top < 1 || p.top > 1000)) {
    throw new QueryUsageError('--top must be an integer between 1 and 1000');
  }
  if (q === 'q6' || q === 'q7' || q === 'q8' || q === 'q9') return runMartQuery(source, q, p);
  let asOf = p.asOf;
  if (!asOf) {
    const latest = await source.latestDate(def.table);
    if (!latest)
      throw new QueryUsageError(
        `${q}: no data yet in ${source.backend === 'cassandra' ? def.table : `gold ${servingTable(def.table).source}`}`,
      );
    asOf = latest;
  }
  const org = p.org ?? null;
  const base = { query: q, title: def.title, backend: source.backend, columns: def.columns.map(([n]) => n) };
  if (q === 'q2') {
    const top = p.top ?? 5;
    const rows = await source.q2({ org: org!, asOf, top });
    return {
      ...base,
      params: { org, asOf, from: null, to: null, top },
      rows: shape(
        q,
        rows.map((r) => ({ ...r, rank: r.rank_14d })),
      ),
    };
  }
  let to = p.to ?? asOf;
  let from = p.from ?? addDays(to, -29);
  if (q === 'q4') {
    to = monthStart(p.to ?? asOf);
    from = monthStart(p.from ?? addMonths(to, -11));
  }
  if (from > to) throw new QueryUsageError(`--from ${from} is after --to ${to}`);
  const params: ResolvedParams = { org, asOf, from, to, top: null };
  switch (q) {
    case 'q1':
      return { ...base, params, rows: await q1Batch(source, { org: org!, from, to }) };
    case 'q3':
      return { ...base, params, rows: ticketDays(await source.q3({ org, from, to }), from, to) };
    case 'q4':
      return { ...base, params, rows: shape(q, await source.q4({ org: org!, from, to })) };
    default:
      return { ...base, params, rows: shape(q, await source.q5({ org: org!, from, to })) };
  }
}

/**
 * q1 from the batch layer: rows of days the batch layer closed, tagged `source = 'batch'`. The speed-layer merge
 * post-processes this list (appending 'speed' rows for days after the last batch-closed day), so keep it a plain
 * function of (source, params) → rows.
 */
export async function q1Batch(source: QuerySource, p: { org: string; from: string; to: string }): Promise<ResultRow[]> {
  return shape('q1', await source.q1(p), { source: 'batch' });
}

// ---------------------------------------------------------------------------------------------------------------
// Cassandra backend: one prepared, bound statement per query against the query-first tables.

async function cqlRows(client: CassandraClient, query: string, params: unknown[]): Promise<Raw[]> {
  const out: Raw[] = [];
  let pageState: string | undefined;
  do {
    const rs = await client.execute(query, params, { prepare: true, pageState });
    for (const row of rs.rows) {
      const o: Raw = {};
      for (const k of row.keys()) {
        const v = row.get(k);
        o[k] = v instanceof types.LocalDate ? v.toString() : v;
      }
      out.push(o);
    }
    pageState = rs.pageState ?? undefined;
  } while (pageState);
  return out;
}

const date = (s: string) => types.LocalDate.fromString(s);

export function q1Cassandra(
  client: CassandraClient,
  ks: string,
  p: { org: string; from: string; to: string },
): Promise<Raw[]> {
  return cqlRows(
    client,
    `SELECT usage_date, service, total_cost_usd, total_requests, cpu_hours, storage_gb_hours, carbon_kg, event_count
     FROM ${ks}.finops_daily_usage WHERE org_id = ? AND usage_date >= ? AND usage_date <= ?`,
    [p.org, date(p.from), date(p.to)],
  );
}

export function q2Cassandra(
  client: CassandraClient,
  ks: string,
  p: { org: string; asOf: string; top: number },
): Promise<Raw[]> {
  return cqlRows(
    client,
    `SELECT rank_14d, service, cost_14d, cost_7d, cost_1d FROM ${ks}.org_service_cost_summary
     WHERE org_id = ? AND summary_date = ? LIMIT ?`,
    [p.org, date(p.asOf), p.top],
  );
}

export async function q3Cassandra(
  client: CassandraClient,
  ks: string,
  p: { org: string | null; from: string; to: string },
): Promise<TicketCounts[]> {
  return (await cqlRows(
    client,
    `SELECT ticket_date, severity, total_tickets, open_tickets, sla_breach_count FROM ${ks}.support_tickets_summary
     WHERE scope = ? AND ticket_date >= ? AND ticket_date <= ?`,
    [p.org ?? '*', date(p.from), date(p.to)],
  )) as unknown as TicketCounts[];
}

export function q4Cassandra(
  client: CassandraClient,
  ks: string,
  p: { org: string; from: string; to: string },
): Promise<Raw[]> {
  return cqlRows(
    client,
    `SELECT billing_month, currency_original, fx_rate, gross_revenue_usd, credits_usd, taxes_usd, net_revenue_usd,
       total_billed_usd, invoice_count
     FROM ${ks}.revenue_monthly WHERE org_id = ? AND billing_month >= ? AND billing_month <= ?`,
    [p.org, date(p.from), date(p.to)],
  );
}

export function q5Cassandra(
  client: CassandraClient,
  ks: string,
  p: { org: string; from: string; to: string },
): Promise<Raw[]> {
  return cqlRows(
    client,
    `SELECT usage_date, total_tokens, genai_events, total_cost_usd, est_cost_per_1k_tokens
     FROM ${ks}.genai_usage_daily WHERE org_id = ? AND usage_date >= ? AND usage_date <= ?`,
    [p.org, date(p.from), date(p.to)],
  );
}

const cqlColumns = (q: QueryId): string => QUERIES[q].columns.map(([n]) => n).join(', ');

export function q6Cassandra(client: CassandraClient, ks: string, p: { org: string }): Promise<Raw[]> {
  return cqlRows(client, `SELECT ${cqlColumns('q6')} FROM ${ks}.customer_360 WHERE org_id = ?`, [p.org]);
}

export function q7Cassandra(client: CassandraClient, ks: string, p: { model: string; top: number }): Promise<Raw[]> {
  return cqlRows(
    client,
    `SELECT ${cqlColumns('q7')} FROM ${ks}.marketing_attribution_by_model WHERE attribution_model = ? LIMIT ?`,
    [p.model, p.top],
  );
}

export function q8Cassandra(client: CassandraClient, ks: string, p: { org: string }): Promise<Raw[]> {
  return cqlRows(client, `SELECT ${cqlColumns('q8')} FROM ${ks}.org_resource_utilization WHERE org_id = ?`, [p.org]);
}

export function q9Cassandra(client: CassandraClient, ks: string, p: { month: string }): Promise<Raw[]> {
  return cqlRows(
    client,
    `SELECT ${cqlColumns('q9')} FROM ${ks}.billing_reconciliation_by_month WHERE billing_month = ? AND status IN ?`,
    [date(p.month), [...NON_MATCH_STATUSES]],
  );
}

/** The Cassandra backend; `as_of` defaults come from serving_state (the loaded data's latest date per table). */
export async function cassandraSource(config: Config): Promise<QuerySource> {
  const settings = requireCassandra(config);
  const client = await connect(settings);
  const ks = settings.keyspace;
  const wrap =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      try {
        return await fn(...a);
      } catch (e) {
        const err = describeError(e, settings);
        if (err instanceof CassandraRejected && /unconfigured table|keyspace .* does not exist/i.test(err.message)) {
          throw new QueryUsageError(
            `keyspace ${ks} has no serving tables yet: run \`cpa serving migrate\` and load it (\`cpa run\` or \`cpa serving load\`)`,
          );
        }
        throw err;
      }
    };
  return {
    backend: 'cassandra',
    latestDate: wrap(async (table: string) => {
      const [row] = await cqlRows(client, `SELECT max_date FROM ${ks}.serving_state WHERE table_name = ?`, [table]);
      return row?.max_date ? String(row.max_date) : null;
    }),
    q1: wrap((p) => q1Cassandra(client, ks, p)),
    q2: wrap((p) => q2Cassandra(client, ks, p)),
    q3: wrap((p) => q3Cassandra(client, ks, p)),
    q4: wrap((p) => q4Cassandra(client, ks, p)),
    q5: wrap((p) => q5Cassandra(client, ks, p)),
    q6: wrap((p) => q6Cassandra(client, ks, p)),
    q7: wrap((p) => q7Cassandra(client, ks, p)),
    q8: wrap((p) => q8Cassandra(client, ks, p)),
    q9: wrap((p) => q9Cassandra(client, ks, p)),
    orgs: wrap(async () =>
      (await cqlRows(client, `SELECT DISTINCT org_id FROM ${ks}.finops_daily_usage`, []))
        .map((r) => String(r.org_id))
        .sort(),
    ),
    close: () => client.shutdown(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// DuckDB backend: the same queries over the gold Parquet (views over each mart's committed files).

export function q1DuckDb(conn: DuckDBConnection, p: { org: string; from: string; to: string }): Promise<Raw[]> {
  return queryRows(
    conn,
    `select usage_date::varchar as usage_date, service, total_cost_usd, total_requests, cpu_hours, storage_gb_hours, carbon_kg,
       event_count
     from gold_org_daily_usage_by_service
     where org_id = $org and usage_date between $from::date and $to::date
     order by usage_date, service`,
    { org: p.org, from: p.from, to: p.to },
  );
}

export function q2DuckDb(conn: DuckDBConnection, p: { org: string; asOf: string; top: number }): Promise<Raw[]> {
  return queryRows(
    conn,
    `select rank_14d, service, cost_14d, cost_7d, cost_1d
     from gold_org_service_cost_summary
     where org_id = $org and summary_date = $as_of::date
     order by rank_14d
     limit $top`,
    { org: p.org, as_of: p.asOf, top: p.top },
  );
}

export async function q3DuckDb(
  conn: DuckDBConnection,
  p: { org: string | null; from: string; to: string },
): Promise<TicketCounts[]> {
  const params: Params = { from: p.from, to: p.to };
  if (p.org !== null) params.org = p.org;
  return (await queryRows(
    conn,
    `select ticket_date::varchar as ticket_date, coalesce(severity, 'unknown') as severity,
       sum(total_tickets)::bigint as total_tickets, sum(open_tickets)::bigint as open_tickets,
       sum(sla_breach_count)::bigint as sla_breach_count
     from gold_tickets_by_org_date
     where ticket_date between $from::date and $to::date ${p.org !== null ? 'and org_id = $org' : ''}
     group by 1, 2
     order by 1, 2`,
    params,
  )) as unknown as TicketCounts[];
}

export function q4DuckDb(conn: DuckDBConnection, p: { org: string; from: string; to: string }): Promise<Raw[]> {
  return queryRows(
    conn,
    `select billing_month::varchar as billing_month, currency_original, fx_rate, gross_revenue_usd, credits_usd, taxes_usd,
       net_revenue_usd, total_billed_usd, invoice_count
     from gold_revenue_by_org_month
     where org_id = $org and billing_month between $from::date and $to::date
     order by billing_month`,
    { org: p.org, from: p.from, to: p.to },
  );
}

export function q5DuckDb(conn: DuckDBConnection, p: { org: string; from: string; to: string }): Promise<Raw[]> {
  return queryRows(
    conn,
    `select usage_date::varchar as usage_date, total_tokens, genai_events, total_cost_usd, est_cost_per_1k_tokens
     from gold_genai_tokens_by_org_date
     where org_id = $org and usage_date between $from::date and $to::date
     order by usage_date`,
    { org: p.org, from: p.from, to: p.to },
  );
}

/** A DuckDB select list of a query's columns, dates as YYYY-MM-DD text (as Cassandra's LocalDate prints them). */
function duckColumns(q: QueryId, computed: Record<string, string> = {}): string {
  return QUERIES[q].columns
    .map(([n, kind]) => (n in computed ? `${computed[n]} as ${n}` : kind === 'date' ? `${n}::varchar as ${n}` : n))
    .join(', ');
}

export function q6DuckDb(conn: DuckDBConnection, p: { org: string }): Promise<Raw[]> {
  return queryRows(conn, `select ${duckColumns('q6')} from gold_customer_360 where org_id = $org`, { org: p.org });
}

export function q7DuckDb(conn: DuckDBConnection, p: { model: string; top: number }): Promise<Raw[]> {
  return queryRows(
    conn,
    `with ranked as (select *, ${ATTRIBUTION_RANK} as revenue_rank from gold_marketing_attribution)
     select ${duckColumns('q7')} from ranked
     where attribution_model = $model and revenue_rank <= $top
     order by revenue_rank`,
    { model: p.model, top: p.top },
  );
}

export function q8DuckDb(conn: DuckDBConnection, p: { org: string }): Promise<Raw[]> {
  return queryRows(
    conn,
    `select ${duckColumns('q8')} from gold_resource_utilization where org_id = $org order by resource_id`,
    { org: p.org },
  );
}

export function q9DuckDb(conn: DuckDBConnection, p: { month: string }): Promise<Raw[]> {
  return queryRows(
    conn,
    `select ${duckColumns('q9')} from gold_usage_billing_reconciliation
     where billing_month = $month::date and status <> 'match' and org_id is not null
     order by status, org_id`,
    { month: p.month },
  );
}

/** The DuckDB backend over a lake's gold marts (local or s3://); `as_of` defaults are max(date) of each mart. */
export async function duckdbSource(config: Config, lake = config.lakeRoot, db?: DuckDBInstance): Promise<QuerySource> {
  const instance = db ?? (await createDuckDb({ ...config, lakeRoot: lake }));
  if (isS3(lake)) await ensureS3(instance, config);
  let attached;
  try {
    attached = await attachLake(instance, config, lake);
  } catch (e) {
    if (!db) instance.closeSync();
    throw new QueryUsageError((e as Error).message.split('\n')[0]);
  }
  const conn = await instance.connect();
  await conn.run(`set TimeZone = 'UTC'`);
  const ctx = { conn, lake: attached };
  const marts = [
    'org_daily_usage_by_service',
    'org_service_cost_summary',
    'tickets_by_org_date',
    'revenue_by_org_month',
    'genai_tokens_by_org_date',
  ];
  try {
    for (const mart of marts) await registerView(ctx, 'gold', mart, `gold_${mart}`);
  } catch (e) {
    conn.closeSync();
    if (!db) instance.closeSync();
    throw new QueryUsageError(`${(e as Error).message.split('\n')[0]} under ${lake}: run the pipeline first`);
  }
  // The §6b marts: a lake built before them still answers q1–q5; q6–q9 then say what is missing.
  const missing = new Map<string, string>();
  for (const mart of [
    'customer_360',
    'marketing_attribution',
    'resource_utilization',
    'usage_billing_reconciliation',
  ]) {
    await registerView(ctx, 'gold', mart, `gold_${mart}`).catch((e: unknown) =>
      missing.set(mart, `${(e as Error).message.split('\n')[0]} under ${lake}: run the pipeline first`),
    );
  }
  const needs =
    <A, R>(mart: string, fn: (a: A) => Promise<R>) =>
    (a: A): Promise<R> => {
      const why = missing.get(mart);
      return why ? Promise.reject(new QueryUsageError(why)) : fn(a);
    };
  return {
    backend: 'duckdb',
    latestDate: async (table: string) => {
      const t = servingTable(table);
      if (!t.dateColumn || missing.has(t.source)) return null;
      const [row] = await queryRows(conn, `select max(${t.dateColumn})::varchar as d from gold_${t.source}`);
      return row?.d ? String(row.d) : null;
    },
    q1: (p) => q1DuckDb(conn, p),
    q2: (p) => q2DuckDb(conn, p),
    q3: (p) => q3DuckDb(conn, p),
    q4: (p) => q4DuckDb(conn, p),
    q5: (p) => q5DuckDb(conn, p),
    q6: needs('customer_360', (p: { org: string }) => q6DuckDb(conn, p)),
    q7: needs('marketing_attribution', (p: { model: string; top: number }) => q7DuckDb(conn, p)),
    q8: needs('resource_utilization', (p: { org: string }) => q8DuckDb(conn, p)),
    q9: needs('usage_billing_reconciliation', (p: { month: string }) => q9DuckDb(conn, p)),
    orgs: async () =>
      (await queryRows(conn, `select distinct org_id from gold_org_daily_usage_by_service order by 1`)).map((r) =>
        String(r.org_id),
      ),
    close: async () => {
      conn.closeSync();
      if (!db) instance.closeSync();
    },
  };
}

/** Opens the requested backend: Cassandra when configured, else DuckDB over the gold Parquet (the embedded default). */
export async function openSource(config: Config, backend?: Backend, lake?: string): Promise<QuerySource> {
  const chosen = backend ?? (config.cassandra ? 'cassandra' : 'duckdb');
  return chosen === 'cassandra' ? cassandraSource(config) : duckdbSource(config, lake ?? config.lakeRoot);
}
