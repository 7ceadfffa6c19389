import type { Config } from '../config/env';
import { readManifest } from '../lake/catalog';
import { createDuckDb } from '../lake/duckdb';
import {
  batchClosedThrough,
  mergeSpeedIntoDaily,
  readSpeedDaily,
  readSpeedState,
  SPEED_LAYER,
  SPEED_TABLES,
} from '../lake/speed';
import { storageFor } from '../lake/storage';
import type { QueryResult, ResultRow } from './queries';

/**
 * Query 1 with the speed layer merged in (SPEC §7): `runQuery`'s q1 rows (batch, `source = 'batch'`) for the days
 * the batch layer has closed (lake/speed.ts batchClosedThrough), the speed layer's daily totals (from its 1-hour
 * windows, `source = 'speed'`) for the later days it covers. Speed rows have cost, requests and events; cpu,
 * storage and carbon are NULL there (the speed layer does not keep them). A lake without a speed layer is returned
 * unchanged.
 */
export async function mergeSpeedIntoQ1(cfg: Config, result: QueryResult, lake = cfg.lakeRoot): Promise<QueryResult> {
  if (result.query !== 'q1' || !result.params.org || !result.params.from || !result.params.to) return result;
  const storage = storageFor(lake, cfg);
  const state = await readSpeedState(storage, lake);
  if (Object.keys(state.files).length === 0) return result;
  const speedDays = new Set(
    Object.keys((await readManifest(storage, lake, SPEED_LAYER, SPEED_TABLES.windows))?.partitions ?? {}),
  );
  const db = await createDuckDb({ ...cfg, lakeRoot: lake });
  const conn = await db.connect();
  try {
    await conn.run(`set TimeZone = 'UTC'`);
    const closed = await batchClosedThrough(conn, storage, lake, cfg.streaming.watermarkLagMinutes);
    const { org, from, to } = result.params;
    const speed = (await readSpeedDaily(conn, storage, lake, { org, from, to })).map((r): ResultRow => ({
      usage_date: r.usage_date,
      service: r.service,
      total_cost_usd: r.total_cost_usd,
      total_requests: r.total_requests,
      cpu_hours: null,
      storage_gb_hours: null,
      carbon_kg: null,
      event_count: r.event_count,
    }));
    const rows = mergeSpeedIntoDaily(
      result.rows as Array<ResultRow & { usage_date: unknown }>,
      speed as Array<ResultRow & { usage_date: string }>,
      closed,
      speedDays,
    );
    return {
      ...result,
      rows: rows.map((r) => result.columns.reduce<ResultRow>((o, c) => ({ ...o, [c]: r[c] ?? null }), {})),
    };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
