import fs from 'node:fs';
import path from 'node:path';
import { aliasRows, normToken } from '../../config/aliases';
import { SPEED_STATE_KEY } from '../../lake/speed';
import type { SpeedState } from '../../lake/speed';
import { withLakeSql } from '../support/lake-sql';

/**
 * An independent model of what the speed layer must compute, written from SPEC §3/§4/§7 and docs/decisions.md
 * over the raw JSONL lines (no SQL, no lake code): first-seen dedup by event_id, the four silver rules, the
 * watermark (max kept event time of earlier files − lag), 5-minute org windows and the alerts they raise.
 */
export interface ModelFile {
  key: string;
  kept: number;
  onTime: number;
  late: number;
  lateIds: string[];
  /** Alert ids (`5m/<org>/<window start>`) this file raised. */
  alerts: string[];
}

export interface StreamModel {
  files: ModelFile[];
  /** Org 5-minute window totals in micro-dollars after all files, keyed `org|windowStartMs`. */
  windows5m: Map<string, bigint>;
  alerts: string[];
  late: number;
  onTime: number;
}

const services = new Map(
  aliasRows()
    .filter((r) => r.kind === 'service')
    .map((r) => [r.token, r.canonical]),
);
const ISO = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$/;

function parseTs(raw: unknown): number | undefined {
  if (typeof raw !== 'string' || !ISO.test(raw.trim())) return undefined;
  const s = raw.trim().replace(' ', 'T');
  const ms = Date.parse(/(Z|[+-]\d{2}(:?\d{2})?)$/.test(s) ? s : `${s}Z`);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Cost as exact micro-dollars, or undefined when absent/not numeric (→ missing_required). */
function costMicros(raw: unknown): bigint | undefined {
  if (raw === null || raw === undefined) return undefined;
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  return Number.isFinite(n) ? BigInt(Math.round(n * 1e6)) : undefined;
}

const blank = (v: unknown): boolean => v === null || v === undefined || String(v).trim() === '';

export function modelStream(
  files: Array<{ key: string; text: string }>,
  opts: { lagMinutes: number; thresholdUsd?: number },
): StreamModel {
  const seen = new Set<string>();
  const windows = new Map<string, bigint>();
  const alerted = new Set<string>();
  const threshold = opts.thresholdUsd === undefined ? undefined : BigInt(Math.round(opts.thresholdUsd * 1e6));
  let maxKept: number | undefined;
  const out: ModelFile[] = [];
  for (const f of files) {
    const watermark = maxKept === undefined ? undefined : maxKept - opts.lagMinutes * 60_000;
    const m: ModelFile = { key: f.key, kept: 0, onTime: 0, late: 0, lateIds: [], alerts: [] };
    let fileMax: number | undefined;
    const touched = new Set<string>();
    for (const line of f.text.split('\n')) {
      if (line.trim() === '') continue;
      let e: Record<string, unknown>;
      try {
        e = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (e === null || typeof e !== 'object' || Array.isArray(e)) continue;
      const id = e.event_id === null || e.event_id === undefined || e.event_id === '' ? undefined : String(e.event_id);
      if (id !== undefined) {
        if (seen.has(id)) continue;
        seen.add(id);
      }
      const cost = costMicros(e.cost_usd_increment);
      if (
        id === undefined ||
        blank(id) ||
        blank(e.timestamp) ||
        blank(e.org_id) ||
        blank(e.service) ||
        cost === undefined
      )
        continue;
      const ts = parseTs(e.timestamp);
      if (ts === undefined) continue;
      if (!services.has(normToken(String(e.service)))) continue;
      if (cost < -10_000n) continue;
      m.kept++;
      fileMax = fileMax === undefined ? ts : Math.max(fileMax, ts);
      if (watermark !== undefined && ts < watermark) {
        m.late++;
        m.lateIds.push(id);
        continue;
      }
      m.onTime++;
      const k = `${String(e.org_id)}|${Math.floor(ts / 300_000) * 300_000}`;
      windows.set(k, (windows.get(k) ?? 0n) + cost);
      touched.add(k);
    }
    if (threshold !== undefined) {
      for (const k of [...touched].sort()) {
        if (alerted.has(k) || windows.get(k)! <= threshold) continue;
        alerted.add(k);
        const [org, start] = k.split('|');
        m.alerts.push(`5m/${org}/${new Date(Number(start)).toISOString().replace('.000Z', 'Z')}`);
      }
    }
    if (fileMax !== undefined) maxKept = maxKept === undefined ? fileMax : Math.max(maxKept, fileMax);
    out.push(m);
  }
  return {
    files: out,
    windows5m: windows,
    alerts: out.flatMap((f) => f.alerts).sort(),
    late: out.reduce((a, f) => a + f.late, 0),
    onTime: out.reduce((a, f) => a + f.onTime, 0),
  };
}

/** Bronze usage_events as an analyst's DuckDB sees it through the catalog. */
export async function bronzeStats(lake: string): Promise<{ rows: number; distinctIds: number; nullIds: number }> {
  return withLakeSql(lake, async (q) => {
    const [r] = await q(
      `select count(*)::integer as rows, count(distinct event_id)::integer as ids,
              count(*) filter (where event_id is null)::integer as nulls
       from lake.bronze.usage_events`,
    );
    return { rows: Number(r.rows), distinctIds: Number(r.ids), nullIds: Number(r.nulls) };
  });
}

/** Σ events and Σ cost per window size over the speed windows (all files). */
export async function speedTotals(lake: string): Promise<Record<string, { events: number; cost: string }>> {
  return withLakeSql(lake, async (q) => {
    const rows = await q(
      `select window_size, sum(events)::bigint as n, sum(cost_usd)::varchar as c from lake.speed.windows group by 1`,
    );
    return Object.fromEntries(rows.map((r) => [String(r.window_size), { events: Number(r.n), cost: String(r.c) }]));
  });
}

/** The speed layer's state as a fresh DuckDB reads it: the latest `meta.state` row per key (global + one per file). */
export async function speedState(lake: string): Promise<SpeedState> {
  return withLakeSql(lake, async (q) => {
    const rows = await q(
      `select key, value from lake.meta.state where key = $key or starts_with(key, $key || '/file/')
       qualify row_number() over (partition by key order by updated_at desc) = 1`,
      { key: SPEED_STATE_KEY },
    );
    const state: SpeedState = { maxEventTs: null, files: {}, updatedAt: null };
    for (const r of rows) {
      const key = String(r.key);
      const value = JSON.parse(String(r.value)) as SpeedState['files'][string] & { maxEventTs: string | null };
      if (key === SPEED_STATE_KEY) state.maxEventTs = value.maxEventTs;
      else state.files[key.slice(`${SPEED_STATE_KEY}/file/`.length)] = value;
    }
    return state;
  });
}

/** Keys of the events files bronze has recorded in `meta.landed_files`. */
export async function landedEventFiles(lake: string): Promise<string[]> {
  return withLakeSql(lake, async (q) =>
    (await q(`select distinct key from lake.meta.landed_files where source = 'usage_events' order by key`)).map((r) =>
      String(r.key),
    ),
  );
}

/** Copies one file into a landing dir atomically (temp name, rename), as a well-behaved landing writer does. */
export function dropFile(from: string, landing: string, key: string): void {
  const target = path.join(landing, key);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.tmp`);
  fs.copyFileSync(from, tmp);
  fs.renameSync(tmp, target);
}

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
