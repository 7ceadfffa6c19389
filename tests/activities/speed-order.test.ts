import fs from 'node:fs';
import path from 'node:path';
import type { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../config/env';
import { createActivities } from '../../activities';
import { EVENTS_PREFIX } from '../../activities/bronze';
import { withLake } from '../../activities/common';
import { createDuckDb } from '../../lake/duckdb';
import { generate } from '../../lake/generator';
import { lakeWrite } from '../../lake/lakehouse';
import type { GeneratorReport } from '../../lake/generator';
import { readSpeedState, writeSpeedState } from '../../lake/speed';
import { tmpDir } from '../support/env';
import { withLakeSql } from '../support/lake-sql';
import { speedState } from '../streaming/support';

/**
 * Issue 14: the speed layer's end state does not depend on the order the single writer processes files in. The
 * files of a small generated dataset go through updateSpeedLayer (real activities, a real DuckLake lake in a tmp
 * dir) in key order and in shuffled orders: windows, late events, per-file watermarks and counts are the same.
 */
describe('speed layer: processing order', () => {
  const gen = tmpDir('speed-order-gen');
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused' });
  let db: DuckDBInstance;
  let acts: ReturnType<typeof createActivities>;
  let report: GeneratorReport;
  let keys: string[];

  beforeAll(async () => {
    report = await generate({ scale: 0.1, seed: 14, out: gen });
    keys = fs
      .readdirSync(path.join(gen, EVENTS_PREFIX))
      .filter((f) => f.endsWith('.jsonl'))
      .sort()
      .map((f) => `${EVENTS_PREFIX}/${f}`);
    db = await createDuckDb(config);
    acts = createActivities({ config, db });
  });
  afterAll(() => db.closeSync());

  /** A deterministic permutation (mulberry32). */
  function shuffled<T>(items: T[], seed: number): T[] {
    let s = seed;
    const rand = (): number => {
      s = (s + 0x6d2b79f5) | 0;
      let t = Math.imul(s ^ (s >>> 15), 1 | s);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /**
   * The speed layer file by file in `order`, after bronze has every file (in key order), or, `interleaved`, each
   * file's bronze ingest just before its speed update, as ingestEventFile does (bronze sees the files in `order` too).
   */
  async function run(order: string[], opts: { interleaved?: boolean } = {}) {
    const lake = tmpDir('speed-order-lake');
    const target = { lake, landing: gen, runId: `order-${order[0]}` };
    if (!opts.interleaved) await acts.ingestEventFiles({ ...target, keys });
    const results = [];
    let displaced = 0;
    for (const key of order) {
      if (opts.interleaved) {
        displaced += (await acts.ingestEventFiles({ ...target, keys: [key] })).extra.duplicates_displaced ?? 0;
      }
      results.push(await acts.updateSpeedLayer({ ...target, fileKey: key }));
    }
    return { lake, results, displaced, ...(await snapshot(lake)) };
  }

  async function snapshot(lake: string) {
    const state = await speedState(lake);
    const files = Object.fromEntries(
      keys.map((k) => {
        const { watermark, onTime, late, maxEventTs, windowPartitions, latePartitions, status } = state.files[k];
        return [k, { watermark, onTime, late, maxEventTs, windowPartitions, latePartitions, status }];
      }),
    );
    return withLakeSql(lake, async (q) => ({
      maxEventTs: state.maxEventTs,
      files,
      windows: await q(
        `select window_size, window_start::varchar as ws, org_id, service, source_file, cost_usd::varchar as cost,
                requests::varchar as requests, events::integer as events
         from lake.speed.windows order by all`,
      ),
      late: await q(
        `select event_id, source_file, watermark::varchar as watermark from lake.speed.late_events order by all`,
      ),
      bronze: await q(`select event_id, source_file, source_line from lake.bronze.usage_events order by all`),
    }));
  }

  let keyOrder: Awaited<ReturnType<typeof run>>;

  it('key order: the generator late count', async () => {
    keyOrder = await run(keys);
    expect(keyOrder.late).toHaveLength(report.quirks.late_events);
    expect(Object.values(keyOrder.files).reduce((a, f) => a + f.late, 0)).toBe(report.quirks.late_events);
    expect(keyOrder.files[keys[0]].watermark).toBeNull();
    expect(keyOrder.results.every((r) => r.rejudged.length === 0)).toBe(true);
  }, 240_000);

  it.each([
    ['reversed', (k: string[]) => [...k].reverse()],
    ['shuffled (seed 1)', (k: string[]) => shuffled(k, 1)],
    ['neighbours swapped', (k: string[]) => k.map((_, i) => k[i % 2 === 0 ? Math.min(i + 1, k.length - 1) : i - 1])],
  ])(
    '%s: the same windows, late events, watermarks and counts as key order',
    async (_name, order) => {
      const o = order(keys);
      expect([...o].sort()).toEqual(keys);
      const r = await run(o);
      expect(r.files).toEqual(keyOrder.files);
      expect(r.maxEventTs).toBe(keyOrder.maxEventTs);
      expect(r.late).toEqual(keyOrder.late);
      expect(r.windows).toEqual(keyOrder.windows);
      expect(r.results.some((x) => x.rejudged.length > 0)).toBe(true);
    },
    240_000,
  );

  it('bronze and speed interleaved in a shuffled order (duplicates land in a later file first): the same', async () => {
    const o = shuffled(keys, 3);
    const r = await run(o, { interleaved: true });
    expect(r.displaced).toBeGreaterThan(0);
    // Bronze keeps each duplicate from the earliest file in key order, displacing a copy that arrived first.
    expect(r.bronze).toEqual(keyOrder.bronze);
    expect(r.files).toEqual(keyOrder.files);
    expect(r.late).toEqual(keyOrder.late);
    expect(r.windows).toEqual(keyOrder.windows);
    expect(r.maxEventTs).toBe(keyOrder.maxEventTs);
  }, 240_000);

  it('idempotent: the first file processed again (its state set back to pending) changes nothing', async () => {
    const lake = keyOrder.lake;
    const before = await snapshot(lake);
    await withLake({ config, db }, lake, async (conn, l) => {
      const state = await readSpeedState(conn, l);
      state.files[keys[0]].status = 'pending';
      await lakeWrite(conn, l, async () => () => writeSpeedState(conn, l, state, [keys[0]]));
    });
    // Every later file is checked again; none has a different watermark, so none is re-judged.
    const again = await acts.updateSpeedLayer({ lake, landing: gen, runId: 'again', fileKey: keys[0] });
    expect(again.rejudged).toEqual([]);
    expect(await snapshot(lake)).toEqual(before);
  }, 120_000);
});
