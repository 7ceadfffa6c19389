import { ApplicationFailure } from '@temporalio/common';
import { emptyView, lakeColumns, lakeWrite, publishTables } from '../lake/lakehouse';
import type { ColumnDef, PublishSpec } from '../lake/lakehouse';
import { loadSql, queryRows, setVariables } from '../lake/duckdb';
import {
  ALERT_COLUMNS,
  alertsRaisedBy,
  bronzeRowCounts,
  fileVersionId,
  keysTable,
  LATE_EVENT_COLUMNS,
  partitionView,
  readSpeedState,
  registerFileRows,
  replaceFileRows,
  SPEED_LAYER,
  SPEED_TABLES,
  SPEED_WINDOW_COLUMNS,
  watermarkBefore,
  windowSizesLiteral,
  writeSpeedState,
} from '../lake/speed';
import type { SpeedAlert, SpeedFileEntry } from '../lake/speed';
import { readLandedFiles } from '../lake/landing';
import { emptyOwnBaseline } from './models';
import { findModel } from '../lake/tables';
import { classify, contractViolation, emptyMetrics, onCancel, openLake, persistMetrics } from './common';
import type { ActivityDeps, RunTarget, StepMetrics } from './common';
import { upsertSpeedServing } from '../serving/speed-serving';

export type { SpeedAlert } from '../lake/speed';

/** Input of {@link updateSpeedLayer}: one events file, already in bronze. */
export interface SpeedUpdateInput extends RunTarget {
  fileKey: string;
}

export interface SpeedUpdateResult {
  metrics: StepMetrics;
  /** The watermark the file was judged against (DuckDB timestamp text), null when no earlier file is done. */
  watermark: string | null;
  /** Alerts this file version raised (also when an earlier attempt already recorded them). */
  alerts: SpeedAlert[];
  /** Files after this one in landing order, processed before it, judged again (their watermark or rows changed). */
  rejudged: string[];
}

/** Columns of silver orgs/resources the silver usage_events model joins, for when silver was never built. */
const ENRICHMENT_FALLBACK: Record<string, ColumnDef[]> = {
  orgs: ['org_id', 'org_name', 'industry', 'plan_tier', 'hq_region'].map((name) => ({ name, type: 'VARCHAR' })),
  resources: ['resource_id', 'state'].map((name) => ({ name, type: 'VARCHAR' })),
};

const windowsRef = { layer: SPEED_LAYER, table: SPEED_TABLES.windows };
const lateRef = { layer: SPEED_LAYER, table: SPEED_TABLES.lateEvents };
const alertsRef = { layer: SPEED_LAYER, table: SPEED_TABLES.alerts };

/** DuckDB timestamp text for SQL parameters ('-infinity' = no watermark yet). */
const tsParam = (ts: string | null): string => ts ?? '-infinity';

/**
 * The speed layer (SPEC §7) for one events file, after its bronze ingest. Runs on the events queue (single writer).
 *
 * 1. The file's rows = bronze rows whose source_file is the key (first in landing order wins, so duplicates of
 *    earlier files are not counted twice), read from the bronze partitions its meta.landed_files record names.
 * 2. The silver usage_events model itself runs over those rows (empty enrichment views): only events that pass the
 *    silver rules, canonicalised the same way, feed the windows.
 * 3. Watermark = max event time over the done files whose key sorts before this one (landing order) − lag: a
 *    function of the data, not of which files the writer happened to process first. Events older than it are late:
 *    recorded in `speed.late_events`, counted, and applied to no window (the batch layer has them).
 * 4. Files after this one in landing order that were processed before it are judged again when their watermark now
 *    differs or their bronze rows changed (this file displaced a duplicate they held), in key order, each against
 *    the files before it: the end state is that of processing in key order whatever the arrival order. Every judged
 *    file's contribution to the 5 min / 15 min / 1 h windows and its late events replace its earlier ones (rows
 *    keyed by source_file), so a retry or re-judging never double-counts; alerts for org 5-minute windows over the
 *    threshold are recorded once per window (never withdrawn); Cassandra gets every window a judged file touches
 *    now or touched before.
 *
 * Windows, late events, alerts and the final state of every judged file commit in one DuckLake transaction: the
 * state never names partitions, watermarks or a max event time the tables do not have, nor the reverse, and a
 * crash before the commit leaves everything as it was. Cassandra is upserted just before that commit, so a serving
 * failure leaves the file pending and the retry upserts again (totals by primary key: idempotent); until the retry
 * commits, serving may be ahead of the lake, never behind it.
 *
 * Idempotent: a file version already done is skipped; a crash mid-way re-runs to the same content (the watermarks
 * are recomputed from the committed state). No heartbeat details: the worker wraps it in a keepalive
 * (activities/index.ts).
 */
export async function updateSpeedLayer(deps: ActivityDeps, input: SpeedUpdateInput): Promise<SpeedUpdateResult> {
  const started = Date.now();
  const metrics = emptyMetrics('speed.windows', 'serving', 'speed_windows');
  const ctx = await openLake(deps, input);
  const { conn, lake } = ctx;
  const done = onCancel(conn);
  const key = input.fileKey;
  const lag = deps.config.streaming.watermarkLagMinutes;
  try {
    const fileEntry = (await readLandedFiles(conn, lake, 'usage_events', key))[key];
    if (!fileEntry) throw contractViolation(`file ${key} is not in bronze usage_events (ingest it first)`);
    const version = fileVersionId(key, fileEntry.sha256);
    const state = await readSpeedState(conn, lake);
    const prev = state.files[key];
    if (prev && prev.sha256 === fileEntry.sha256 && prev.status === 'done') {
      metrics.extra.files_skipped = 1;
      metrics.durationMs = Date.now() - started;
      return { metrics, watermark: prev.watermark, alerts: [], rejudged: [] };
    }
    await enrichmentViews(ctx);
    // The entries before this activity: the partitions each judged file wrote are replaced.
    const before = new Map<string, SpeedFileEntry | undefined>();

    // 1–3: this file.
    const watermark = await watermarkBefore(conn, state, key, lag);
    const own = await judgeFile(ctx, { key, partitions: fileEntry.partitions, watermark, first: true });
    metrics.rowsIn = own.rowsIn;
    for (const r of await queryRows(
      conn,
      `select _rule as rule, count(*)::bigint as n from _speed_silver where _rule is not null group by 1`,
    )) {
      metrics.quarantined[String(r.rule)] = Number(r.n);
    }
    before.set(key, prev);
    const entry: SpeedFileEntry = {
      sha256: fileEntry.sha256,
      version,
      watermark,
      status: 'done',
      windowPartitions: [],
      latePartitions: [],
      onTime: own.onTime,
      late: own.late,
      rows: own.rowsIn,
      alerts: 0,
      maxEventTs: own.maxEventTs,
      processedAt: new Date().toISOString(),
      runId: input.runId,
    };
    state.files[key] = entry;

    // 4: later files already done, in key order, so each sees the final entries of the files before it.
    const later = Object.keys(state.files)
      .filter((k) => k > key && state.files[k].status === 'done')
      .sort();
    const rejudged: string[] = [];
    let lateDelta = 0;
    const landed = later.length > 0 ? await readLandedFiles(conn, lake, 'usage_events') : {};
    const bronzeRows = await bronzeRowCounts(
      conn,
      lake,
      later.filter((k) => landed[k]).map((k) => landed[k]),
    );
    for (const k of later) {
      const old = state.files[k];
      const wm = await watermarkBefore(conn, state, k, lag);
      // Its bronze rows change when a file earlier in landing order displaces a duplicate it held (bronze.ts).
      const rowsChanged = old.rows !== undefined && (bronzeRows.get(k) ?? 0) !== old.rows;
      if ((wm === old.watermark && !rowsChanged) || !landed[k]) continue;
      const r = await judgeFile(ctx, { key: k, partitions: landed[k].partitions, watermark: wm, first: false });
      before.set(k, old);
      state.files[k] = {
        ...old,
        watermark: wm,
        onTime: r.onTime,
        late: r.late,
        rows: r.rowsIn,
        maxEventTs: r.maxEventTs,
        processedAt: new Date().toISOString(),
        runId: input.runId,
      };
      lateDelta += r.late - old.late;
      rejudged.push(k);
    }
    const judged = [key, ...rejudged];
    await keysTable(conn, '_speed_keys', judged);
    const earlier = (pick: (e: SpeedFileEntry) => string[]): string[] =>
      [...before.values()].flatMap((e) => (e ? pick(e) : []));

    // Every judged file's contribution to every window size (lake/sql/speed/windows.sql).
    await conn.run(`set variable speed_window_sizes = ${windowSizesLiteral()}`);
    await conn.run(`create or replace temp table _speed_contrib as ${loadSql('speed/windows.sql')}`);
    const win = await replaceFileRows(conn, lake, {
      ref: windowsRef,
      columns: SPEED_WINDOW_COLUMNS,
      rows: '_speed_contrib',
      out: '_speed_windows_out',
      partitionBy: 'window_date',
      earlierPartitions: earlier((e) => e.windowPartitions),
      replaced: '_speed_windows_old',
    });
    const [contrib] = await queryRows(conn, `select count(*)::bigint as n from _speed_contrib`);
    metrics.rowsOut = Number(contrib.n);
    // The windows whose totals this activity may change: those the judged files touch now or touched before.
    await conn.run(`create or replace temp table _speed_touched as ${loadSql('speed/touched_windows.sql')}`);

    // Late events, for audit (replacing each judged file's earlier record).
    await conn.run(`create or replace temp table _speed_late as ${loadSql('speed/late_events.sql')}`);
    const late = await replaceFileRows(conn, lake, {
      ref: lateRef,
      columns: LATE_EVENT_COLUMNS,
      rows: '_speed_late',
      out: '_speed_late_out',
      partitionBy: 'usage_date',
      earlierPartitions: earlier((e) => e.latePartitions),
    });

    // Alerts: org totals of the 5-minute windows the judged files touch, over the threshold, once per window.
    const alerts = await raiseAlerts(ctx, deps, { key, version });
    metrics.extra.alerts_raised = alerts.raised;

    if (deps.config.cassandra) {
      metrics.extra.serving_rows = await upsertSpeedServing(deps.config, conn, alerts.forVersion);
    }

    for (const k of judged) {
      const e = state.files[k];
      e.windowPartitions = win.partitions[k] ?? [];
      e.latePartitions = late.partitions[k] ?? [];
    }
    entry.alerts = alerts.forVersion.length;
    // Same DuckDB text format everywhere, so the string order is the time order.
    state.maxEventTs = Object.values(state.files)
      .filter((e) => e.status === 'done' && e.maxEventTs)
      .reduce<string | null>((m, e) => (m === null || e.maxEventTs! > m ? e.maxEventTs : m), null);
    // One transaction: the three tables (only those this activity changes) and the states that say so.
    const specs = [win.publish, late.publish, alerts.publish].filter((p): p is PublishSpec => p !== undefined);
    const results = await publishTables(ctx, specs, {
      step: 'speed.windows',
      extra: [(c) => writeSpeedState(c, lake, state, judged)],
    });
    const winPub = win.publish ? results[specs.indexOf(win.publish)] : undefined;
    if (winPub) {
      metrics.partitionsWritten += winPub.written.length + winPub.deleted.length;
      metrics.changedPartitions = [...winPub.written, ...winPub.deleted].sort();
    }

    metrics.extra.events_on_time = entry.onTime;
    metrics.extra.events_late = entry.late;
    metrics.extra.files_rejudged = rejudged.length;
    metrics.extra.events_late_rejudged_delta = lateDelta;
    metrics.extra.watermark_lag_minutes = lag;
    metrics.durationMs = Date.now() - started;
    await lakeWrite(conn, lake, async () => () => persistMetrics(conn, lake, input, metrics));
    return { metrics, watermark, alerts: alerts.forVersion, rejudged };
  } catch (e) {
    throw classify(e, 'speed.windows');
  } finally {
    done();
    await conn
      .run(
        `drop table if exists _speed_rows; drop table if exists _speed_silver; drop table if exists _speed_events;
         drop table if exists _speed_keys; drop table if exists _speed_later; drop table if exists _speed_contrib;
         drop table if exists _speed_windows_out; drop table if exists _speed_windows_old;
         drop table if exists _speed_touched; drop table if exists _speed_late; drop table if exists _speed_late_out;
         drop table if exists _speed_alerts_new; drop table if exists _speed_alerts_out`,
      )
      .catch(() => undefined);
    conn.closeSync();
  }
}

/** Empty silver orgs/resources views for the silver usage_events model (enrichment does not matter to windows). */
async function enrichmentViews(ctx: Awaited<ReturnType<typeof openLake>>): Promise<void> {
  for (const t of ['orgs', 'resources']) {
    const cols = (await lakeColumns(ctx.conn, ctx.lake, 'silver', t)) ?? ENRICHMENT_FALLBACK[t];
    await emptyView(ctx.conn, `silver_${t}`, cols);
  }
  // Lateness needs no anomaly baseline: the model's own-output baseline view is empty here.
  await emptyOwnBaseline(ctx.conn, findModel('silver', 'usage_events'));
}

/**
 * Judges one file against `watermark`: its first-seen bronze rows through the silver model (`_speed_silver`), the
 * kept events with their lateness (lake/sql/speed/file_events.sql) added to `_speed_events` (created by the `first`
 * file). Returns its counts.
 */
async function judgeFile(
  ctx: Awaited<ReturnType<typeof openLake>>,
  file: { key: string; partitions?: string[]; watermark: string | null; first: boolean },
): Promise<{ rowsIn: number; onTime: number; late: number; maxEventTs: string | null }> {
  const { conn, lake } = ctx;
  await registerFileRows(conn, lake, file);
  await conn.run(`create or replace temp table _speed_silver as ${loadSql('silver/usage_events.sql')}`);
  await setVariables(conn, { speed_watermark: tsParam(file.watermark) });
  await conn.run(
    `${file.first ? 'create or replace temp table _speed_events as' : 'insert into _speed_events'}
     ${loadSql('speed/file_events.sql')}`,
  );
  const [counts] = await queryRows(
    conn,
    `select (select count(*) from _speed_rows)::bigint as rows_in,
            count(*) filter (where not is_late)::bigint as on_time, count(*) filter (where is_late)::bigint as late,
            max(event_ts)::varchar as max_ts
     from _speed_events where source_file = $key`,
    { key: file.key },
  );
  return {
    rowsIn: Number(counts.rows_in),
    onTime: Number(counts.on_time),
    late: Number(counts.late),
    maxEventTs: counts.max_ts === null ? null : String(counts.max_ts),
  };
}

/**
 * Finds an alert for every org 5-minute window the judged files touch (`_speed_contrib`: this file and those it
 * re-judged) whose cost (all services, all files) exceeds CPA_ALERT_COST_5MIN_USD and has no alert yet
 * (lake/sql/speed/alerts.sql); it is raised by this file version, whose workflow delivers it. Returns how many are
 * new, the publish spec that records them (none when none is new) and every alert this file version raised (so a
 * retry after a crash still hands them to notifyAlerts).
 */
async function raiseAlerts(
  ctx: Awaited<ReturnType<typeof openLake>>,
  deps: ActivityDeps,
  file: { key: string; version: string },
): Promise<{ raised: number; publish?: PublishSpec; forVersion: SpeedAlert[] }> {
  const threshold = deps.config.streaming.alertCost5minUsd;
  if (threshold === undefined) return { raised: 0, forVersion: [] };
  const { conn, lake } = ctx;
  await partitionView(conn, lake, alertsRef, '_speed_alerts_prev', ALERT_COLUMNS);
  await setVariables(conn, {
    speed_alert_threshold_usd: String(threshold),
    speed_alert_raised_by: file.version,
    speed_alert_source_file: file.key,
    speed_alert_raised_at: new Date().toISOString().replace('T', ' ').replace('Z', ''),
  });
  await conn.run(`create or replace temp table _speed_alerts_new as ${loadSql('speed/alerts.sql')}`);
  const [n] = await queryRows(conn, `select count(*)::bigint as n from _speed_alerts_new`);
  const raised = Number(n.n);
  await conn.run(
    `create or replace temp table _speed_alerts_out as
     select * from _speed_alerts_prev union all by name select * from _speed_alerts_new`,
  );
  const forVersion = await alertsRaisedBy(conn, '_speed_alerts_out', file.version);
  return { raised, publish: raised > 0 ? { ...alertsRef, source: '_speed_alerts_out' } : undefined, forVersion };
}

/**
 * Delivers alerts: one structured JSON log line each (stdout) and, when CPA_ALERT_WEBHOOK_URL is set, a JSON POST
 * with an `Idempotency-Key` header (the alert id) so a receiver can drop the duplicates a retry may send.
 * At-least-once. A 4xx answer (other than 408/429) is a non-retryable `WebhookRejected`; other failures retry.
 */
export async function notifyAlerts(
  deps: ActivityDeps,
  input: { alerts: SpeedAlert[] },
): Promise<{ logged: number; posted: number }> {
  const url = deps.config.streaming.alertWebhookUrl;
  let posted = 0;
  for (const a of input.alerts) {
    process.stdout.write(`${JSON.stringify({ level: 'warn', event: 'cost_alert', ...a })}\n`);
    if (!url) continue;
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': a.alert_id },
        body: JSON.stringify({ type: 'cpa.cost_alert', ...a }),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (e) {
      // The URL may carry a token: never in a message.
      throw new Error(`alert webhook unreachable: ${(e as Error).name}`);
    }
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) {
      const msg = `alert webhook answered HTTP ${res.status} for ${a.alert_id}`;
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        throw ApplicationFailure.nonRetryable(msg, 'WebhookRejected');
      }
      throw new Error(msg);
    }
    posted++;
  }
  return { logged: input.alerts.length, posted };
}
