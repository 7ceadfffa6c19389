import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { GOLD_COLUMNS } from '../../config/contracts';
import { loadConfig } from '../../config/env';
import type { RunSummary, StepMetrics } from '../../activities';
import { createDuckDb } from '../../lake/duckdb';
import { generate } from '../../lake/generator';
import { createWorker } from '../../worker/main';
import type { PipelineWorkers } from '../../worker/main';
import { goldDigest, withLakeSql } from '../support/lake-sql';
import { tmpDir } from '../support/env';
import { sharedTestEnv, uniqueName } from '../support/temporal';

/**
 * A silver build over more bronze rows than CPA_MODEL_CHUNK_ROWS runs in chunks of consecutive days, each published
 * before the next (activities/models.ts chunkUnits), so its memory is bounded by a chunk and its trailing baseline.
 * Each chunk is an activity of its own (planWave plans them; any worker may take one), named by its days in the UI.
 * The chunks must compute exactly what one pass computes: the same silver rows (anomaly scores included: a later
 * chunk reads the baseline of its first days from the chunks published before it), the same quarantine, the same
 * gold, and the same step figures.
 */
describe('chunked silver builds equal one pass', () => {
  let env: TestWorkflowEnvironment;
  const landing = tmpDir('chunked-landing');
  const workers: Array<{ worker: PipelineWorkers; running: Promise<void>; close: () => void }> = [];
  const queue = { one: uniqueName('test-chunk-one'), chunked: uniqueName('test-chunked') };

  beforeAll(async () => {
    await generate({ scale: 0.3, seed: 5, out: landing });
    env = await sharedTestEnv();
    for (const [taskQueue, chunkRows] of [
      [queue.one, '100000000'],
      [queue.chunked, '1500'],
    ]) {
      const config = loadConfig({
        CPA_LAKE_ROOT: tmpDir('chunked-unused'),
        TEMPORAL_TASK_QUEUE: taskQueue,
        CPA_MODEL_CHUNK_ROWS: chunkRows,
      });
      const db = await createDuckDb(config);
      const { worker } = await createWorker(config, env.nativeConnection, { db });
      workers.push({ worker, running: worker.run(), close: () => db.closeSync() });
    }
  }, 300_000);

  afterAll(async () => {
    for (const w of workers) {
      w.worker.shutdown();
      await w.running;
      w.close();
    }
    await env?.teardown();
  });

  const run = (taskQueue: string, lake: string): Promise<RunSummary> =>
    env.client.workflow.execute('dailyPipeline', {
      taskQueue,
      workflowId: `${taskQueue}/run`,
      args: [{ runDate: null, lake, landing }],
    }) as Promise<RunSummary>;

  /** Silver events (ingest_ts aside: the time bronze first saw a line) and their quarantine, as sorted digests. */
  const silverDigest = (lake: string): Promise<Record<string, string>> =>
    withLakeSql(lake, async (q) => {
      const out: Record<string, string> = {};
      for (const [name, sql] of [
        ['silver', `select * exclude (ingest_ts) from lake.silver.usage_events`],
        ['quarantine', `select * from lake.quarantine.usage_events`],
        ['anomalies', `select event_id, zscore, robust_z, is_anomaly from lake.silver.usage_events where is_anomaly`],
      ]) {
        const [r] = await q(
          `select count(*)::varchar || ':' || coalesce(sum(hash(t))::varchar, '0') as h from (${sql}) t`,
        );
        out[name] = String(r.h);
      }
      return out;
    });

  const step = (s: RunSummary): StepMetrics => s.steps.find((x) => x.step === 'silver.usage_events')!;

  it('same silver, quarantine, gold and figures with 1,500 rows a chunk as in one pass', async () => {
    const lakes = { one: tmpDir('chunk-one-lake'), chunked: tmpDir('chunked-lake') };
    const one = await run(queue.one, lakes.one);
    const chunked = await run(queue.chunked, lakes.chunked);
    expect([one.status, chunked.status]).toEqual(['succeeded', 'succeeded']);

    const a = step(one);
    const b = step(chunked);
    expect(a.extra.chunks).toBeUndefined();
    expect(b.extra.chunks).toBeGreaterThanOrEqual(5);
    // Everything but the time and the chunk-specific counts (chunks; quarantine partitions changed, once a chunk).
    const figures = (m: StepMetrics) => {
      const extra = { ...m.extra };
      delete extra.chunks;
      delete extra.quarantine_partitions_changed;
      return { ...m, durationMs: 0, extra };
    };
    expect(figures(b)).toEqual(figures(a));
    expect(a.extra.anomaly_any).toBeGreaterThan(0);

    // One activity per chunk, in ascending order of days (the days without a date last), each named by its days;
    // the one-pass run has one.
    const silverSteps = async (workflowId: string): Promise<string[]> => {
      const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
      return (history.events ?? [])
        .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'buildSilver')
        .map((e) =>
          e.userMetadata?.summary?.data ? JSON.parse(Buffer.from(e.userMetadata.summary.data).toString()) : '',
        )
        .filter((x: string) => x.startsWith('silver.usage_events'));
    };
    const oneSteps = await silverSteps(`${queue.one}/run`);
    const chunkSteps = await silverSteps(`${queue.chunked}/run`);
    expect(oneSteps).toHaveLength(1);
    expect(chunkSteps).toHaveLength(b.extra.chunks);
    const ranges = chunkSteps.map((x) => {
      const m = /^silver\.usage_events (\d{4}-\d{2}-\d{2}|__HIVE_DEFAULT_PARTITION__)(?:\.\.(\S+) \(\d+\))?$/.exec(x);
      expect(m).not.toBeNull();
      return [m![1], m![2] ?? m![1]];
    });
    for (let i = 1; i < ranges.length; i++) expect(ranges[i][0] > ranges[i - 1][1]).toBe(true);

    const [sa, sb] = [await silverDigest(lakes.one), await silverDigest(lakes.chunked)];
    expect(sb).toEqual(sa);
    expect(Number(sa.silver.split(':')[0])).toBe(a.rowsOut);
    const marts = Object.keys(GOLD_COLUMNS);
    expect(await goldDigest(lakes.chunked, marts)).toEqual(await goldDigest(lakes.one, marts));

    // A second run on the chunked lake finds nothing stale.
    const again = await env.client.workflow.execute('dailyPipeline', {
      taskQueue: queue.chunked,
      workflowId: `${queue.chunked}/again`,
      args: [{ runDate: null, lake: lakes.chunked, landing }],
    });
    expect(step(again as RunSummary).partitionsRecomputed).toBe(0);
  }, 300_000);
});
