import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../config/env';
import { EVENTS_PREFIX } from '../../activities/bronze';
import { generate } from '../../lake/generator';
import type { GeneratorReport } from '../../lake/generator';
import { startDevServer } from '../../worker/temporal';
import type { TemporalEndpoint } from '../../worker/temporal';
import { REPO, temporalCli, tmpDir } from '../support/env';
import { cpaEnv } from '../support/processes';
import { bronzeStats, speedState, speedTotals } from './support';
import { withLakeSql } from '../support/lake-sql';

/**
 * Issue 14: the speed layer's late events are a function of the data, not of the order the single writer happens to
 * process files in. A real worker process (`node bin/cpa.js worker`: watcher, pipeline worker, events writer) streams
 * a generated dataset dropped into its landing dir all at once, with CPA_WATCH_CONCURRENCY 1 and 4 and with a
 * `kill -9` in the middle: every run ends with the generator's late count and the same per-file watermarks.
 */
describe('speed layer: lateness does not depend on processing order', () => {
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused', TEMPORAL_CLI_PATH: temporalCli() });
  const gen = tmpDir('order-gen');
  let server: TemporalEndpoint;
  let report: GeneratorReport;
  let keys: string[];
  const children: ChildProcess[] = [];
  let queues = 0;

  beforeAll(async () => {
    report = await generate({ scale: 0.15, seed: 14, out: gen });
    keys = fs
      .readdirSync(path.join(gen, EVENTS_PREFIX))
      .filter((f) => f.endsWith('.jsonl'))
      .sort()
      .map((f) => `${EVENTS_PREFIX}/${f}`);
    server = await startDevServer(config);
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await server?.stop();
  });

  const spawnWorker = (lake: string, landing: string, queue: string, concurrency: number): ChildProcess => {
    const child = spawn(process.execPath, [path.join(REPO, 'bin', 'cpa.js'), 'worker'], {
      cwd: REPO,
      env: cpaEnv({
        TEMPORAL_ADDRESS: server.address,
        TEMPORAL_TASK_QUEUE: queue,
        CPA_LAKE_ROOT: lake,
        CPA_LANDING_ROOT: landing,
        CPA_WATCH_ENABLED: 'true',
        CPA_WATCH_INTERVAL_SECONDS: '0.5',
        CPA_WATCH_CONCURRENCY: String(concurrency),
      }),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(child);
    return child;
  };

  /** Drops every generated events file into a fresh landing dir (atomically, all at once). */
  function landAll(): string {
    const landing = tmpDir('order-landing');
    fs.mkdirSync(path.join(landing, EVENTS_PREFIX), { recursive: true });
    for (const key of keys) {
      const tmp = path.join(landing, EVENTS_PREFIX, `.${path.basename(key)}.tmp`);
      fs.copyFileSync(path.join(gen, key), tmp);
      fs.renameSync(tmp, path.join(landing, key));
    }
    return landing;
  }

  const doneCount = async (lake: string): Promise<number> => {
    if (!fs.existsSync(path.join(lake, '_meta', 'catalog.sqlite'))) return 0;
    const state = await speedState(lake).catch(() => undefined);
    return state ? keys.filter((k) => state.files[k]?.status === 'done').length : 0;
  };

  /**
   * Late events, per-file watermarks and window totals once every file is done; bronze (rows, ids, rows per file,
   * one content version recorded per file: each file ingested exactly once — the batch run may add a record of
   * the same content under its listing version); and, after a batch run on the same worker, the drift report's
   * unexplained figures.
   */
  async function outcome(lake: string, drift: unknown) {
    const state = await speedState(lake);
    const perFileBronze = await withLakeSql(lake, async (q) => ({
      rows: Object.fromEntries(
        (await q(`select source_file, count(*)::integer as n from lake.bronze.usage_events group by 1 order by 1`)).map(
          (r) => [String(r.source_file), Number(r.n)],
        ),
      ),
      records: Object.fromEntries(
        (
          await q(
            `select key, count(distinct sha256)::integer as n from lake.meta.landed_files where source = 'usage_events' group by 1 order by 1`,
          )
        ).map((r) => [String(r.key), Number(r.n)]),
      ),
    }));
    return {
      late: keys.reduce((a, k) => a + state.files[k].late, 0),
      onTime: keys.reduce((a, k) => a + state.files[k].onTime, 0),
      watermarks: keys.map((k) => state.files[k].watermark),
      perFile: keys.map((k) => [state.files[k].onTime, state.files[k].late]),
      totals: await speedTotals(lake),
      bronze: await bronzeStats(lake),
      bronzeRowsPerFile: perFileBronze.rows,
      landedRecordsPerFile: perFileBronze.records,
      drift,
    };
  }

  /** A batch run (`cpa run --no-worker`) on the streaming worker's queue, then `cpa drift --json`'s totals. */
  async function batchThenDrift(lake: string, landing: string, queue: string) {
    // Hermetic like every CLI a test spawns (no stack env file, so serving stays off as on the worker).
    const env = cpaEnv({ TEMPORAL_ADDRESS: server.address, TEMPORAL_TASK_QUEUE: queue });
    const cli = (args: string[]) =>
      promisify(execFile)(process.execPath, [path.join(REPO, 'bin', 'cpa.js'), ...args], { cwd: REPO, env });
    await cli(['run', '--no-worker', '--lake', lake, '--landing', landing]);
    const { stdout } = await cli(['drift', '--lake', lake, '--json']);
    const report = JSON.parse(stdout) as {
      totals: { unexplained_events: number; unexplained_cost_usd: string; late_events: number };
      filesNotInSpeed: number;
    };
    return {
      unexplainedEvents: report.totals.unexplained_events,
      unexplainedCost: report.totals.unexplained_cost_usd,
      lateEvents: report.totals.late_events,
      filesNotInSpeed: report.filesNotInSpeed,
    };
  }

  /** Polls the lake's speed state once a second (a fresh DuckDB each time: polling faster would load the worker). */
  async function untilDone(lake: string, atLeast: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await doneCount(lake)) < atLeast) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${atLeast} files in the speed layer`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  async function stream(concurrency: number, opts: { killAfter?: number } = {}) {
    const lake = tmpDir(`order-lake-c${concurrency}`);
    const landing = landAll();
    const queue = `order-${++queues}`;
    let worker = spawnWorker(lake, landing, queue, concurrency);
    await untilDone(lake, 1, 180_000);
    if (opts.killAfter !== undefined) {
      await untilDone(lake, opts.killAfter, 180_000);
      const exited = new Promise((r) => worker.once('exit', r));
      worker.kill('SIGKILL');
      await exited;
      expect(await doneCount(lake)).toBeLessThan(keys.length);
      worker = spawnWorker(lake, landing, queue, concurrency);
    }
    await untilDone(lake, keys.length, 300_000);
    const drift = await batchThenDrift(lake, landing, queue);
    worker.kill('SIGTERM');
    return outcome(lake, drift);
  }

  let inOrder: Awaited<ReturnType<typeof outcome>>;

  it('concurrency 1: the generator late count', async () => {
    inOrder = await stream(1);
    expect(inOrder.late).toBe(report.quirks.late_events);
    expect(inOrder.watermarks[0]).toBeNull();
    // Every file in bronze once, and the batch layer explains every difference with the speed layer.
    expect(Object.keys(inOrder.landedRecordsPerFile)).toEqual(keys);
    expect(Object.values(inOrder.landedRecordsPerFile).every((n) => n === 1)).toBe(true);
    expect(inOrder.bronze.distinctIds).toBeGreaterThan(0);
    expect(inOrder.drift).toMatchObject({ unexplainedEvents: 0, unexplainedCost: '0.000000', filesNotInSpeed: 0 });
  }, 400_000);

  it('concurrency 4: the same late count, watermarks and windows as concurrency 1', async () => {
    const r = await stream(4);
    expect(r.late).toBe(report.quirks.late_events);
    expect(r).toEqual(inOrder);
  }, 400_000);

  it('concurrency 1 with a kill -9 of the worker mid-stream: the same', async () => {
    const r = await stream(1, { killAfter: Math.floor(keys.length / 2) });
    expect(r.late).toBe(report.quirks.late_events);
    expect(r).toEqual(inOrder);
  }, 500_000);

  it('concurrency 4 with a kill -9 of the worker mid-stream: the same', async () => {
    const r = await stream(4, { killAfter: Math.floor(keys.length / 3) });
    expect(r.late).toBe(report.quirks.late_events);
    expect(r).toEqual(inOrder);
  }, 500_000);
});
