import crypto from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Config } from '../config/env';
import { joinUri } from '../config/env';
import { queryRows, sqlIdent, sqlString } from './duckdb';
import { lakeColumns, qualified } from './lakehouse';
import type { AttachedLake } from './lakehouse';
import { SAMPLE_ROWS } from './report-html';
import type { ReportData, ReportRun, SampleRow, TableAnomalies } from './report-html';

/** Runs shown in the report's history charts (the newest ones). */
export const HISTORY_RUNS = 60;

/** Where a run's report lives: `<lake>/_meta/reports/<runId>.html` (local path or s3:// URI). */
export function reportUri(lakeRoot: string, runId: string): string {
  // Run ids are Temporal UUIDs; anything else is reduced to a safe file name.
  return joinUri(lakeRoot, '_meta', 'reports', `${runId.replace(/[^A-Za-z0-9._-]/g, '_')}.html`);
}

/** Fields of a raw record that hold PII; silver keeps only their salted hash. */
const PII_FIELDS = ['email'];
const SHA256_HEX = /^[0-9a-f]{64}$/;
const RAW_CHARS = 600;

/**
 * The raw record as shown in the report: PII fields replaced by sha256(salt || lower(trim(value))), exactly the
 * hash silver stores (lake/sql/silver/users.sql), unless they already are one. Silver hashes them before
 * quarantining, so this is a second lock, not the first. Long records are cut.
 */
export function maskRaw(raw: string | null, salt: string): string | null {
  if (raw === null) return null;
  let text = raw;
  try {
    const obj = JSON.parse(raw) as unknown;
    if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
      const rec = obj as Record<string, unknown>;
      for (const k of Object.keys(rec)) {
        const v = rec[k];
        if (PII_FIELDS.includes(k.toLowerCase()) && typeof v === 'string' && !SHA256_HEX.test(v)) {
          rec[k] = crypto
            .createHash('sha256')
            .update(salt + v.trim().toLowerCase())
            .digest('hex');
        }
      }
      text = JSON.stringify(rec);
    }
  } catch {
    // Not JSON (a malformed_json line): shown as is, cut below. Anything that looks like an address is hashed too.
    text = raw.replace(/[^\s@"',;:{}[\]]+@[^\s@"',;:{}[\]]+\.[^\s@"',;:{}[\]]+/g, (m) =>
      crypto
        .createHash('sha256')
        .update(salt + m.trim().toLowerCase())
        .digest('hex'),
    );
  }
  return text.length > RAW_CHARS ? `${text.slice(0, RAW_CHARS)}…` : text;
}

/** `AT (VERSION => n)` for the run's last snapshot (time travel to what the run saw), or nothing. */
function at(version: number | undefined): string {
  return version !== undefined && Number.isInteger(version) && version >= 0 ? ` AT (VERSION => ${version})` : '';
}

/** Runs `q` at the run's snapshot; when that snapshot expired (or the table did not exist then), at the current one. */
async function atRunSnapshot<T>(version: number | undefined, q: (atClause: string) => Promise<T>): Promise<T> {
  if (at(version) === '') return q('');
  try {
    return await q(at(version));
  } catch {
    return q('');
  }
}

/** Latest record per run id from `meta.runs`, newest `limit` runs, oldest first. */
export async function recentRuns(
  conn: DuckDBConnection,
  lake: AttachedLake,
  limit = HISTORY_RUNS,
): Promise<ReportRun[]> {
  if (!(await lakeColumns(conn, lake, 'meta', 'runs'))) return [];
  const rows = await queryRows(
    conn,
    `select summary from ${qualified(lake, 'meta', 'runs')}
     qualify row_number() over (partition by run_id order by recorded_at desc) = 1
     order by started_at desc limit $limit`,
    { limit },
  );
  return rows.map((r) => JSON.parse(String(r.summary)) as ReportRun).reverse();
}

/**
 * Everything the page shows for `run`, read from the lake: the history of runs (this one included even when its
 * record is not committed yet: the activity renders before `recordRun`), up to {@link SAMPLE_ROWS} quarantined rows
 * per table and rule, and whole-table anomaly figures. Reads at the run's last snapshot when it is known.
 */
export async function gatherReportData(
  conn: DuckDBConnection,
  lake: AttachedLake,
  config: Config,
  run: ReportRun,
  opts: { location?: string; now?: Date } = {},
): Promise<ReportData> {
  const version = run.snapshots?.last;
  const history = (await recentRuns(conn, lake)).filter(
    (r) => r.runId !== run.runId && Date.parse(r.startedAt) <= Date.parse(run.startedAt),
  );
  history.push(run);
  if (history.length > HISTORY_RUNS) history.splice(0, history.length - HISTORY_RUNS);

  const samples: ReportData['samples'] = {};
  const tables = [
    ...new Set(run.steps.filter((s) => Object.values(s.quarantined).some((n) => n > 0)).map((s) => s.table)),
  ];
  for (const table of tables) {
    if (!/^[a-z_]+$/.test(table) || !(await lakeColumns(conn, lake, 'quarantine', table))) continue;
    const rules = [
      ...new Set(
        run.steps
          .filter((s) => s.table === table)
          .flatMap((s) => Object.keys(s.quarantined).filter((r) => s.quarantined[r] > 0)),
      ),
    ];
    // One query per table (each statement on the lake is a catalog round trip): the first rows of every rule.
    const rows = await atRunSnapshot(version, (clause) =>
      queryRows(
        conn,
        `select rule, detail, source_file, source_line::bigint as source_line, raw
         from ${qualified(lake, 'quarantine', table)}${clause}
         where rule in (${rules.map(sqlString).join(', ')})
         qualify row_number() over (partition by rule order by source_file, source_line) <= ${SAMPLE_ROWS}
         order by rule, source_file, source_line`,
      ),
    );
    const byRule: Record<string, SampleRow[]> = Object.fromEntries(rules.map((r) => [r, [] as SampleRow[]]));
    for (const r of rows) {
      byRule[String(r.rule)].push({
        sourceFile: r.source_file === null ? null : String(r.source_file),
        sourceLine: r.source_line === null ? null : Number(r.source_line),
        detail: r.detail === null ? null : String(r.detail),
        raw: maskRaw(r.raw === null ? null : String(r.raw), config.emailSalt),
      });
    }
    samples[table] = byRule;
  }

  const anomalies: TableAnomalies[] = [];
  for (const [layer, table] of [
    ['silver', 'usage_events'],
    ['gold', 'cost_anomaly_mart'],
  ] as const) {
    const cols = await lakeColumns(conn, lake, layer, table);
    if (!cols?.some((c) => c.name === 'is_anomaly')) continue;
    const [r] = await atRunSnapshot(version, (clause) =>
      queryRows(
        conn,
        `select count(*)::bigint as n, count(*) filter (where ${sqlIdent('is_anomaly')})::bigint as a
         from ${qualified(lake, layer, table)}${clause}`,
      ),
    );
    anomalies.push({ table: `${layer}.${table}`, rows: Number(r.n), anomalies: Number(r.a) });
  }

  return {
    run,
    history,
    samples,
    anomalies,
    generatedAt: (opts.now ?? new Date()).toISOString(),
    location: opts.location,
  };
}
