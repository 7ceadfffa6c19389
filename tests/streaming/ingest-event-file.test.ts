import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import { createActivities } from '../../activities';
import type { SpeedAlert } from '../../activities';
import { EVENTS_PREFIX } from '../../activities/bronze';
import { createDuckDb } from '../../lake/duckdb';
import { generate } from '../../lake/generator';
import type { GeneratorReport } from '../../lake/generator';
import { attachLake, lakeWrite } from '../../lake/lakehouse';
import { driftReport, readSpeedState, writeSpeedState } from '../../lake/speed';
import { createWorker } from '../../worker/main';
import { hashLandingFile, startIngestFile, Watcher } from '../../worker/watcher';
import type { WatchOutcome } from '../../worker/watcher';
import type { IngestEventFileResult } from '../../workflows';
import { dailyPipeline } from '../../workflows';
import { tmpDir } from '../support/env';
import { withLakeSql } from '../support/lake-sql';
import { sharedTestEnv, uniqueName } from '../support/temporal';
import { bronzeStats, dropFile, modelStream, speedState, speedTotals, waitFor } from './support';

/**
 * Streaming ingestion on a real Temporal dev server with the real worker (createWorker: the pipeline worker plus the
 * single-writer events worker) and real activities: the recompute invariant over the reference dataset fed one file
 * at a time, re-drops, changed files, duplicates across files, watermark/late accounting and alerts checked against
 * an independent model of the raw files (support.ts) and the generator's own report.
 */
describe('ingestEventFile and the speed layer', () => {
  let env: TestWorkflowEnvironment;
  // The jest run's shared dev server: task queues of this file's own (ingest-file ids name the test's own lake).
  const queuePrefix = uniqueName('test-stream');
  let queues = 0;

  beforeAll(async () => {
    env = await sharedTestEnv();
  });

  afterAll(async () => {
    await env?.teardown();
  });

  /** Runs `fn` with a fresh worker set (own task queues, own config) on the test server. */
  async function withWorker<T>(overrides: Record<string, string>, fn: (config: Config) => Promise<T>): Promise<T> {
    const config = loadConfig({
      CPA_LAKE_ROOT: '/tmp/unused',
      TEMPORAL_TASK_QUEUE: `${queuePrefix}-${++queues}`,
      ...overrides,
    });
    const { worker, db } = await createWorker(config, env.nativeConnection);
    try {
      return await worker.runUntil(fn(config));
    } finally {
      db.closeSync();
    }
  }

  async function ingest(
    config: Config,
    lake: string,
    landing: string,
    fileKey: string,
  ): Promise<IngestEventFileResult | 'duplicate'> {
    const { sha256 } = await hashLandingFile(config, landing, fileKey);
    const s = await startIngestFile(env.client, config, { fileKey, lake, landing, contentSha256: sha256 });
    return s.duplicate ? 'duplicate' : s.handle!.result();
  }

  async function daily(config: Config, lake: string, landing: string, workflowId: string): Promise<void> {
    const summary = await env.client.workflow.execute(dailyPipeline, {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [{ runDate: null, lake, landing }],
    });
    expect(summary.status).toBe('succeeded');
  }

  const eventFiles = (landing: string): string[] =>
    fs
      .readdirSync(path.join(landing, EVENTS_PREFIX))
      .filter((f) => f.endsWith('.jsonl'))
      .sort();

  function copyCsvs(from: string, to: string): void {
    for (const f of fs.readdirSync(from).filter((x) => x.endsWith('.csv')))
      fs.copyFileSync(path.join(from, f), path.join(to, f));
  }

  it('duplicate event_ids across files: one bronze row (first seen wins), counted once by the speed layer', async () => {
    const landing = tmpDir('stream-dup-landing');
    const lake = tmpDir('stream-dup-lake');
    const ev = (id: string, minute: number, cost: number): string =>
      JSON.stringify({
        event_id: id,
        timestamp: `2025-08-01T10:${String(minute).padStart(2, '0')}:00Z`,
        org_id: 'org_dup',
        resource_id: null,
        service: 'compute',
        region: 'us-east',
        metric: 'requests',
        value: 10,
        unit: 'count',
        cost_usd_increment: cost,
        schema_version: 1,
      });
    const a = [1, 2, 3, 4, 5].map((i) => ev(`evt_d${i}`, i, 1));
    const b = [ev('evt_d3', 3, 1), ev('evt_d4', 4, 99), ev('evt_d6', 6, 1)];
    fs.mkdirSync(path.join(landing, EVENTS_PREFIX), { recursive: true });
    fs.writeFileSync(path.join(landing, EVENTS_PREFIX, 'a.jsonl'), `${a.join('\n')}\n`);
    fs.writeFileSync(path.join(landing, EVENTS_PREFIX, 'b.jsonl'), `${b.join('\n')}\n`);
    await withWorker({}, async (config) => {
      await ingest(config, lake, landing, `${EVENTS_PREFIX}/a.jsonl`);
      const rb = await ingest(config, lake, landing, `${EVENTS_PREFIX}/b.jsonl`);
      expect(rb !== 'duplicate' && rb.bronze.extra.duplicates_dropped).toBe(2);
    });
    expect(await bronzeStats(lake)).toEqual({ rows: 6, distinctIds: 6, nullIds: 0 });
    const [d4] = await withLakeSql(lake, (q) =>
      q(
        `select source_file, cost_usd_increment::varchar as cost from lake.bronze.usage_events where event_id = 'evt_d4'`,
      ),
    );
    expect(d4).toEqual({ source_file: `${EVENTS_PREFIX}/a.jsonl`, cost: '1.000000' });
    const totals = await speedTotals(lake);
    expect(totals['1h']).toEqual({ events: 6, cost: '6.000000' });
    expect(totals['5m']).toEqual({ events: 6, cost: '6.000000' });
  }, 300_000);

  describe('on a generated stream (scale 0.05)', () => {
    const gen = tmpDir('stream-gen');
    let report: GeneratorReport;
    let texts: Array<{ key: string; text: string }>;

    beforeAll(async () => {
      report = await generate({ scale: 0.05, seed: 11, out: gen });
      texts = eventFiles(gen).map((n) => ({
        key: `${EVENTS_PREFIX}/${n}`,
        text: fs.readFileSync(path.join(gen, EVENTS_PREFIX, n), 'latin1'),
      }));
    });

    it('watcher: one workflow per new file; same bytes again = nothing; changed bytes = a new file, not double-counted', async () => {
      const landing = tmpDir('stream-watch-landing');
      const lake = tmpDir('stream-watch-lake');
      const [k0, k1] = [texts[0].key, texts[1].key];
      const outcomes: WatchOutcome[] = [];
      // 20 events later than everything in file 1 (never late), for the changed version of file 0.
      const times = texts[1].text.split('\n').map((l) => Date.parse(/"timestamp": "([^"]+)"/.exec(l)?.[1] ?? ''));
      const max1 = Math.max(...times.filter((t) => !Number.isNaN(t)));
      const extra = texts[2].text
        .split('\n')
        .filter((l) => {
          const m = /^\{"event_id": "[^"]+", "timestamp": "(\d{4}-\d{2}-\d{2}T[^"]+Z)"/.exec(l);
          return m && Date.parse(m[1]) > max1 && !Number.isNaN(Date.parse(m[1]));
        })
        .slice(0, 20);
      expect(extra).toHaveLength(20);
      const completed = (n: number) => () =>
        outcomes.filter((o) => o.status === 'completed').length >= n ? true : undefined;
      await withWorker({}, async (config) => {
        const watcher = new Watcher({
          client: env.client,
          config,
          lake,
          landing,
          intervalMs: 200,
          log: () => undefined,
          onOutcome: (o) => outcomes.push(o),
        });
        watcher.start();
        // One at a time: the watermark (and so on-time vs late) depends on the order files are processed in.
        dropFile(path.join(gen, k0), landing, k0);
        await waitFor('the first ingestion', completed(1));
        dropFile(path.join(gen, k1), landing, k1);
        await waitFor('two ingestions', completed(2));
        expect(outcomes.map((o) => o.fileKey).sort()).toEqual([k0, k1]);

        // Re-dropping the same bytes (new mtime): re-hashed, recognised, nothing started.
        dropFile(path.join(gen, k0), landing, k0);
        await new Promise((r) => setTimeout(r, 1500));
        expect(outcomes).toHaveLength(2);
        // Starting the same version by hand: the workflow id exists and completed → a no-op.
        const { sha256 } = await hashLandingFile(config, landing, k0);
        expect(
          (await startIngestFile(env.client, config, { fileKey: k0, lake, landing, contentSha256: sha256 })).duplicate,
        ).toBe(true);

        // Changed bytes under the same name: 20 later events appended → a new version, a new workflow id.
        fs.writeFileSync(path.join(landing, `${k0}.tmp-x`), `${texts[0].text}${extra.join('\n')}\n`);
        fs.renameSync(path.join(landing, `${k0}.tmp-x`), path.join(landing, k0));
        await waitFor('the changed file', completed(3));
        await watcher.stop({ drain: true });
      });
      expect(outcomes).toHaveLength(3);
      expect(outcomes[2].fileKey).toBe(k0);
      expect(outcomes[2].workflowId).not.toBe(outcomes.find((o) => o.fileKey === k0)!.workflowId);

      // A changed file is judged by the rule for any file: at its place in key order, with its content (bronze keeps
      // the first version's rows and adds the new ones); file 1, after it, is judged again against the new max.
      expect(outcomes[2].result?.speed.extra.files_rejudged).toBe(1);
      const model = modelStream([{ key: k0, text: `${texts[0].text}${extra.join('\n')}\n` }, texts[1]], {
        lagMinutes: 120,
      });
      const state = await speedState(lake);
      expect(state.files[k0].sha256).toBe((await hashLandingFile(loadConfig({}), landing, k0)).sha256);
      const onTime = Object.values(state.files).reduce((a, f) => a + f.onTime, 0);
      const late = Object.values(state.files).reduce((a, f) => a + f.late, 0);
      expect([onTime, late]).toEqual([model.onTime, model.late]);
      const totals = await speedTotals(lake);
      expect([totals['5m'].events, totals['15m'].events, totals['1h'].events]).toEqual([
        model.onTime,
        model.onTime,
        model.onTime,
      ]);
      const b = await bronzeStats(lake);
      expect(b.rows - b.nullIds).toBe(b.distinctIds);
    }, 300_000);

    it('late accounting = the generator report; alerts exactly for the windows over the threshold; webhook gets them', async () => {
      const landing = tmpDir('stream-late-landing');
      const lake = tmpDir('stream-late-lake');
      copyCsvs(gen, landing);
      // Threshold between the 8th and 9th largest org 5-minute window of the independent model.
      const totals = [...modelStream(texts, { lagMinutes: 120 }).windows5m.values()].sort((a, b) =>
        a > b ? -1 : a < b ? 1 : 0,
      );
      const threshold = Number(totals[7] + totals[8]) / 2 / 1e6;
      const model = modelStream(texts, { lagMinutes: 120, thresholdUsd: threshold });
      expect(model.late).toBe(report.quirks.late_events);
      expect(model.alerts.length).toBeGreaterThanOrEqual(8);

      const received: Array<{ key: string | undefined; body: SpeedAlert & { type: string } }> = [];
      const server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          received.push({
            key: req.headers['idempotency-key'] as string | undefined,
            body: JSON.parse(body) as SpeedAlert & { type: string },
          });
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/cost`;
      const logged: string[] = [];
      const write = process.stdout.write.bind(process.stdout);
      const spy = jest
        .spyOn(process.stdout, 'write')
        .mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
          const s = chunk.toString();
          if (s.includes('"event":"cost_alert"')) {
            logged.push(s);
            return true;
          }
          return write(chunk as string, ...(rest as []));
        });
      const overrides = { CPA_ALERT_COST_5MIN_USD: String(threshold), CPA_ALERT_WEBHOOK_URL: url };
      try {
        await withWorker(overrides, async (config) => {
          for (const t of texts) {
            dropFile(path.join(gen, t.key), landing, t.key);
            await ingest(config, lake, landing, t.key);
          }
          await daily(config, lake, landing, `${config.temporal.taskQueue}/daily-pipeline/stream-late`);
        });
      } finally {
        spy.mockRestore();
        await new Promise((r) => server.close(r));
      }

      // Late: per file and in total as the model, in total as the generator's report; recorded for audit.
      const state = await speedState(lake);
      expect(texts.map((t) => [state.files[t.key].onTime, state.files[t.key].late])).toEqual(
        model.files.map((f) => [f.onTime, f.late]),
      );
      const lateIds = (
        await withLakeSql(lake, (q) => q(`select event_id from lake.speed.late_events order by event_id`))
      ).map((r) => String(r.event_id));
      expect(lateIds).toEqual(model.files.flatMap((f) => f.lateIds).sort());
      expect(lateIds).toHaveLength(report.quirks.late_events);

      // Alerts: the record, the log lines and the webhook all name exactly the model's windows.
      const recorded = (
        await withLakeSql(lake, (q) => q(`select alert_id from lake.speed.alerts order by alert_id`))
      ).map((r) => String(r.alert_id));
      expect(recorded).toEqual(model.alerts);
      expect(received.map((r) => r.body.alert_id).sort()).toEqual(model.alerts);
      expect(received.every((r) => r.key === r.body.alert_id && r.body.type === 'cpa.cost_alert')).toBe(true);
      expect(received.every((r) => Number(r.body.cost_usd) > threshold)).toBe(true);
      expect(logged.map((l) => (JSON.parse(l) as SpeedAlert).alert_id).sort()).toEqual(model.alerts);

      // Drift against the batch layer: for closed days exactly the late events, nothing unexplained.
      const config = loadConfig({ CPA_LAKE_ROOT: lake, ...overrides });
      const db = await createDuckDb(config);
      try {
        const attached = await attachLake(db, config, lake);
        const conn = await db.connect();
        const drift = await driftReport(
          conn,
          attached,
          120,
          texts.map((t) => t.key),
        );
        expect(drift.days.length).toBeGreaterThan(50);
        expect(drift.totals.unexplained_events).toBe(0);
        expect(drift.totals.unexplained_cost_usd).toBe('0.000000');
        expect(drift.totals.late_events).toBeGreaterThan(0);
        expect(drift.filesNotInSpeed).toBe(0);

        // Re-processing a file whose rows are committed (its state set back to pending): same windows, same
        // alerts, no double count.
        const before = await speedTotals(lake);
        const last = texts[texts.length - 1].key;
        const reset = await readSpeedState(conn, attached);
        reset.files[last].status = 'pending';
        await lakeWrite(conn, attached, async () => () => writeSpeedState(conn, attached, reset));
        conn.closeSync();
        const again = await createActivities({ config, db }).updateSpeedLayer({
          lake,
          landing,
          runId: 'rerun',
          fileKey: last,
        });
        expect(again.metrics.extra.alerts_raised).toBe(0);
        expect(again.alerts.map((a) => a.alert_id).sort()).toEqual([...model.files[texts.length - 1].alerts].sort());
        expect(await speedTotals(lake)).toEqual(before);
        expect((await speedState(lake)).files[last]).toMatchObject({
          status: 'done',
          late: model.files[texts.length - 1].late,
        });
      } finally {
        db.closeSync();
      }
    }, 300_000);
  });
});
