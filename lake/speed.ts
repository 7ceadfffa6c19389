import crypto from 'node:crypto';
import { BRONZE_EVENT_COLUMNS } from '../config/contracts';
import { WINDOW_SIZES } from '../config/speed';
import { decimalUnits, formatUnits } from './decimal';
import type { WindowSize } from '../config/speed';
import type { DuckDBConnection } from '@duckdb/node-api';
import { queryRows, sqlIdent, sqlString } from './duckdb';
import type { Row } from './duckdb';
import { emptySelect, lakeColumns, NULL_PARTITION, partitionVersions, qualified } from './lakehouse';
import type { AttachedLake, ColumnDef, PublishSpec } from './lakehouse';

/**
 * The speed layer's store in the lake (SPEC §7): three tables of the DuckLake schema `speed`, written through
 * publishTables (one transaction per file), plus its state, a JSON document in `meta.state` under key
 * {@link SPEED_STATE_KEY}. Only the events-queue worker writes it (workflows/task-queues.ts); anyone reads it.
 *
 * - `windows`: tumbling-window aggregates per (window_size, window_start, org_id, service) *and source_file* —
 *   every file's contribution is its own row, so re-processing a file replaces exactly its rows and never
 *   double-counts. Readers sum over source_file. Partitioned by window_date (UTC date of window_start).
 * - `late_events`: the events that were older than the watermark when their file arrived (audit), by usage_date.
 * - `alerts`: one row per (org, 5-minute window) whose cost crossed CPA_ALERT_COST_5MIN_USD.
 * - state: max event time seen and, per file key, the watermark it was judged against, its status and the
 *   partitions it touched. A file's final state commits in the same transaction as its rows.
 */

export const SPEED_LAYER = 'speed';
export const SPEED_TABLES = { windows: 'windows', lateEvents: 'late_events', alerts: 'alerts' } as const;
/** The `meta.state` key of the speed layer's state document. */
export const SPEED_STATE_KEY = 'speed';

const windowsRef = { layer: SPEED_LAYER, table: SPEED_TABLES.windows };
const bronzeRef = { layer: 'bronze', table: 'usage_events' };

export { WINDOW_SIZES };
export type { WindowSize };

const c = (name: string, type: string): ColumnDef => ({ name, type });

export const SPEED_WINDOW_COLUMNS: ColumnDef[] = [
  c('window_size', 'VARCHAR'),
  c('window_start', 'TIMESTAMP'),
  c('window_end', 'TIMESTAMP'),
  c('org_id', 'VARCHAR'),
  c('service', 'VARCHAR'),
  c('cost_usd', 'DECIMAL(18,6)'),
  c('requests', 'DECIMAL(18,6)'),
  c('events', 'BIGINT'),
  c('source_file', 'VARCHAR'),
  c('window_date', 'DATE'),
];

export const LATE_EVENT_COLUMNS: ColumnDef[] = [
  c('event_id', 'VARCHAR'),
  c('event_ts', 'TIMESTAMP'),
  c('org_id', 'VARCHAR'),
  c('service', 'VARCHAR'),
  c('metric', 'VARCHAR'),
  c('value', 'DOUBLE'),
  c('cost_usd', 'DECIMAL(18,6)'),
  c('source_file', 'VARCHAR'),
  c('source_line', 'INTEGER'),
  c('watermark', 'TIMESTAMP'),
  c('usage_date', 'DATE'),
];

export const ALERT_COLUMNS: ColumnDef[] = [
  c('alert_id', 'VARCHAR'),
  c('org_id', 'VARCHAR'),
  c('window_start', 'TIMESTAMP'),
  c('window_end', 'TIMESTAMP'),
  c('cost_usd', 'DECIMAL(18,6)'),
  c('threshold_usd', 'DECIMAL(18,6)'),
  c('raised_by', 'VARCHAR'),
  c('source_file', 'VARCHAR'),
  c('raised_at', 'TIMESTAMP'),
];

/** What the speed layer knows of one events file (by key). */
export interface SpeedFileEntry {
  sha256: string;
  /** fileVersionId(key, sha256): names the version in alert records (`raised_by`). */
  version: string;
  /**
   * The watermark this key's events are judged against (DuckDB timestamp text): max event time of the done files
   * whose key sorts before it (landing order) − lag, null when there is none. Recomputed when such a file is
   * processed later (activities/speed.ts re-judges), so it depends on the data, not on the processing order.
   */
  watermark: string | null;
  /** `done` once its rows are committed; `pending` only in older states (an attempt under way) or set by hand. */
  status: 'pending' | 'done';
  windowPartitions: string[];
  latePartitions: string[];
  onTime: number;
  late: number;
  /**
   * Its bronze rows when it was last judged. They change only when a file earlier in landing order displaces a
   * duplicate it held; a file processed later that sees a different count judges it again. Absent in older states.
   */
  rows?: number;
  alerts: number;
  maxEventTs: string | null;
  processedAt: string;
  runId: string;
}

export interface SpeedState {
  /** Max event time over the kept events of every done file (DuckDB timestamp text). */
  maxEventTs: string | null;
  files: Record<string, SpeedFileEntry>;
  /** The updated_at (ISO) of this version's `meta.state` row; null before the first write. */
  updatedAt: string | null;
}

/** One alert as raised (and as handed to notifyAlerts). Money is decimal text. */
export interface SpeedAlert {
  alert_id: string;
  org_id: string;
  window_start: string;
  window_end: string;
  cost_usd: string;
  threshold_usd: string;
  raised_by: string;
  source_file: string;
  raised_at: string;
}

/**
 * The speed state lives in `meta.state` as one row per file (`speed/file/<key>`) plus one global row (`speed`: max
 * event time), each append-only (the latest row per key wins). A file's processing appends only its own row and the
 * global one, so state grows linearly with the files, not with files × writes.
 */
const fileStateKey = (fileKey: string): string => `${SPEED_STATE_KEY}/file/${fileKey}`;

/** The latest speed state (an empty one before the first file). */
export async function readSpeedState(conn: DuckDBConnection, lake: AttachedLake): Promise<SpeedState> {
  const rows = await queryRows(
    conn,
    `select key, value, strftime(updated_at, '%Y-%m-%dT%H:%M:%S.%gZ') as at from ${qualified(lake, 'meta', 'state')}
     where key = $key or starts_with(key, $prefix)
     qualify row_number() over (partition by key order by updated_at desc) = 1`,
    { key: SPEED_STATE_KEY, prefix: fileStateKey('') },
  );
  const state: SpeedState = { maxEventTs: null, files: {}, updatedAt: null };
  for (const r of rows) {
    const at = String(r.at);
    if (!state.updatedAt || at > state.updatedAt) state.updatedAt = at;
    const key = String(r.key);
    if (key === SPEED_STATE_KEY)
      state.maxEventTs = (JSON.parse(String(r.value)) as { maxEventTs: string | null }).maxEventTs;
    else state.files[key.slice(fileStateKey('').length)] = JSON.parse(String(r.value)) as SpeedFileEntry;
  }
  return state;
}

/**
 * Appends the global row and the rows of `files` (default: every file of `state`), inside the caller's lake write
 * (a publishTables `extra`, or lakeWrite for the state alone), and sets `state.updatedAt` to their updated_at: later
 * than that of the version `state` was read as, even if the clock stepped back (NTP, a worker on another machine),
 * so the latest row by updated_at is always the last one written.
 */
export async function writeSpeedState(
  conn: DuckDBConnection,
  lake: AttachedLake,
  state: SpeedState,
  files: string[] = Object.keys(state.files),
): Promise<void> {
  const prev = state.updatedAt ? Date.parse(state.updatedAt) : 0;
  state.updatedAt = new Date(Math.max(Date.now(), prev + 1)).toISOString();
  const rows: Array<[string, string]> = [[SPEED_STATE_KEY, JSON.stringify({ maxEventTs: state.maxEventTs })]];
  for (const f of files) if (state.files[f]) rows.push([fileStateKey(f), JSON.stringify(state.files[f])]);
  for (const [key, value] of rows) {
    await conn.run(`insert into ${qualified(lake, 'meta', 'state')} values ($key, $value, $at::timestamptz)`, {
      key,
      value,
      at: state.updatedAt,
    });
  }
}

/**
 * Identity of one version of one landed file: sha256(key + '\n' + content sha256). The same bytes under the same
 * key always give the same id (a re-drop is a no-op); changed bytes or another key give a new one.
 */
export function fileVersionId(key: string, contentSha256: string): string {
  return crypto.createHash('sha256').update(`${key}\n${contentSha256}`).digest('hex');
}

/** DuckDB timestamp text ('2025-08-31 21:51:00') as epoch milliseconds. */
export function tsMillis(ts: string): number {
  return Date.parse(`${ts.replace(' ', 'T')}Z`);
}

/** The speed layer's current watermark (ISO), or null before the first file. */
export function currentWatermark(state: SpeedState, lagMinutes: number): string | null {
  return state.maxEventTs ? new Date(tsMillis(state.maxEventTs) - lagMinutes * 60_000).toISOString() : null;
}

/** The last day whose whole 24 h lie before `watermarkIso`: floor(watermark) − 1 day. */
export function closedThroughDay(watermarkIso: string | null): string | null {
  if (!watermarkIso) return null;
  const day = Date.parse(`${watermarkIso.slice(0, 10)}T00:00:00Z`);
  return new Date(day - 86_400_000).toISOString().slice(0, 10);
}

/**
 * Which rows of a table to read, by its partition column: exactly the partitions named (as meta.partitions names
 * them, NULL_PARTITION for NULL), or an inclusive range of days of a DATE column (NULL never in it).
 */
export type PartitionFilter = { column: string; in: string[] } | { column: string; from?: string; to?: string };

/**
 * Creates a temp view over a lake table, restricted to the partitions `filter` selects; an empty view typed with
 * `columns` when the table does not exist. The predicate compares the partition column itself with constants (no
 * expression around it), so DuckLake prunes the data files of other partitions from the scan.
 */
export async function partitionView(
  conn: DuckDBConnection,
  lake: AttachedLake,
  ref: { layer: string; table: string },
  view: string,
  columns: ColumnDef[],
  filter?: PartitionFilter,
): Promise<void> {
  const body = (await lakeColumns(conn, lake, ref.layer, ref.table))
    ? partitionSelect(qualified(lake, ref.layer, ref.table), filter)
    : emptySelect(columns);
  await conn.run(`create or replace temp view ${sqlIdent(view)} as ${body}`);
}

function partitionSelect(table: string, f?: PartitionFilter): string {
  if (!f) return `select * from ${table}`;
  const col = sqlIdent(f.column);
  if ('in' in f) {
    // The NULL partition is a select of its own: `in (…) or … is null` would defeat the pruning.
    const values = f.in.filter((p) => p !== NULL_PARTITION);
    const selects =
      values.length > 0 ? [`select * from ${table} where ${col} in (${values.map(sqlString).join(', ')})`] : [];
    if (f.in.includes(NULL_PARTITION)) selects.push(`select * from ${table} where ${col} is null`);
    return selects.length > 0 ? selects.join(' union all ') : `select * from ${table} where false`;
  }
  const terms = [`${col} is not null`];
  if (f.from) terms.push(`${col} >= ${sqlString(f.from)}`);
  if (f.to) terms.push(`${col} <= ${sqlString(f.to)}`);
  return `select * from ${table} where ${terms.join(' and ')}`;
}

/**
 * The window sizes as the value of the variable `speed_window_sizes` that lake/sql/speed/windows.sql reads: a list
 * of {window_size, minutes} (VARCHAR, INTEGER) literals built from {@link WINDOW_SIZES}.
 */
export function windowSizesLiteral(): string {
  return `[${Object.entries(WINDOW_SIZES)
    .map(([name, minutes]) => `{'window_size': ${sqlString(name)}, 'minutes': ${Number(minutes)}}`)
    .join(', ')}]`;
}

/**
 * The watermark of `key`: max event time over the done files whose key sorts before it − lag (DuckDB timestamp
 * text), null when there is none. Landing order is key order: the generator and live feeds name files so.
 */
export async function watermarkBefore(
  conn: DuckDBConnection,
  state: SpeedState,
  key: string,
  lag: number,
): Promise<string | null> {
  let max: string | null = null;
  for (const [k, e] of Object.entries(state.files)) {
    if (k < key && e.status === 'done' && e.maxEventTs && (max === null || e.maxEventTs > max)) max = e.maxEventTs;
  }
  if (max === null) return null;
  const [w] = await queryRows(conn, `select (cast($m as timestamp) - to_minutes(cast($lag as bigint)))::varchar as w`, {
    m: max,
    lag,
  });
  return String(w.w);
}

/** View `_speed_bronze` over the bronze events partitions (usage dates) named; all of bronze when none are. */
function bronzeView(conn: DuckDBConnection, lake: AttachedLake, partitions?: string[]): Promise<void> {
  const only = partitions ? { column: 'usage_date', in: partitions } : undefined;
  return partitionView(conn, lake, bronzeRef, '_speed_bronze', BRONZE_EVENT_COLUMNS, only);
}

/**
 * The bronze rows of one events file (`source_file` = key) as temp table `_speed_rows`, read from the partitions its
 * landed-file record names (all of bronze when it names none), and the view `bronze_usage_events` over them: the
 * input of the silver usage_events model.
 */
export async function registerFileRows(
  conn: DuckDBConnection,
  lake: AttachedLake,
  file: { key: string; partitions?: string[] },
): Promise<void> {
  await bronzeView(conn, lake, file.partitions);
  await conn.run(`create or replace temp table _speed_rows as select * from _speed_bronze where source_file = $key`, {
    key: file.key,
  });
  await conn.run(`create or replace temp view bronze_usage_events as select * from _speed_rows`);
}

/** Bronze rows per source file of `files`, read from the partitions their landed-file records name. */
export async function bronzeRowCounts(
  conn: DuckDBConnection,
  lake: AttachedLake,
  files: Array<{ key: string; partitions?: string[] }>,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (files.length === 0) return counts;
  const everywhere = files.some((f) => !f.partitions);
  const partitions = [...new Set(files.flatMap((f) => f.partitions ?? []))];
  await bronzeView(conn, lake, everywhere ? undefined : partitions);
  await keysTable(
    conn,
    '_speed_later',
    files.map((f) => f.key),
  );
  for (const r of await queryRows(
    conn,
    `select source_file, count(*)::bigint as n from _speed_bronze
     where source_file in (select key from _speed_later) group by 1`,
  )) {
    counts.set(String(r.source_file), Number(r.n));
  }
  return counts;
}

/** Temp table `table` (key varchar) holding `keys`, one row each. */
export async function keysTable(conn: DuckDBConnection, table: string, keys: string[]): Promise<void> {
  await conn.run(`create or replace temp table ${sqlIdent(table)} (key varchar)`);
  const app = await conn.createAppender(table, 'main', 'temp');
  for (const k of keys) {
    app.appendVarchar(k);
    app.endRow();
  }
  app.closeSync();
}

/**
 * Prepares the replacement of some source files' rows in a speed table (the files in temp table `_speed_keys`): in
 * every partition they touch now or touched before, the rows of other files are kept and theirs become `rows`. The
 * new content of those partitions goes to temp table `out` (empty when none), for the serving and alert steps and as
 * the source of the returned publish spec, which rewrites only those partitions (none when the files touch no
 * partition, now or before); the rows it replaces go to `replaced` when given. Also returns, per file, the
 * partitions it touches now.
 */
export async function replaceFileRows(
  conn: DuckDBConnection,
  lake: AttachedLake,
  spec: {
    ref: { layer: string; table: string };
    columns: ColumnDef[];
    rows: string;
    out: string;
    partitionBy: string;
    earlierPartitions: string[];
    replaced?: string;
  },
): Promise<{ partitions: Record<string, string[]>; publish?: PublishSpec }> {
  const rows = sqlIdent(spec.rows);
  const out = sqlIdent(spec.out);
  const partitions: Record<string, string[]> = {};
  for (const r of await queryRows(
    conn,
    `select source_file, array_sort(list(distinct ${sqlIdent(spec.partitionBy)}::varchar)) as ps
     from ${rows} group by 1`,
  )) {
    partitions[String(r.source_file)] = (r.ps as unknown[]).map(String);
  }
  const affected = new Set([...Object.values(partitions).flat(), ...spec.earlierPartitions]);
  if (affected.size === 0) {
    await conn.run(`create or replace temp table ${out} as select * from ${rows} where false`);
    if (spec.replaced)
      await conn.run(`create or replace temp table ${sqlIdent(spec.replaced)} as select * from ${rows} where false`);
    return { partitions };
  }
  await partitionView(conn, lake, spec.ref, '_speed_prev', spec.columns, {
    column: spec.partitionBy,
    in: [...affected],
  });
  if (spec.replaced) {
    await conn.run(
      `create or replace temp table ${sqlIdent(spec.replaced)} as
       select * from _speed_prev where source_file in (select key from _speed_keys)`,
    );
  }
  await conn.run(
    `create or replace temp table ${out} as
     select * from _speed_prev where source_file not in (select key from _speed_keys)
     union all by name
     select * from ${rows}`,
  );
  return {
    partitions,
    publish: { ...spec.ref, source: spec.out, partitionBy: spec.partitionBy, owns: (p) => affected.has(p) },
  };
}

/** An alert as handed across the JSON boundary: times as ISO text, money as decimal text. */
const ALERT_SELECT = `alert_id, org_id, strftime(window_start, '%Y-%m-%dT%H:%M:%SZ') as window_start,
  strftime(window_end, '%Y-%m-%dT%H:%M:%SZ') as window_end, cost_usd::varchar as cost_usd,
  threshold_usd::varchar as threshold_usd, raised_by, source_file, strftime(raised_at, '%Y-%m-%dT%H:%M:%S.%gZ') as raised_at`;

/** The alerts of temp table `table` raised by one file version, in window order. */
export async function alertsRaisedBy(conn: DuckDBConnection, table: string, version: string): Promise<SpeedAlert[]> {
  return (await queryRows(
    conn,
    `select ${ALERT_SELECT} from ${sqlIdent(table)} where raised_by = $version order by window_start, org_id`,
    { version },
  )) as unknown as SpeedAlert[];
}

/** The windows' partitions a time range can reach (the day of `from` through the day of `to`). */
const windowDays = (from?: string, to?: string): PartitionFilter => ({
  column: 'window_date',
  from: from?.slice(0, 10),
  to: to?.slice(0, 10),
});

/** Adds one day to a YYYY-MM-DD date. */
export function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

/** Bounds as timestamps: a bare date `to` includes its whole day. */
function bounds(from?: string, to?: string): { from: string; to: string } {
  return {
    from: from ? from.replace('T', ' ').replace(/Z$/, '') : '-infinity',
    to: to
      ? /^\d{4}-\d{2}-\d{2}$/.test(to)
        ? `${nextDay(to)} 00:00:00`
        : to.replace('T', ' ').replace(/Z$/, '')
      : 'infinity',
  };
}

export interface SpeedWindowRow {
  window_size: WindowSize;
  window_start: string;
  window_end: string;
  org_id: string;
  service: string;
  cost_usd: string;
  requests: string;
  events: number;
  /** The window ended before the watermark: no further event will change it. */
  closed: boolean;
}

/**
 * Speed-layer windows of one size, summed over the files that contributed, optionally for one org and a time range
 * (`from` inclusive, `to` exclusive as a timestamp, inclusive as a date). Ordered by window, org, service.
 */
export async function readSpeedWindows(
  conn: DuckDBConnection,
  lake: AttachedLake,
  q: { window: WindowSize; org?: string; from?: string; to?: string; lagMinutes: number },
): Promise<SpeedWindowRow[]> {
  const state = await readSpeedState(conn, lake);
  const wm = currentWatermark(state, q.lagMinutes);
  // A window starting on the day before `from` cannot reach into it (windows are at most an hour, aligned to it).
  await partitionView(conn, lake, windowsRef, '_speed_windows', SPEED_WINDOW_COLUMNS, windowDays(q.from, q.to));
  const b = bounds(q.from, q.to);
  const rows = await queryRows(
    conn,
    `select window_size, strftime(window_start, '%Y-%m-%dT%H:%M:%SZ') as window_start,
            strftime(any_value(window_end), '%Y-%m-%dT%H:%M:%SZ') as window_end, org_id, service,
            sum(cost_usd)::decimal(18, 6)::varchar as cost_usd, sum(requests)::decimal(18, 6)::varchar as requests,
            sum(events)::bigint as events,
            coalesce(any_value(window_end) <= cast($wm as timestamp), false) as closed
     from _speed_windows
     where window_size = $size and window_start >= cast($from as timestamp) and window_start < cast($to as timestamp)
       and ($org = '' or org_id = $org)
     group by window_size, window_start, org_id, service
     order by window_start, org_id, service`,
    {
      size: q.window,
      from: b.from,
      to: b.to,
      org: q.org ?? '',
      wm: wm ? wm.replace('T', ' ').replace(/Z$/, '') : '-infinity',
    },
  );
  return rows.map((r) => ({ ...r, events: Number(r.events) })) as unknown as SpeedWindowRow[];
}

/** A day of Query 1 from the speed layer (its 1-hour windows): the measures the speed layer keeps. */
export interface SpeedDailyRow {
  org_id: string;
  usage_date: string;
  service: string;
  total_cost_usd: string;
  total_requests: string;
  event_count: number;
}

/** Speed-layer daily totals per (org, date, service) from the 1-hour windows (which never straddle a day). */
export async function readSpeedDaily(
  conn: DuckDBConnection,
  lake: AttachedLake,
  q: { org?: string; from?: string; to?: string },
): Promise<SpeedDailyRow[]> {
  await partitionView(conn, lake, windowsRef, '_speed_windows', SPEED_WINDOW_COLUMNS, windowDays(q.from, q.to));
  const rows = await queryRows(
    conn,
    `select org_id, window_date::varchar as usage_date, service, sum(cost_usd)::decimal(18, 6)::varchar as total_cost_usd,
            sum(requests)::decimal(18, 6)::varchar as total_requests, sum(events)::bigint as event_count
     from _speed_windows
     where window_size = '1h' and ($org = '' or org_id = $org)
       and ($from = '' or window_date >= cast($from as date)) and ($to = '' or window_date <= cast($to as date))
     group by all order by usage_date, org_id, service`,
    { org: q.org ?? '', from: q.from?.slice(0, 10) ?? '', to: q.to?.slice(0, 10) ?? '' },
  );
  return rows.map((r) => ({ ...r, event_count: Number(r.event_count) })) as unknown as SpeedDailyRow[];
}

/**
 * The last day the batch layer has closed: the batch layer's own watermark (max event time in silver usage_events
 * − the watermark lag) has passed the end of that day, so every on-time event of it was in the last batch run.
 * The max is read from the last non-empty usage_date partition only (meta.partitions names it). null when silver
 * has never been built.
 */
export async function batchClosedThrough(
  conn: DuckDBConnection,
  lake: AttachedLake,
  lagMinutes: number,
): Promise<string | null> {
  const versions = await partitionVersions(conn, lake, 'silver', 'usage_events');
  const parts = [...versions]
    .filter(([p, v]) => p !== NULL_PARTITION && v.rows > 0)
    .map(([p]) => p)
    .sort();
  if (parts.length === 0) return null;
  const [r] = await queryRows(
    conn,
    `select strftime(max(event_ts) - to_minutes(cast($lag as bigint)), '%Y-%m-%dT%H:%M:%SZ') as wm
     from ${qualified(lake, 'silver', 'usage_events')} where usage_date = cast($day as date)`,
    { lag: lagMinutes, day: parts[parts.length - 1] },
  );
  return closedThroughDay(r?.wm ? String(r.wm) : null);
}

/**
 * Query 1 merge (SPEC §7 serving): batch rows for the days the batch layer has closed, speed rows after them. A day
 * after `closedThrough` that the speed layer does not cover at all (not in `speedDays`, e.g. a batch-only
 * deployment, or before the first streamed file) keeps its batch rows rather than showing nothing. Rows are tagged
 * with their source; speed rows carry only the measures the speed layer keeps (cost, requests, events).
 */
export function mergeSpeedIntoDaily<T extends { usage_date: unknown }, S extends { usage_date: string }>(
  batchRows: T[],
  speedRows: S[],
  closedThrough: string | null,
  speedDays?: ReadonlySet<string>,
): Array<(T & { source: 'batch' }) | (S & { source: 'speed' })> {
  const day = (r: { usage_date: unknown }): string => String(r.usage_date).slice(0, 10);
  const fromSpeed = (d: string): boolean =>
    (closedThrough === null || d > closedThrough) && (!speedDays || speedDays.has(d));
  const key = (r: { usage_date: unknown; org_id?: unknown; service?: unknown }): string =>
    `${day(r)}|${String(r.org_id ?? '')}|${String(r.service ?? '')}`;
  return [
    ...batchRows.filter((r) => !fromSpeed(day(r))).map((r) => ({ ...r, source: 'batch' as const })),
    ...speedRows.filter((r) => fromSpeed(day(r))).map((r) => ({ ...r, source: 'speed' as const })),
  ].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

export interface DriftDay {
  usage_date: string;
  batch_cost_usd: string;
  speed_cost_usd: string;
  drift_cost_usd: string;
  late_cost_usd: string;
  /** drift − late: what late events do not explain (files the speed layer never saw, or a defect). */
  unexplained_cost_usd: string;
  batch_events: number;
  speed_events: number;
  late_events: number;
  unexplained_events: number;
}

export interface DriftReport {
  batchClosedThrough: string | null;
  speedWatermark: string | null;
  /** Days compared: closed by both layers. */
  closedThrough: string | null;
  days: DriftDay[];
  totals: Omit<DriftDay, 'usage_date'>;
  /** Events files in bronze that the speed layer has not processed (their events are batch-only). */
  filesNotInSpeed: number;
}

/**
 * Drift of the speed layer against the batch layer (gold org_daily_usage_by_service) for the days both layers have
 * closed. With every file streamed, a day's drift is exactly its late events (batch-only by design); anything
 * else shows up as unexplained.
 */
export async function driftReport(
  conn: DuckDBConnection,
  lake: AttachedLake,
  lagMinutes: number,
  bronzeFiles: string[],
): Promise<DriftReport> {
  const state = await readSpeedState(conn, lake);
  const speedWatermark = currentWatermark(state, lagMinutes);
  const batchClosed = await batchClosedThrough(conn, lake, lagMinutes);
  const speedClosed = closedThroughDay(speedWatermark);
  const closed = batchClosed && speedClosed ? (batchClosed < speedClosed ? batchClosed : speedClosed) : null;
  const filesNotInSpeed = bronzeFiles.filter((k) => state.files[k]?.status !== 'done').length;
  const empty = { batchClosedThrough: batchClosed, speedWatermark, closedThrough: closed, filesNotInSpeed };
  const zero = {
    batch_cost_usd: '0',
    speed_cost_usd: '0',
    drift_cost_usd: '0',
    late_cost_usd: '0',
    unexplained_cost_usd: '0',
  };
  const zeroCounts = { batch_events: 0, speed_events: 0, late_events: 0, unexplained_events: 0 };
  if (!closed) return { ...empty, days: [], totals: { ...zero, ...zeroCounts } };
  await partitionView(
    conn,
    lake,
    { layer: 'gold', table: 'org_daily_usage_by_service' },
    '_drift_gold',
    [c('usage_date', 'DATE'), c('total_cost_usd', 'DECIMAL(18,6)'), c('event_count', 'BIGINT')],
    { column: 'usage_date', to: closed },
  );
  await partitionView(conn, lake, windowsRef, '_drift_speed', SPEED_WINDOW_COLUMNS, {
    column: 'window_date',
    to: closed,
  });
  await partitionView(
    conn,
    lake,
    { layer: SPEED_LAYER, table: SPEED_TABLES.lateEvents },
    '_drift_late',
    LATE_EVENT_COLUMNS,
    { column: 'usage_date', to: closed },
  );
  const rows = await queryRows(
    conn,
    `with b as (select usage_date, sum(total_cost_usd) as cost, sum(event_count) as n from _drift_gold group by 1),
          s as (select window_date as usage_date, sum(cost_usd) as cost, sum(events) as n from _drift_speed
                where window_size = '1h' group by 1),
          l as (select usage_date, sum(cost_usd) as cost, count(*) as n from _drift_late group by 1),
          d as (
            select usage_date, coalesce(b.cost, 0)::decimal(18, 6) as bc, coalesce(s.cost, 0)::decimal(18, 6) as sc,
                   coalesce(l.cost, 0)::decimal(18, 6) as lc, coalesce(b.n, 0)::bigint as bn, coalesce(s.n, 0)::bigint as sn,
                   coalesce(l.n, 0)::bigint as ln
            from b full outer join s using (usage_date) full outer join l using (usage_date)
          )
     select usage_date::varchar as usage_date, bc::varchar as batch_cost_usd, sc::varchar as speed_cost_usd,
            (bc - sc)::decimal(18, 6)::varchar as drift_cost_usd, lc::varchar as late_cost_usd,
            (bc - sc - lc)::decimal(18, 6)::varchar as unexplained_cost_usd,
            bn as batch_events, sn as speed_events, ln as late_events, (bn - sn - ln)::bigint as unexplained_events
     from d order by usage_date`,
  );
  const days = rows.map((r: Row) => ({
    ...r,
    batch_events: Number(r.batch_events),
    speed_events: Number(r.speed_events),
    late_events: Number(r.late_events),
    unexplained_events: Number(r.unexplained_events),
  })) as unknown as DriftDay[];
  const sum = (k: keyof DriftDay): string =>
    formatUnits(
      days.reduce((a, d) => a + decimalUnits(String(d[k]), 6), 0n),
      6,
    );
  const count = (k: keyof DriftDay): number => days.reduce((a, d) => a + Number(d[k]), 0);
  return {
    ...empty,
    days,
    totals: {
      batch_cost_usd: sum('batch_cost_usd'),
      speed_cost_usd: sum('speed_cost_usd'),
      drift_cost_usd: sum('drift_cost_usd'),
      late_cost_usd: sum('late_cost_usd'),
      unexplained_cost_usd: sum('unexplained_cost_usd'),
      batch_events: count('batch_events'),
      speed_events: count('speed_events'),
      late_events: count('late_events'),
      unexplained_events: count('unexplained_events'),
    },
  };
}
