import type { Config } from '../config/env';
import { partitionVersions } from '../lake/lakehouse';
import { withLakeReader } from '../lake/reader';
import {
  batchClosedThrough,
  mergeSpeedIntoDaily,
  readSpeedDaily,
  readSpeedState,
  SPEED_LAYER,
  SPEED_TABLES,
} from '../lake/speed';
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
  const { org, from, to } = result.params;
  return withLakeReader(cfg, lake, async (conn, attached) => {
    const state = await readSpeedState(conn, attached);
    if (Object.keys(state.files).length === 0) return result;
    // The days the speed layer covers: its windows' partitions (window_date).
    const speedDays = new Set((await partitionVersions(conn, attached, SPEED_LAYER, SPEED_TABLES.windows)).keys());
    const closed = await batchClosedThrough(conn, attached, cfg.streaming.watermarkLagMinutes);
    const speed = (await readSpeedDaily(conn, attached, { org, from, to })).map((r): ResultRow => ({
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
  });
}
