import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../config/env';
import { createActivities } from '../../activities';
import { EVENTS_PREFIX } from '../../activities/bronze';
import { closeSpeedServing, readSpeedServing } from '../../serving/speed-serving';
import { connect } from '../../lake/cassandra';
import { createDuckDb } from '../../lake/duckdb';
import { generate } from '../../lake/generator';
import { attachLake, lakeWrite } from '../../lake/lakehouse';
import { readSpeedState, readSpeedWindows, writeSpeedState } from '../../lake/speed';
import type { SpeedWindowRow } from '../../lake/speed';
import { tmpDir } from '../support/env';
import { modelStream } from '../streaming/support';

/**
 * The speed layer's serving copy on the real local Cassandra (scripts/stack.sh), in a keyspace of its own (dropped
 * afterwards): every window the lake store has is in `speed_windows` with the same totals, every alert in
 * `speed_alerts`, and re-processing a file re-upserts the same rows.
 */
const keyspace = `cpa_speed_${Date.now().toString(36)}_${process.pid}`;
/** The out-of-order case writes its own keyspace: the same generated windows would collide with the first case's. */
const keyspace2 = `${keyspace}_o`;
const cassEnv = {
  CPA_CASSANDRA_CONTACT_POINTS: process.env.CPA_CASSANDRA_CONTACT_POINTS ?? '127.0.0.1:9042',
  CPA_CASSANDRA_LOCAL_DC: process.env.CPA_CASSANDRA_LOCAL_DC ?? 'datacenter1',
  CPA_CASSANDRA_KEYSPACE: keyspace,
};

describe('speed layer serving on Cassandra', () => {
  const gen = tmpDir('speed-srv-gen');
  const landing = tmpDir('speed-srv-landing');
  const lake = tmpDir('speed-srv-lake');

  afterAll(async () => {
    const client = await connect(loadConfig(cassEnv).cassandra!);
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace2}`);
    await client.shutdown();
  });

  it('upserts the windows and alerts of each file, identical to the lake store, idempotently', async () => {
    await generate({ scale: 0.05, seed: 5, out: gen });
    const names = fs.readdirSync(path.join(gen, EVENTS_PREFIX)).sort();
    const texts = names.map((n) => ({
      key: `${EVENTS_PREFIX}/${n}`,
      text: fs.readFileSync(path.join(gen, EVENTS_PREFIX, n), 'latin1'),
    }));
    const totals = [...modelStream(texts, { lagMinutes: 120 }).windows5m.values()].sort((a, b) =>
      a > b ? -1 : a < b ? 1 : 0,
    );
    const threshold = Number(totals[4] + totals[5]) / 2 / 1e6;
    const config = loadConfig({ ...cassEnv, CPA_LAKE_ROOT: lake, CPA_ALERT_COST_5MIN_USD: String(threshold) });
    const db = await createDuckDb(config);
    const acts = createActivities({ config, db });
    fs.mkdirSync(path.join(landing, EVENTS_PREFIX), { recursive: true });
    const target = { lake, landing, runId: 'speed-serving-test' };
    try {
      for (const n of names) {
        fs.copyFileSync(path.join(gen, EVENTS_PREFIX, n), path.join(landing, EVENTS_PREFIX, n));
        await acts.ingestEventFiles({ ...target, keys: [`${EVENTS_PREFIX}/${n}`] });
        const r = await acts.updateSpeedLayer({ ...target, fileKey: `${EVENTS_PREFIX}/${n}` });
        expect(r.metrics.extra.serving_rows).toBeGreaterThan(0);
      }
      const attached = await attachLake(db, config, lake);
      const conn = await db.connect();
      const lakeRows: SpeedWindowRow[] = [];
      for (const window of ['5m', '15m', '1h'] as const) {
        lakeRows.push(...(await readSpeedWindows(conn, attached, { window, lagMinutes: 120 })));
      }
      const partitions = new Set(lakeRows.map((r) => `${r.org_id}|${r.window_size}|${r.window_start.slice(0, 10)}`));
      const served: string[] = [];
      for (const p of partitions) {
        const [org, window, day] = p.split('|');
        for (const r of await readSpeedServing(config, { org, window, day })) {
          served.push(
            [
              org,
              window,
              String(r.window_start).replace('.000Z', 'Z'),
              r.service,
              Number(r.cost_usd).toFixed(6),
              Number(r.requests).toFixed(6),
              r.events,
            ].join(' '),
          );
        }
      }
      const expected = lakeRows.map((r) =>
        [r.org_id, r.window_size, r.window_start, r.service, r.cost_usd, r.requests, r.events].join(' '),
      );
      expect(served.sort()).toEqual(expected.sort());

      const client = await connect(config.cassandra!);
      const days = [...new Set(lakeRows.map((r) => r.window_start.slice(0, 10)))];
      const alertIds: string[] = [];
      for (const d of days) {
        const rs = await client.execute(`SELECT alert_id FROM ${keyspace}.speed_alerts WHERE alert_date = ?`, [d], {
          prepare: true,
        });
        alertIds.push(...rs.rows.map((row) => String(row.get('alert_id'))));
      }
      await client.shutdown();
      const model = modelStream(texts, { lagMinutes: 120, thresholdUsd: threshold });
      expect(alertIds.sort()).toEqual(model.alerts);
      expect(model.alerts.length).toBeGreaterThanOrEqual(5);

      // Re-processing the last file (its state set back to pending): the same rows again, nothing added.
      const state = await readSpeedState(conn, attached);
      state.files[texts[texts.length - 1].key].status = 'pending';
      await lakeWrite(conn, attached, async () => () => writeSpeedState(conn, attached, state));
      conn.closeSync();
      await acts.updateSpeedLayer({ ...target, fileKey: texts[texts.length - 1].key });
      const again: string[] = [];
      for (const p of partitions) {
        const [org, window, day] = p.split('|');
        for (const r of await readSpeedServing(config, { org, window, day })) {
          again.push(
            [
              org,
              window,
              String(r.window_start).replace('.000Z', 'Z'),
              r.service,
              Number(r.cost_usd).toFixed(6),
              Number(r.requests).toFixed(6),
              r.events,
            ].join(' '),
          );
        }
      }
      expect(again.sort()).toEqual(served.sort());
    } finally {
      await closeSpeedServing(config);
      db.closeSync();
    }
  }, 300_000);
  it('files processed out of order: re-judged windows are re-upserted, emptied ones deleted, = the lake store', async () => {
    const gen2 = tmpDir('speed-srv-order-gen');
    const lake2 = tmpDir('speed-srv-order-lake');
    await generate({ scale: 0.05, seed: 5, out: gen2 });
    const keys = fs
      .readdirSync(path.join(gen2, EVENTS_PREFIX))
      .sort()
      .map((n) => `${EVENTS_PREFIX}/${n}`);
    const config = loadConfig({ ...cassEnv, CPA_CASSANDRA_KEYSPACE: keyspace2, CPA_LAKE_ROOT: lake2 });
    const db = await createDuckDb(config);
    const acts = createActivities({ config, db });
    const target = { lake: lake2, landing: gen2, runId: 'speed-serving-order' };
    try {
      await acts.ingestEventFiles({ ...target, keys });
      // Last file first: its events are judged without history (all on time), then each earlier file re-judges the
      // files after it, moving events out of windows (some windows lose every event and must vanish from serving).
      let rejudged = 0;
      for (const key of [...keys].reverse())
        rejudged += (await acts.updateSpeedLayer({ ...target, fileKey: key })).rejudged.length;
      expect(rejudged).toBeGreaterThan(0);
      const attached = await attachLake(db, config, lake2);
      const conn = await db.connect();
      const lakeRows: string[] = [];
      for (const window of ['5m', '15m', '1h'] as const) {
        for (const r of await readSpeedWindows(conn, attached, { window, lagMinutes: 120 })) {
          lakeRows.push(
            [r.org_id, r.window_size, r.window_start, r.service, r.cost_usd, r.requests, r.events].join(' '),
          );
        }
      }
      conn.closeSync();
      const client = await connect(config.cassandra!);
      const rs = await client.execute(
        `SELECT org_id, window_size, window_start, service, cost_usd, requests, events FROM ${keyspace2}.speed_windows`,
        [],
        { fetchSize: 100_000 },
      );
      await client.shutdown();
      const served = rs.rows.map((row) =>
        [
          String(row.get('org_id')),
          String(row.get('window_size')),
          (row.get('window_start') as Date).toISOString().replace('.000Z', 'Z'),
          String(row.get('service')),
          Number(String(row.get('cost_usd'))).toFixed(6),
          Number(String(row.get('requests'))).toFixed(6),
          Number(row.get('events')),
        ].join(' '),
      );
      expect(served.sort()).toEqual(lakeRows.sort());
    } finally {
      await closeSpeedServing(config);
      db.closeSync();
    }
  }, 300_000);
});
