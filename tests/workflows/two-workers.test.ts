import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { GOLD_COLUMNS } from '../../config/contracts';
import { loadConfig } from '../../config/env';
import { goldDigest as digest } from '../support/lake-sql';
import { REFERENCE_LANDING, REPO, tmpDir } from '../support/env';
import { cpaEnv } from '../support/processes';
import { sharedTestEnv, uniqueName } from '../support/temporal';

const goldDigest = (lake: string): Promise<Record<string, string>> => digest(lake, Object.keys(GOLD_COLUMNS));

/**
 * SPEC §9a: a run's activities go to any worker polling the task queue. Two `cpa worker` processes (one DuckDB thread
 * each) share one dailyPipeline run over the reference data: both execute model activities — among them the chunks
 * of silver.usage_events, an activity per chunk of days (CPA_MODEL_CHUNK_ROWS 5,000 here) — and gold equals a run
 * done by one worker alone.
 */
describe('two cpa worker processes share one run', () => {
  let env: TestWorkflowEnvironment;
  // The jest run's shared dev server: the workers poll this file's own task queue; workflow ids under the same name.
  const taskQueue = uniqueName('test-two-workers');
  const config = loadConfig({ CPA_LAKE_ROOT: tmpDir('two-unused'), TEMPORAL_TASK_QUEUE: taskQueue });
  const workers: ChildProcess[] = [];

  function startWorker(name: string): Promise<ChildProcess> {
    const child = spawn(process.execPath, [path.join(REPO, 'bin', 'cpa.js'), 'worker'], {
      cwd: REPO,
      env: cpaEnv({
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_TASK_QUEUE: taskQueue,
        CPA_LAKE_ROOT: tmpDir(`two-${name}`),
        CPA_LANDING_ROOT: REFERENCE_LANDING,
        CPA_DUCKDB_THREADS: '1',
        CPA_LOG_LEVEL: 'warn',
        CPA_WORKER_IDENTITY: name,
        // silver.usage_events in chunks of about 5,000 events: several partition activities for the two to share.
        CPA_MODEL_CHUNK_ROWS: '5000',
        // No landing watcher: it would stream the reference files into the worker's own throwaway lake meanwhile.
        CPA_WATCH_ENABLED: 'false',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    workers.push(child);
    return new Promise((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      child.stdout!.on('data', (b: Buffer) => {
        if (b.toString().includes('worker polling')) resolve(child);
      });
      child.on('exit', (code) => reject(new Error(`worker ${name} exited ${code}: ${err}`)));
    });
  }

  beforeAll(async () => {
    env = await sharedTestEnv();
  });

  afterAll(async () => {
    for (const w of workers) w.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await env?.teardown();
  });

  /**
   * Runs dailyPipeline on `lake`; returns, per activity type, the identities of the workers that executed it (and, as
   * `chunk`, the worker of each silver.usage_events chunk, in order).
   */
  async function run(lake: string, id: string): Promise<Map<string, Set<string>> & { chunks?: string[] }> {
    const handle = await env.client.workflow.start('dailyPipeline', {
      taskQueue: config.temporal.taskQueue,
      workflowId: id,
      args: [{ runDate: null, lake, landing: REFERENCE_LANDING }],
    });
    await handle.result();
    const history = await handle.fetchHistory();
    const scheduled = new Map<string, { type: string; summary: string }>();
    const out: Map<string, Set<string>> & { chunks?: string[] } = new Map<string, Set<string>>();
    out.chunks = [];
    for (const e of history.events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) {
        const data = e.userMetadata?.summary?.data;
        const summary = data ? String(JSON.parse(Buffer.from(data).toString())) : '';
        scheduled.set(String(e.eventId), { type: s.activityType?.name ?? '', summary });
      }
      const st = e.activityTaskStartedEventAttributes;
      if (st) {
        const { type, summary } = scheduled.get(String(st.scheduledEventId)) ?? { type: '', summary: '' };
        if (!out.has(type)) out.set(type, new Set());
        // The identity is `<CPA_WORKER_IDENTITY> (<pid>@<host>)`: keep the operator's name.
        const who = (st.identity ?? '').split(' (')[0];
        out.get(type)!.add(who);
        if (type === 'buildSilver' && summary.startsWith('silver.usage_events ')) out.chunks.push(who);
      }
    }
    return out;
  }

  it('both workers execute model activities, and gold equals a one-worker run', async () => {
    const [, second] = await Promise.all([startWorker('worker-a'), startWorker('worker-b')]);
    const shared = tmpDir('two-shared');
    const byType = await run(shared, `${taskQueue}/shared`);
    const modelWorkers = new Set([
      ...(byType.get('ingestCsvSource') ?? []),
      ...(byType.get('buildSilver') ?? []),
      ...(byType.get('buildGold') ?? []),
    ]);
    expect([...modelWorkers].sort()).toEqual(['worker-a', 'worker-b']);
    // 43,200 events in chunks of about 5,000: at least eight chunk activities, one after the other, each taken by
    // whichever worker polls first (not asserted per chunk: the server's choice between two idle pollers).
    expect(byType.chunks!.length).toBeGreaterThanOrEqual(8);

    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
    const alone = tmpDir('two-alone');
    const single = await run(alone, `${taskQueue}/alone`);
    expect([...(single.get('buildSilver') ?? [])]).toEqual(['worker-a']);
    expect(await goldDigest(shared)).toEqual(await goldDigest(alone));
  }, 600_000);
});
