import type { DuckDBInstance } from '@duckdb/node-api';
import cassandra from 'cassandra-driver';
import type { Config } from '../config/env';
import { servingTable } from '../config/serving';
import { attachLake, registerView } from '../lake/lakehouse';
import { CassandraRejected, connect, describeError, requireCassandra } from '../lake/cassandra';
import type { CassandraClient } from '../lake/cassandra';
import { createDuckDb, ensureS3, queryRows } from '../lake/duckdb';
import { decimalText } from '../lake/serving-codec';
import { isS3 } from '../lake/storage';
import { addDays } from '../workflows/logical-date';
import { round6 } from '../lake/decimal';
import { ATTRIBUTION_MODELS, QUERIES, QUERY_IDS } from './catalog';
import type { Backend, Cell, CqlValue, FetchParams, Kind, QueryDef, QueryId, ResultRow } from './catalog';

/**
 * The dashboard queries of SPEC §8 (q1–q5) and §6b (q6–q9), on two backends that return identical rows: Cassandra (the serving
 * tables) and DuckDB over the gold Parquet (the embedded default). Each query is one entry of serving/catalog.ts (its CQL
 * and its SQL); each backend has one generic fetch that runs an entry's statement (parameters always bound, never
 * spliced); defaults (`as_of` = the latest date in the data), shaping and derived figures are shared, so both backends
 * format every value the same way.
 */

const { types } = cassandra;

export { ATTRIBUTION_MODELS, QUERIES, QUERY_IDS } from './catalog';
export type { Backend, Cell, FetchParams, Kind, QueryId, ResultRow } from './catalog';

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

/** What a fetch returns: raw rows with the entry's columns (q3: per-(day, severity) counts). */
export type FetchRow<Q extends QueryId> = Q extends 'q3' ? TicketCounts : Raw;

/** One implementation per backend; `fetch` runs one catalog entry's bound, read-only statement. */
export interface QuerySource {
  backend: Backend;
  latestDate(table: string): Promise<string | null>;
  fetch<Q extends QueryId>(q: Q, p: FetchParams[Q]): Promise<Array<FetchRow<Q>>>;
  /** Distinct org ids (benchmarks pick from them). */
  orgs(): Promise<string[]>;
  close(): Promise<void>;
}

/** A query's entry with its own parameter type (an indexed access on QUERIES loses the correlation). */
function entry<Q extends QueryId>(q: Q): QueryDef<FetchParams[Q]> {
  return QUERIES[q] as unknown as QueryDef<FetchParams[Q]>;
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
    let rows = shape(q, await source.fetch(q, { org: p.org! }));
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
    for (const model of models) rows.push(...shape(q, await source.fetch('q7', { model, top })));
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
  const rows = shape(q, await source.fetch('q9', { month }))
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
    const rows = await source.fetch('q2', { org: org!, asOf, top });
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
      return { ...base, params, rows: ticketDays(await source.fetch('q3', { org, from, to }), from, to) };
    default:
      return { ...base, params, rows: shape(q, await source.fetch(q, { org: org!, from, to })) };
  }
}

/**
 * q1 from the batch layer: rows of days the batch layer closed, tagged `source = 'batch'`. The speed-layer merge
 * post-processes this list (appending 'speed' rows for days after the last batch-closed day), so keep it a plain
 * function of (source, params) → rows.
 */
export async function q1Batch(source: QuerySource, p: { org: string; from: string; to: string }): Promise<ResultRow[]> {
  return shape('q1', await source.fetch('q1', p), { source: 'batch' });
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

/** A catalog value as the driver binds it: dates as LocalDate. */
function cqlValue(v: CqlValue): unknown {
  if (Array.isArray(v)) return [...(v as readonly string[])];
  return typeof v === 'object' ? types.LocalDate.fromString((v as { date: string }).date) : v;
}

/** The Cassandra fetch: an entry's CQL on `<keyspace>.<table>`, its values bound by position. */
function cqlFetch<Q extends QueryId>(client: CassandraClient, ks: string, q: Q, p: FetchParams[Q]): Promise<Raw[]> {
  const def = entry(q);
  const select = def.columns.map(([n]) => n).join(', ');
  return cqlRows(client, def.cql.text({ from: `${ks}.${def.table}`, select }), def.cql.params(p).map(cqlValue));
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
    fetch: <Q extends QueryId>(q: Q, p: FetchParams[Q]) =>
      wrap(async () => (await cqlFetch(client, ks, q, p)) as Array<FetchRow<Q>>)(),
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

/** A DuckDB select list of a query's columns, dates as YYYY-MM-DD text (as Cassandra's LocalDate prints them). */
function duckColumns(def: QueryDef<unknown>): string {
  return def.columns.map(([n, kind]) => (kind === 'date' ? `${n}::varchar as ${n}` : n)).join(', ');
}

/** The gold mart behind a query: its serving table's source, registered as the view `gold_<mart>`. */
const martOf = (q: QueryId): string => servingTable(QUERIES[q].table).source;

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
  // Every query's mart. The SPEC §8 ones (serving tables since schema 1) must exist; a lake built before the §6b marts
  // still answers q1–q5, and q6–q9 then say what is missing.
  const marts = [...new Set(QUERY_IDS.map(martOf))];
  const required = marts.filter((m) =>
    QUERY_IDS.some((q) => martOf(q) === m && servingTable(QUERIES[q].table).since === 1),
  );
  try {
    for (const mart of required) await registerView(ctx, 'gold', mart, `gold_${mart}`);
  } catch (e) {
    conn.closeSync();
    if (!db) instance.closeSync();
    throw new QueryUsageError(`${(e as Error).message.split('\n')[0]} under ${lake}: run the pipeline first`);
  }
  const missing = new Map<string, string>();
  for (const mart of marts.filter((m) => !required.includes(m))) {
    await registerView(ctx, 'gold', mart, `gold_${mart}`).catch((e: unknown) =>
      missing.set(mart, `${(e as Error).message.split('\n')[0]} under ${lake}: run the pipeline first`),
    );
  }
  /** The DuckDB fetch: an entry's SQL on its mart's view, its values bound by name. */
  const fetch = async <Q extends QueryId>(q: Q, p: FetchParams[Q]): Promise<Array<FetchRow<Q>>> => {
    const mart = martOf(q);
    const why = missing.get(mart);
    if (why) throw new QueryUsageError(why);
    const def = entry(q);
    const from = { from: `gold_${mart}`, select: duckColumns(def as QueryDef<unknown>) };
    return (await queryRows(conn, def.sql.text(from, p), def.sql.params(p))) as Array<FetchRow<Q>>;
  };
  return {
    backend: 'duckdb',
    latestDate: async (table: string) => {
      const t = servingTable(table);
      if (!t.dateColumn || missing.has(t.source)) return null;
      const [row] = await queryRows(conn, `select max(${t.dateColumn})::varchar as d from gold_${t.source}`);
      return row?.d ? String(row.d) : null;
    },
    fetch,
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
